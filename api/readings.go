package api

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/influx/flux"
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
	maxWindows = flux.DefaultMaxPoints
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
		d, err := parseDuration(v)
		if err != nil || d < minEvery || d > maxEvery {
			return q, m, invalid("invalid_every", "every must be a duration from 1s to 31d, e.g. 5m, 1h, 1d")
		}
		q.Every = d
		q.Fn = "mean"
	}
	if v := c.Query("fn"); v != "" {
		if !flux.ValidAggregate(v) {
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

// parseDuration is time.ParseDuration that also takes whole days ("1d")
// and weeks ("2w"): the grammar of the CARE_* durations
// (config.ParseDuration), which api does not import (it gets its
// configuration as Options).
func parseDuration(s string) (time.Duration, error) {
	for suffix, unit := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			if k, err := strconv.Atoi(n); err == nil && k >= 0 {
				return time.Duration(k) * unit, nil
			}
		}
	}
	return time.ParseDuration(s)
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
	qs, p := s.query(c)
	pts, err := qs.Readings(c.UserContext(), p, q)
	if err != nil {
		err = queryError(err, "no resident "+truncate(id, 64))
	}
	var answer *Error
	if errors.As(err, &answer) {
		return err
	}
	if errors.Is(err, flux.ErrTooManyRows) {
		if q.Every == 0 {
			return invalid("too_many_points", "the range holds more than "+strconv.Itoa(flux.DefaultMaxPoints)+" raw points; ask for a shorter range or aggregate with every, e.g. every=1m")
		}
		return invalid("too_many_points", "the range holds more than "+strconv.Itoa(flux.MaxScanRows)+" raw points to aggregate; ask for a shorter range")
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

// ReadingsQuery and Point are the query layer's (internal/query), shared
// with the console's pages.
type (
	ReadingsQuery = query.ReadingsQuery
	Point         = query.Point
)

// ReadingsSource answers readings queries (InfluxDB through Flux).
type ReadingsSource interface {
	Readings(ctx context.Context, q ReadingsQuery) ([]Point, error)
}
