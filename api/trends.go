package api

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/influx/flux"
)

// TrendsSource answers the trend queries (flux.Reader).
type TrendsSource interface {
	Latest(ctx context.Context, residentID string, from, to time.Time) ([]flux.MetricValue, error)
	Summary(ctx context.Context, residentID string, from, to time.Time) ([]flux.MetricStats, error)
	LastReadings(ctx context.Context, from, to time.Time) (map[string]time.Time, error)
}

// latestWindow is how far back GET /latest looks: a value older than a
// month is history, not the resident's current state (within flux.MaxTrendRange).
const latestWindow = 30 * 24 * time.Hour

func (s *Server) needTrends() error {
	if s.o.Trends == nil {
		return ErrUnavailable.with("trends are not configured on this instance")
	}
	return nil
}

type latestJSON struct {
	Metric string  `json:"metric"`
	Unit   string  `json:"unit"`
	T      string  `json:"t"`
	V      float64 `json:"v"`
}

// latest: GET /residents/{id}/latest → the latest value of every metric
// within the last 30 days, by metric name.
func (s *Server) latest(c *fiber.Ctx) error {
	if err := s.needTrends(); err != nil {
		return err
	}
	r, err := s.visibleResident(c)
	if err != nil {
		return err
	}
	if err := s.audit(c, r.ID, "latest.read", ""); err != nil {
		return err
	}
	now := s.o.Clock()
	vals, err := s.o.Trends.Latest(c.UserContext(), r.ID, now.Add(-latestWindow), now.Add(time.Second))
	if err != nil {
		s.log.Error().Err(err).Str("resident_id", r.ID).Msg("latest query failed")
		return ErrUnavailable.with("the time-series store did not answer; retry later")
	}
	out := make([]latestJSON, 0, len(vals))
	for _, v := range vals {
		m, ok := catalog.LookupMetric(v.Metric)
		if !ok {
			continue
		}
		out = append(out, latestJSON{Metric: v.Metric, Unit: m.Unit, T: wireTime(v.T), V: v.V})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Metric < out[j].Metric })
	return c.JSON(fiber.Map{"resident_id": r.ID, "metrics": out})
}

type statsJSON struct {
	Metric string  `json:"metric"`
	Unit   string  `json:"unit"`
	Min    float64 `json:"min"`
	Mean   float64 `json:"mean"`
	Max    float64 `json:"max"`
	Count  int64   `json:"count"`
}

type overviewRow struct {
	ResidentID      string     `json:"resident_id"`
	OpenAlerts      int        `json:"open_alerts"`
	HighestSeverity string     `json:"highest_severity,omitempty"`
	LastReading     *time.Time `json:"last_reading"`
	MissingData     bool       `json:"missing_data"`
	// Drifting lists the baselines the resident is worsening from
	// (drift.go); empty, not null, when none.
	Drifting []driftJSON `json:"drifting"`
	// Mode is the away, hospital or quiet mode in force, which pauses the
	// activity rules; absent when none.
	Mode *modeJSON `json:"mode,omitempty"`
}

// overview: GET /overview → the caller's residents that need attention
// (issue 4: "who is drifting"): open (or acknowledged) alerts, no reading
// for 24 h, or a worsening baseline (drift.go); the most urgent first
// (highest severity, then missing data, then number of alerts, then number
// of worsening baselines). When the baseline queries fail, the rest is
// still answered, with drift_error saying what is missing.
func (s *Server) overview(c *fiber.Ctx) error {
	if err := s.needTrends(); err != nil {
		return err
	}
	q, p := s.query(c)
	ans, err := q.OverviewDrift(c.UserContext(), p)
	if err != nil {
		if errors.Is(err, errAuditFailed) {
			return queryError(err, "")
		}
		s.log.Error().Err(err).Msg("overview query failed")
		return ErrUnavailable.with("the time-series store did not answer; retry later")
	}
	resp := fiber.Map{}
	if ans.DriftErr != nil {
		s.log.Error().Err(ans.DriftErr).Msg("overview baseline query failed")
		resp["drift_error"] = "worsening baselines are not shown: the time-series store did not answer"
	}
	now := s.o.Clock()
	out := make([]overviewRow, len(ans.Rows))
	for i, r := range ans.Rows {
		row := overviewRow{ResidentID: r.Resident.ID, OpenAlerts: r.OpenAlerts, HighestSeverity: r.Highest,
			LastReading: r.LastReading, MissingData: r.MissingData, Drifting: make([]driftJSON, len(r.Drifting))}
		for j, d := range r.Drifting {
			row.Drifting[j] = driftJSON(d)
		}
		if r.Mode != "" {
			row.Mode = s.activeMode(r.Resident.ID, now)
		}
		out[i] = row
	}
	resp["residents"] = out
	return c.JSON(resp)
}
