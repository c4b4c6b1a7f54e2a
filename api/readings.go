package api

import (
	"errors"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/config"
	"github.com/carehub/carehub/internal/influx"
	"github.com/carehub/carehub/internal/query"
)

// Bounds on readings queries: a default window and a maximum, so one
// request cannot ask InfluxDB for years of raw points.
const (
	defaultReadingsWindow = 24 * time.Hour
	maxRawWindow          = 31 * 24 * time.Hour
	maxAggregatedWindow   = 2 * 366 * 24 * time.Hour
	minEvery              = time.Second
	maxEvery              = 31 * 24 * time.Hour
	// maxWindows bounds the points of an aggregated answer (and the
	// windows carehub holds while aggregating): 2 years hourly fit.
	maxWindows = influx.DefaultMaxPoints
)

type pointJSON struct {
	T string  `json:"t"`
	V float64 `json:"v"`
}

type readingsResponse struct {
	ResidentID string      `json:"resident_id"`
	Metric     string      `json:"metric"`
	Unit       string      `json:"unit"`
	Points     []pointJSON `json:"points"`
}

// parseReadingsQuery validates every parameter into a typed value; nothing
// from the request reaches Flux except through these types.
func parseReadingsQuery(c *fiber.Ctx, residentID string, now time.Time) (ReadingsQuery, catalog.Metric, error) {
	q := ReadingsQuery{ResidentID: residentID}
	name := c.Query("metric")
	if name == "" {
		return q, catalog.Metric{}, invalid("invalid_metric", "metric is required, e.g. metric=heart_rate")
	}
	m, ok := catalog.LookupMetric(name)
	if !ok {
		return q, m, invalid("invalid_metric", "metric "+truncate(name, 40)+" is not in the metric catalogue")
	}
	q.Metric = m.Name
	q.To = now
	if v := c.Query("to"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return q, m, invalid("invalid_time", "to must be an RFC 3339 time, e.g. 2026-11-25T09:00:00Z")
		}
		q.To = t
	}
	q.From = q.To.Add(-defaultReadingsWindow)
	if v := c.Query("from"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return q, m, invalid("invalid_time", "from must be an RFC 3339 time, e.g. 2026-11-24T09:00:00Z")
		}
		q.From = t
	}
	if !q.From.Before(q.To) {
		return q, m, invalid("invalid_time_range", "from must be before to")
	}
	if v := c.Query("every"); v != "" {
		d, err := config.ParseDuration(v)
		if err != nil || d < minEvery || d > maxEvery {
			return q, m, invalid("invalid_every", "every must be a duration from 1s to 31d, e.g. 5m, 1h, 1d")
		}
		q.Every = d
		q.Fn = "mean"
	}
	if v := c.Query("fn"); v != "" {
		if !influx.ValidAggregate(v) {
			return q, m, invalid("invalid_fn", "fn must be one of mean, min, max, count, last")
		}
		if q.Every == 0 {
			return q, m, invalid("invalid_fn", "fn needs every, e.g. every=1h&fn=max")
		}
		q.Fn = v
	}
	limit := maxRawWindow
	if q.Every > 0 {
		limit = maxAggregatedWindow
	}
	if q.To.Sub(q.From) > limit {
		return q, m, invalid("invalid_time_range", "the time range is too long: at most 31 days of raw points, or 2 years with every")
	}
	if q.Every > 0 && q.To.Sub(q.From)/q.Every >= maxWindows {
		return q, m, invalid("invalid_every", "every is too short for the time range: at most 100000 windows, e.g. every=1h for 2 years")
	}
	return q, m, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// readings: GET /residents/{id}/readings (contract §4).
func (s *Server) readings(c *fiber.Ctx) error {
	r, err := s.visibleResident(c)
	if err != nil {
		return err
	}
	id := r.ID
	q, m, err := parseReadingsQuery(c, id, s.o.Clock())
	if err != nil {
		return err
	}
	if err := s.audit(c, id, "readings.read", ""); err != nil {
		return err
	}
	pts, err := s.o.Readings.Readings(c.UserContext(), q)
	if errors.Is(err, influx.ErrTooManyRows) {
		if q.Every == 0 {
			return invalid("too_many_points", "the range holds more than "+strconv.Itoa(influx.DefaultMaxPoints)+" raw points; ask for a shorter range or aggregate with every, e.g. every=1m")
		}
		return invalid("too_many_points", "the range holds more than "+strconv.Itoa(influx.MaxScanRows)+" raw points to aggregate; ask for a shorter range")
	}
	if err != nil {
		s.log.Error().Err(err).Str("resident_id", id).Str("metric", q.Metric).Msg("readings query failed")
		return ErrUnavailable.with("the time-series store did not answer; retry later")
	}
	out := readingsResponse{ResidentID: id, Metric: m.Name, Unit: m.Unit, Points: make([]pointJSON, len(pts))}
	for i, p := range pts {
		out.Points[i] = pointJSON{T: wireTime(p.T), V: p.V}
	}
	return c.JSON(out)
}

// canSee reports whether the caller may see a resident: admins and
// coordinators see all, a caregiver only the residents assigned to them
// (contract §4, domain.md privacy).
func (s *Server) canSee(c *fiber.Ctx, residentID string) bool {
	p := principal(c)
	return query.CanSee(query.Principal{ID: p.ID, Role: p.Role, Residents: p.Residents}, residentID)
}

// visibleResident returns the resident named by the :id parameter, or a
// 404 when it does not exist or the caller may not see it: the same answer
// in both cases, so a caregiver cannot probe for other residents.
func (s *Server) visibleResident(c *fiber.Ctx) (devices.Resident, error) {
	id := c.Params("id")
	r, ok := s.o.Registry.Resident(id)
	if !catalog.ValidID(id) || !ok || !s.canSee(c, id) {
		return devices.Resident{}, ErrNotFound.with("no resident " + truncate(id, 64))
	}
	return r, nil
}
