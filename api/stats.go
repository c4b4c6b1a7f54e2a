package api

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/alerts/rules"
)

// Ranges of GET /alerts/stats: four weeks by default (four whole ISO
// weeks to compare), a year at most per request.
const (
	defaultStatsWindow = 28 * 24 * time.Hour
	maxStatsWindow     = 366 * 24 * time.Hour
)

// The UK telecare answer targets domain.md compares carehub with: 97.5 % of
// calls answered within 60 s, 99 % within 3 min.
const (
	answerTarget1     = 60 * time.Second
	answerTarget1Pct  = 0.975
	answerTarget2     = 3 * time.Minute
	answerTarget2Pct  = 0.99
	unansweredGroup   = "@unanswered" // '@' makes it an invalid user id (as alerts.SystemActor)
	statsGroupBadText = "group_by must be one of severity, caregiver, week"
)

// durationStats summarise response times in seconds; nil when there are none.
type durationStats struct {
	Count int      `json:"count"`
	P50   *float64 `json:"p50_seconds"`
	P90   *float64 `json:"p90_seconds"`
	Mean  *float64 `json:"mean_seconds"`
}

// criticalStats measure critical alerts against the telecare targets.
// Count is the critical alerts a person had to answer (a device's own
// cancel, alerts.OutcomeAutoCleared, needs none). A share's denominator
// leaves out alerts still unanswered but within that target's time: they
// have not missed it yet. An alert never answered has missed both.
type criticalStats struct {
	Count     int      `json:"count"`
	Within60s int      `json:"answered_within_60s"`
	Within3m  int      `json:"answered_within_3m"`
	Share60s  *float64 `json:"share_within_60s"`
	Share3m   *float64 `json:"share_within_3m"`
	due60s    int
	due3m     int
}

type statsGroup struct {
	Key         string        `json:"key"`
	Alerts      int           `json:"alerts"`
	Acknowledge durationStats `json:"time_to_acknowledge"`
	Resolve     durationStats `json:"time_to_resolve"`
	Critical    criticalStats `json:"critical"`
	ack, res    []float64
}

type statsTargets struct {
	Within60s float64 `json:"share_within_60s"`
	Within3m  float64 `json:"share_within_3m"`
}

type alertStatsJSON struct {
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	GroupBy  string    `json:"group_by"`
	TimeZone string    `json:"time_zone"`
	// CompleteFrom: the Manager keeps resolved alerts for
	// alerts.ResolvedRetention, so alerts resolved before this time are
	// missing; Partial says the range starts before it.
	CompleteFrom time.Time    `json:"complete_from"`
	Partial      bool         `json:"partial"`
	Targets      statsTargets `json:"targets"`
	Total        statsGroup   `json:"total"`
	Groups       []statsGroup `json:"groups"`
}

// alertStats: GET /alerts/stats?from=&to=&group_by=severity|caregiver|week
// (staff) → response times of the alerts raised in [from, to): time to
// acknowledge and to resolve (count, p50, p90, mean seconds) per group, and
// the share of critical alerts answered within 60 s and 3 min (domain.md,
// UK telecare targets).
//
// It computes from the Manager's alerts, not from InfluxDB's alerts
// measurement: only the alert record has acknowledged_by (the caregiver
// grouping; the measurement's tags are fixed by contract §2 and name no
// user), pairs each answer with its own raise (week buckets by raise time)
// and tells an unanswered critical alert from one that is not in the data.
// The price is history: the Manager keeps resolved alerts 30 days
// (alerts.ResolvedRetention), so a longer range is answered for what it
// holds and marked partial with complete_from.
//
// An alert's answer is its acknowledgement, or a person's resolve when
// nobody acknowledged it first; time to resolve counts alerts a person
// resolved (auto-cleared ones were no one's response).
func (s *Server) alertStats(c *fiber.Ctx) error {
	if err := s.needAlerts(); err != nil {
		return err
	}
	now := s.o.Clock().UTC()
	to, from := now, time.Time{}
	if v := c.Query("to"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return invalid("invalid_time", "to must be an RFC 3339 time, e.g. 2026-11-25T09:00:00Z")
		}
		to = t.UTC()
	}
	from = to.Add(-defaultStatsWindow)
	if v := c.Query("from"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return invalid("invalid_time", "from must be an RFC 3339 time, e.g. 2026-10-28T00:00:00Z")
		}
		from = t.UTC()
	}
	if !from.Before(to) || to.Sub(from) > maxStatsWindow {
		return invalid("invalid_time_range", "from must be before to, and the range at most 366 days")
	}
	groupBy := c.Query("group_by", "severity")
	key, ok := statsKeys(s.o.Location)[groupBy]
	if !ok {
		return invalid("invalid_group_by", statsGroupBadText)
	}
	var in []alerts.Alert
	var ids []string
	for _, a := range s.o.Alerts.List(alerts.Filter{Limit: math.MaxInt32}) {
		if !a.RaisedAt.Before(from) && a.RaisedAt.Before(to) {
			in = append(in, a)
			ids = append(ids, a.ResidentID)
		}
	}
	if err := s.auditDisclosed(c, "alerts.stats", uniqueIDs(ids)); err != nil {
		return err
	}
	total, groups := computeAlertStats(in, key, now)
	complete := now.Add(-alerts.ResolvedRetention)
	return c.JSON(alertStatsJSON{
		From: from, To: to, GroupBy: groupBy, TimeZone: s.o.Location.String(),
		CompleteFrom: complete, Partial: from.Before(complete),
		Targets: statsTargets{Within60s: answerTarget1Pct, Within3m: answerTarget2Pct},
		Total:   total, Groups: groups,
	})
}

// statsKeys are the group_by choices: each names an alert's group.
func statsKeys(loc *time.Location) map[string]func(a alerts.Alert) string {
	return map[string]func(a alerts.Alert) string{
		"severity": func(a alerts.Alert) string { return a.Severity },
		"caregiver": func(a alerts.Alert) string {
			if _, by, ok := answered(a); ok {
				return by
			}
			return unansweredGroup
		},
		// ISO 8601 weeks (Monday first; week 1 holds the year's first
		// Thursday) of the raise, in the program time zone.
		"week": func(a alerts.Alert) string {
			y, w := a.RaisedAt.In(loc).ISOWeek()
			return fmt.Sprintf("%04d-W%02d", y, w)
		},
	}
}

// answered returns when and by whom a person first answered the alert.
func answered(a alerts.Alert) (time.Time, string, bool) {
	if a.AcknowledgedAt != nil {
		return *a.AcknowledgedAt, a.AcknowledgedBy, true
	}
	if resolvedByPerson(a) {
		return *a.ResolvedAt, a.ResolvedBy, true
	}
	return time.Time{}, "", false
}

func resolvedByPerson(a alerts.Alert) bool {
	return a.ResolvedAt != nil && a.Outcome != alerts.OutcomeAutoCleared && a.ResolvedBy != alerts.SystemActor
}

// computeAlertStats groups as by key and summarises each group and all of
// them; groups come sorted by key (severities from info to critical).
func computeAlertStats(as []alerts.Alert, key func(alerts.Alert) string, now time.Time) (statsGroup, []statsGroup) {
	total := &statsGroup{Key: "all"}
	byKey := map[string]*statsGroup{}
	for _, a := range as {
		k := key(a)
		g := byKey[k]
		if g == nil {
			g = &statsGroup{Key: k}
			byKey[k] = g
		}
		for _, x := range []*statsGroup{total, g} {
			x.add(a, now)
		}
	}
	groups := make([]statsGroup, 0, len(byKey))
	for _, g := range byKey {
		g.finish()
		groups = append(groups, *g)
	}
	sort.Slice(groups, func(i, j int) bool {
		x, y := severityOrder[groups[i].Key], severityOrder[groups[j].Key]
		if x != y {
			return x < y
		}
		return groups[i].Key < groups[j].Key
	})
	total.finish()
	return *total, groups
}

func (g *statsGroup) add(a alerts.Alert, now time.Time) {
	g.Alerts++
	at, _, ok := answered(a)
	if ok {
		g.ack = append(g.ack, at.Sub(a.RaisedAt).Seconds())
	}
	if resolvedByPerson(a) {
		g.res = append(g.res, a.ResolvedAt.Sub(a.RaisedAt).Seconds())
	}
	if a.Severity != rules.SeverityCritical || (!ok && a.Outcome == alerts.OutcomeAutoCleared) {
		return
	}
	cs := &g.Critical
	cs.Count++
	wait := now.Sub(a.RaisedAt)
	if ok {
		wait = at.Sub(a.RaisedAt)
	}
	if ok || wait >= answerTarget1 {
		cs.due60s++
		if ok && wait <= answerTarget1 {
			cs.Within60s++
		}
	}
	if ok || wait >= answerTarget2 {
		cs.due3m++
		if ok && wait <= answerTarget2 {
			cs.Within3m++
		}
	}
}

func (g *statsGroup) finish() {
	g.Acknowledge = summarise(g.ack)
	g.Resolve = summarise(g.res)
	g.Critical.Share60s = share(g.Critical.Within60s, g.Critical.due60s)
	g.Critical.Share3m = share(g.Critical.Within3m, g.Critical.due3m)
}

func share(n, of int) *float64 {
	if of == 0 {
		return nil
	}
	v := float64(n) / float64(of)
	return &v
}

// summarise gives count, nearest-rank p50 and p90, and the mean.
func summarise(v []float64) durationStats {
	out := durationStats{Count: len(v)}
	if len(v) == 0 {
		return out
	}
	sort.Float64s(v)
	rank := func(p float64) *float64 {
		x := v[int(math.Ceil(p*float64(len(v))))-1]
		return &x
	}
	sum := 0.0
	for _, x := range v {
		sum += x
	}
	mean := sum / float64(len(v))
	out.P50, out.P90, out.Mean = rank(0.5), rank(0.9), &mean
	return out
}
