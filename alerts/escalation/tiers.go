package escalation

import (
	"slices"
	"time"

	"github.com/carehub/carehub/alerts/rules"
)

// Escalation timing (domain.md "Alert lifecycle"): a critical alert not
// acknowledged within 60 s escalates one tier, and keeps stepping until the
// top tier, which it reaches no later than 3 min after the raise (UK telecare
// target: 99 % answered within 3 min). A high alert escalates at 5 and 15 min.
const (
	CriticalStep  = 60 * time.Second
	CriticalReach = 3 * time.Minute
	HighFirst     = 5 * time.Minute
	HighSecond    = 15 * time.Minute //nolint:revive // time-naming: the second escalation step, not a unit
)

// Gaps returns the waits between steps for an alert of severity
// sev on a chain of n tiers: gaps[i] is the wait from level i+1 to level
// i+2. Critical steps every CriticalStep; when the chain is too long for
// that to reach the top by CriticalReach, the steps after the first are
// spaced evenly over the remaining time. Warning and info never escalate.
func Gaps(sev string, n int) []time.Duration {
	steps := n - 1
	if steps <= 0 {
		return nil
	}
	switch sev {
	case rules.SeverityCritical:
		gaps := make([]time.Duration, steps)
		rest := CriticalStep
		if time.Duration(steps)*CriticalStep > CriticalReach {
			rest = (CriticalReach - CriticalStep) / time.Duration(steps-1)
		}
		for i := range gaps {
			gaps[i] = rest
		}
		gaps[0] = CriticalStep
		return gaps
	case rules.SeverityHigh:
		gaps := []time.Duration{HighFirst, HighSecond - HighFirst}
		if len(gaps) > steps {
			gaps = gaps[:steps]
		}
		return gaps
	}
	return nil
}

// Next is when an alert at level (1-based) of a chain of n tiers
// takes its next step, counting from `from` (the time it reached level), or
// nil when it does not escalate further.
func Next(sev string, level, n int, from time.Time) *time.Time {
	gaps := Gaps(sev, n)
	if level < 1 || level > len(gaps) {
		return nil
	}
	t := from.Add(gaps[level-1])
	return &t
}

// Role is the role of a chain's tier at level (1-based), "" past its ends.
func Role(tiers []Tier, level int) string {
	if level < 1 || level > len(tiers) {
		return ""
	}
	return tiers[level-1].Role
}

// Recipients are the users of tiers 1..level: escalation adds people, it
// does not take the alert away from the first ones.
func Recipients(tiers []Tier, level int) []string {
	var out []string
	seen := map[string]bool{}
	for i := 0; i < level && i < len(tiers); i++ {
		for _, u := range tiers[i].UserIDs {
			if !seen[u] {
				seen[u] = true
				out = append(out, u)
			}
		}
	}
	return out
}

// WithAssignee puts the assignee first among the recipients, once.
func WithAssignee(recipients []string, assignee string) []string {
	if assignee == "" {
		return recipients
	}
	out := make([]string, 0, len(recipients)+1)
	out = append(out, assignee)
	for _, u := range recipients {
		if u != assignee {
			out = append(out, u)
		}
	}
	return slices.Clip(out)
}
