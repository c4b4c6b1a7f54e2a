package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/kv"
	"github.com/carehub/carehub/internal/model"
)

// Escalation roles, in the order domain.md walks them: assigned caregiver →
// on-call backup → center nurse/coordinator → guardian → 119.
const (
	RoleCaregiver   = "caregiver"
	RoleBackup      = "backup"
	RoleCoordinator = "coordinator"
	RoleGuardian    = "guardian"
	RoleEmergency   = "emergency"
)

var validRoles = map[string]bool{
	RoleCaregiver: true, RoleBackup: true, RoleCoordinator: true, RoleGuardian: true, RoleEmergency: true,
}

// Tier is one step of a resident's escalation chain: who is notified when
// the alert reaches it. The emergency tier has no users: reaching it means
// publishing to model.EmergencySubject.
type Tier struct {
	Role    string   `json:"role"`
	UserIDs []string `json:"user_ids"`
}

// EscalationChain is who is told about a resident's alerts, tier by tier.
// Escalation level n means tiers 1..n have been notified.
type EscalationChain struct {
	ResidentID string `json:"resident_id"`
	Tiers      []Tier `json:"tiers"`
}

// DefaultChain is used for a resident without a stored chain: every role in
// domain.md's order, nobody named yet. Levels still advance so the alert
// reaches 119 on time even when assignments are missing.
func DefaultChain(residentID string) EscalationChain {
	return EscalationChain{ResidentID: residentID, Tiers: []Tier{
		{Role: RoleCaregiver}, {Role: RoleBackup}, {Role: RoleCoordinator}, {Role: RoleGuardian}, {Role: RoleEmergency},
	}}
}

// Validate checks ids and roles, and that the emergency tier, if present, is
// the last one (119 is the last resort, domain.md).
func (c EscalationChain) Validate() error {
	if !catalog.ValidID(c.ResidentID) {
		return fmt.Errorf("%w: resident_id %q", ErrInvalid, c.ResidentID)
	}
	if len(c.Tiers) == 0 {
		return fmt.Errorf("%w: an escalation chain needs at least one tier", ErrInvalid)
	}
	for i, t := range c.Tiers {
		if !validRoles[t.Role] {
			return fmt.Errorf("%w: tier %d: role %q is not one of caregiver, backup, coordinator, guardian, emergency", ErrInvalid, i+1, t.Role)
		}
		if t.Role == RoleEmergency && i != len(c.Tiers)-1 {
			return fmt.Errorf("%w: the emergency tier must be the last one", ErrInvalid)
		}
		for _, u := range t.UserIDs {
			if !catalog.ValidID(u) {
				return fmt.Errorf("%w: tier %d: user id %q", ErrInvalid, i+1, u)
			}
		}
	}
	return nil
}

// KVChains keeps escalation chains in the care_assignments KV bucket.
type KVChains struct{ kv jetstream.KeyValue }

// NewKVChains binds to (or creates) the care_assignments bucket.
func NewKVChains(ctx context.Context, js jetstream.JetStream) (*KVChains, error) {
	bucket, err := kv.Open(ctx, js, kv.Bucket{Name: model.BucketAssignments, Description: "escalation chain per resident", History: 5})
	if err != nil {
		return nil, err
	}
	return &KVChains{kv: bucket}, nil
}

// Chain returns the stored chain, or DefaultChain when none is stored.
func (c *KVChains) Chain(ctx context.Context, residentID string) (EscalationChain, error) {
	e, err := c.kv.Get(ctx, residentID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return DefaultChain(residentID), nil
	}
	if err != nil {
		return EscalationChain{}, fmt.Errorf("escalation chain of %s: %w", residentID, err)
	}
	var ch EscalationChain
	if err := json.Unmarshal(e.Value(), &ch); err != nil {
		return EscalationChain{}, fmt.Errorf("escalation chain of %s: %w", residentID, err)
	}
	if len(ch.Tiers) == 0 {
		return DefaultChain(residentID), nil
	}
	return ch, nil
}

// Put stores a resident's chain after validating it.
func (c *KVChains) Put(ctx context.Context, ch EscalationChain) error {
	if err := ch.Validate(); err != nil {
		return err
	}
	b, err := json.Marshal(ch)
	if err != nil {
		return err
	}
	_, err = c.kv.Put(ctx, ch.ResidentID, b)
	return err
}

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

// escalationGaps returns the waits between steps for an alert of severity
// sev on a chain of n tiers: gaps[i] is the wait from level i+1 to level
// i+2. Critical steps every CriticalStep; when the chain is too long for
// that to reach the top by CriticalReach, the steps after the first are
// spaced evenly over the remaining time. Warning and info never escalate.
func escalationGaps(sev string, n int) []time.Duration {
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

// nextEscalation is when an alert at level (1-based) of a chain of n tiers
// takes its next step, counting from `from` (the time it reached level), or
// nil when it does not escalate further.
func nextEscalation(sev string, level, n int, from time.Time) *time.Time {
	gaps := escalationGaps(sev, n)
	if level < 1 || level > len(gaps) {
		return nil
	}
	t := from.Add(gaps[level-1])
	return &t
}
