package api

import (
	"context"
	"sort"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/influx/flux"
)

// DayActivitySource answers the day summary's activity, routine and steps
// figures (flux.Reader; Options.DayActivity): without it the summary
// gives the vitals alone.
type DayActivitySource interface {
	ActivityCounts(ctx context.Context, residentID string, from, to time.Time) ([]flux.WindowValue, error)
	EventCount(ctx context.Context, residentID, eventType string, from, to time.Time) (int64, error)
	WindowMax(ctx context.Context, residentID, metric string, from, to time.Time) ([]flux.WindowValue, error)
}

// The night whose bed exits a day's summary counts: 22:00 to 06:00 local,
// the night that ends on the morning of that day (so each night is counted
// by one summary only).
const (
	nightStartHour = 22
	nightEndHour   = 6
)

// stepsBaselineDays: a resident's steps are compared with their own
// previous two weeks, not with a population norm.
const stepsBaselineDays = 14

type nightJSON struct {
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	BedExits int64     `json:"bed_exits"`
}

type stepsJSON struct {
	Today        *float64 `json:"today"`
	Baseline14d  *float64 `json:"baseline_14d"`
	BaselineDays int      `json:"baseline_days"` // days of the 14 with steps data
	Ratio        *float64 `json:"ratio"`
}

type daySummaryJSON struct {
	ResidentID string      `json:"resident_id"`
	Date       string      `json:"date"`
	TimeZone   string      `json:"time_zone"`
	From       string      `json:"from"`
	To         string      `json:"to"`
	Vitals     []statsJSON `json:"vitals"`
	// ActivityPerHour counts motion, presence, door and bed events and
	// readings per local hour 0–23 (a repeated hour on a DST day adds up).
	ActivityPerHour *[24]int64 `json:"activity_per_hour,omitempty"`
	BathroomVisits  *int64     `json:"bathroom_visits,omitempty"` // toilet_flush events
	Night           *nightJSON `json:"night,omitempty"`
	Steps           *stepsJSON `json:"steps,omitempty"`
}

// daySummary: GET /residents/{id}/summary?date=YYYY-MM-DD → the calendar
// day in the program time zone (CARE_TIMEZONE; default today): min, mean
// and max of each vital sign; and, when the trends source can, activity
// per local hour, bathroom visits, bed exits in the night before, and the
// day's steps against the resident's own 14-day baseline.
func (s *Server) daySummary(c *fiber.Ctx) error {
	if err := s.needTrends(); err != nil {
		return err
	}
	r, err := s.visibleResident(c)
	if err != nil {
		return err
	}
	loc := s.o.Location
	day := s.o.Clock().In(loc)
	if v := c.Query("date"); v != "" {
		day, err = time.ParseInLocation(time.DateOnly, v, loc)
		if err != nil {
			return invalid("invalid_date", "date must be YYYY-MM-DD")
		}
	}
	from := localDay(day, 0, loc)
	to := localDay(day, 1, loc) // 23 or 25 hours on a DST change
	if err := s.audit(c, r.ID, "summary.read", ""); err != nil {
		return err
	}
	ctx := c.UserContext()
	unavailable := func(err error, what string) error {
		s.log.Error().Err(err).Str("resident_id", r.ID).Str("query", what).Msg("summary query failed")
		return ErrUnavailable.with("the time-series store did not answer; retry later")
	}
	stats, err := s.o.Trends.Summary(ctx, r.ID, from, to)
	if err != nil {
		return unavailable(err, "vitals")
	}
	out := daySummaryJSON{ResidentID: r.ID, Date: from.Format(time.DateOnly), TimeZone: loc.String(),
		From: wireTime(from), To: wireTime(to), Vitals: []statsJSON{}}
	for _, st := range stats {
		m, ok := catalog.LookupMetric(st.Metric)
		if !ok || !m.Vital {
			continue
		}
		out.Vitals = append(out.Vitals, statsJSON{Metric: st.Metric, Unit: m.Unit, Min: st.Min, Mean: st.Mean, Max: st.Max, Count: st.Count})
	}
	sort.Slice(out.Vitals, func(i, j int) bool { return out.Vitals[i].Metric < out.Vitals[j].Metric })

	src := s.o.DayActivity
	if src == nil {
		return c.JSON(out)
	}
	windows, err := src.ActivityCounts(ctx, r.ID, from, to)
	if err != nil {
		return unavailable(err, "activity")
	}
	var perHour [24]int64
	for _, w := range windows {
		perHour[windowStart(w).In(loc).Hour()] += int64(w.V)
	}
	out.ActivityPerHour = &perHour

	bath, err := src.EventCount(ctx, r.ID, catalog.EventToilet, from, to)
	if err != nil {
		return unavailable(err, "bathroom")
	}
	out.BathroomVisits = &bath

	prev := localDay(day, -1, loc)
	night := nightJSON{
		From: time.Date(prev.Year(), prev.Month(), prev.Day(), nightStartHour, 0, 0, 0, loc).UTC(),
		To:   time.Date(day.Year(), day.Month(), day.Day(), nightEndHour, 0, 0, 0, loc).UTC(),
	}
	if night.BedExits, err = src.EventCount(ctx, r.ID, catalog.EventBedExit, night.From, night.To); err != nil {
		return unavailable(err, "night")
	}
	out.Night = &night

	steps, err := src.WindowMax(ctx, r.ID, "steps", localDay(day, -stepsBaselineDays, loc), to)
	if err != nil {
		return unavailable(err, "steps")
	}
	out.Steps = stepsVsBaseline(steps, from, loc)
	return c.JSON(out)
}

// localDay is the local midnight that starts the day n days after day's.
func localDay(day time.Time, n int, loc *time.Location) time.Time {
	return time.Date(day.Year(), day.Month(), day.Day()+n, 0, 0, 0, 0, loc)
}

// windowStart is a time inside the window w summarises: its end less a
// millisecond, so a window that ends at a local hour (or midnight) counts
// in the hour (day) before it.
func windowStart(w flux.WindowValue) time.Time { return w.End.Add(-time.Millisecond) }

// stepsVsBaseline takes the daily maximum of the steps counter per local
// day: today's against the mean of the previous days' that have data (a
// day without the wearable is not a day of zero steps).
func stepsVsBaseline(windows []flux.WindowValue, today time.Time, loc *time.Location) *stepsJSON {
	todayKey := today.Format(time.DateOnly)
	daily := map[string]float64{}
	for _, w := range windows {
		k := windowStart(w).In(loc).Format(time.DateOnly)
		if v, ok := daily[k]; !ok || w.V > v {
			daily[k] = w.V
		}
	}
	out := &stepsJSON{}
	if v, ok := daily[todayKey]; ok {
		out.Today = &v
	}
	sum := 0.0
	for k, v := range daily {
		if k != todayKey {
			sum += v
			out.BaselineDays++
		}
	}
	if out.BaselineDays > 0 {
		b := sum / float64(out.BaselineDays)
		out.Baseline14d = &b
		if out.Today != nil && b > 0 {
			r := *out.Today / b
			out.Ratio = &r
		}
	}
	return out
}
