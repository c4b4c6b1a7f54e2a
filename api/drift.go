package api

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/carehub/carehub/internal/influx/flux"
)

// BaselineSource answers the overview's baseline queries (flux.Reader,
// or flux.DailyCache to answer repeated overviews at once): one
// aggregate per day for every resident at once (Options.Baselines):
// without it the overview shows no drift.
type BaselineSource interface {
	DailyAggregates(ctx context.Context, q flux.DailyQuery) (map[string][]flux.DayValue, error)
}

// A resident's last days are compared with their own previous two weeks
// (issue 4: "worsening baselines"), not with a population norm. Today is
// left out: a part day has too few steps, and a day is judged when it is
// over.
const (
	driftRecentDays   = 3
	driftBaselineDays = stepsBaselineDays
	// A judgement needs most of the days: a wearable left in a drawer is
	// missing data, not a change in the resident.
	driftMinRecentDays   = 2
	driftMinBaselineDays = 7
)

// driftRule is one baseline a resident can drift from: a metric, its
// daily aggregate, and when the last days are worse than the baseline.
type driftRule struct {
	metric string
	fn     string // daily aggregate: min, max or mean (flux.DailyAggregates)
	night  bool   // a "day" is the night from 22:00 to 06:00 local
	worse  func(baseline, recent float64) bool
	reason func(baseline, recent float64) string
}

// driftEpsilon absorbs float rounding in the means, so that a rise of
// exactly 10/min counts as 10.
const driftEpsilon = 1e-9

// driftRules are the baselines of issue 4, checked in this order.
var driftRules = []driftRule{
	{
		// A wearable's steps counter restarts every day: the day's maximum
		// is the day's steps. Drifting below 60 % of the baseline.
		metric: "steps", fn: "max",
		worse: func(b, r float64) bool { return b > 0 && r < 0.6*b-driftEpsilon },
		reason: func(b, r float64) string {
			return fmt.Sprintf("daily steps %.0f over the last %d days, %.0f %% of the %.0f of the previous %d", r, driftRecentDays, 100*r/b, b, driftBaselineDays)
		},
	},
	{
		// The day's lowest heart rate stands for the resting heart rate.
		// Drifting when up by 10/min or more.
		metric: "heart_rate", fn: "min",
		worse: func(b, r float64) bool { return r-b >= 10-driftEpsilon },
		reason: func(b, r float64) string {
			return fmt.Sprintf("resting heart rate (daily minimum) %.0f/min over the last %d days, up %.0f from %.0f over the previous %d", r, driftRecentDays, r-b, b, driftBaselineDays)
		},
	},
	{
		// Night-time SpO2, the mean of each night. Drifting when down by
		// 2 points or more.
		metric: "spo2", fn: "mean", night: true,
		worse: func(b, r float64) bool { return b-r >= 2-driftEpsilon },
		reason: func(b, r float64) string {
			return fmt.Sprintf("night-time SpO2 %.1f %% over the last %d nights, down %.1f points from %.1f %% over the previous %d", r, driftRecentDays, b-r, b, driftBaselineDays)
		},
	},
}

// driftJSON is one worsening baseline of a resident on GET /overview;
// change is recent − baseline in the metric's unit.
type driftJSON struct {
	Metric   string  `json:"metric"`
	Baseline float64 `json:"baseline"`
	Recent   float64 `json:"recent"`
	Change   float64 `json:"change"`
	Reason   string  `json:"reason"`
}

// driftQuery asks for the baseline days and then the recent days before
// today, as calendar days in loc, or as the nights that start on those
// days' evenings (day n of the answer is the n-th, oldest first). Days
// and nights are local: one with a daylight-saving change is an hour
// longer or shorter.
func driftQuery(r driftRule, now time.Time, loc *time.Location) flux.DailyQuery {
	const days = driftBaselineDays + driftRecentDays
	today := localDay(now.In(loc), 0, loc)
	first := localDay(now.In(loc), -days, loc)
	q := flux.DailyQuery{Metric: r.metric, Fn: r.fn, From: first, To: today, Location: loc}
	if r.night {
		q.From = time.Date(first.Year(), first.Month(), first.Day(), nightStartHour, 0, 0, 0, loc)
		q.Period = time.Duration(24-nightStartHour+nightEndHour) * time.Hour
		q.To = time.Date(today.Year(), today.Month(), today.Day(), nightEndHour, 0, 0, 0, loc)
	}
	return q
}

// judgeDrift compares the mean of the recent days with the mean of the
// baseline days of one resident (days numbered as driftQuery's).
func judgeDrift(r driftRule, values []flux.DayValue) (driftJSON, bool) {
	var base, recent []float64
	for _, v := range values {
		if v.Day < 0 || v.Day >= driftBaselineDays+driftRecentDays {
			continue
		}
		if v.Day < driftBaselineDays {
			base = append(base, v.V)
		} else {
			recent = append(recent, v.V)
		}
	}
	if len(base) < driftMinBaselineDays || len(recent) < driftMinRecentDays {
		return driftJSON{}, false
	}
	b, rc := mean(base), mean(recent)
	if !r.worse(b, rc) {
		return driftJSON{}, false
	}
	return driftJSON{Metric: r.metric, Baseline: round1(b), Recent: round1(rc), Change: round1(rc - b), Reason: r.reason(b, rc)}, true
}

// drift returns, for every resident drifting from a baseline, how. It runs
// one query per rule, all at once (three goroutines per overview), so the
// overview waits for the slowest query only.
func (s *Server) drift(ctx context.Context, src BaselineSource, now time.Time) (map[string][]driftJSON, error) {
	results := make([]map[string][]flux.DayValue, len(driftRules))
	errs := make([]error, len(driftRules))
	var wg sync.WaitGroup
	for i, r := range driftRules {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = src.DailyAggregates(ctx, driftQuery(r, now, s.o.Location))
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out := map[string][]driftJSON{}
	for i, r := range driftRules {
		for rid, values := range results[i] {
			if d, ok := judgeDrift(r, values); ok {
				out[rid] = append(out[rid], d)
			}
		}
	}
	return out, nil
}

func mean(xs []float64) float64 {
	sum := 0.0
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}

// round1 rounds to one decimal: the overview is read by people.
func round1(x float64) float64 { return math.Round(x*10) / 10 }

// WarmBaselines asks the overview's baseline queries now and then every
// interval until ctx ends, so that their answers wait in the cache
// (flux.DailyCache) before a coordinator asks: on InfluxDB 1.8 they take
// seconds for 100 residents' minute data, which no request should wait
// for. A new day's queries are asked within one interval after midnight.
func (s *Server) WarmBaselines(ctx context.Context, every time.Duration) {
	src := s.o.Baselines
	if src == nil {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := s.drift(ctx, src, s.o.Clock()); err != nil && ctx.Err() == nil {
			s.log.Warn().Err(err).Msg("baseline warm-up failed; the next overview asks InfluxDB itself")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
