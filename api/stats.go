package api

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/internal/query"
)

// Ranges of GET /alerts/stats: four weeks by default (four whole ISO
// weeks to compare), a year at most per request.
const (
	defaultStatsWindow = 28 * 24 * time.Hour
	maxStatsWindow     = 366 * 24 * time.Hour
)

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
	CompleteFrom time.Time          `json:"complete_from"`
	Partial      bool               `json:"partial"`
	Targets      statsTargets       `json:"targets"`
	Total        query.StatsGroup   `json:"total"`
	Groups       []query.StatsGroup `json:"groups"`
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
	key, ok := query.StatsKeys(s.o.Location)[groupBy]
	if !ok {
		return invalid("invalid_group_by", query.StatsGroupBadText)
	}
	q, p := s.query(c)
	total, groups, err := q.AlertStats(c.UserContext(), p, query.StatsQuery{From: from, To: to, Key: key})
	if err != nil {
		return queryError(err, "")
	}
	complete := now.Add(-alerts.ResolvedRetention)
	return c.JSON(alertStatsJSON{
		From: from, To: to, GroupBy: groupBy, TimeZone: s.o.Location.String(),
		CompleteFrom: complete, Partial: from.Before(complete),
		Targets: statsTargets{Within60s: query.AnswerTarget1Pct, Within3m: query.AnswerTarget2Pct},
		Total:   total, Groups: groups,
	})
}
