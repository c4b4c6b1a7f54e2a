package app

import (
	"context"
	"time"

	"github.com/carehub/carehub/api"
	"github.com/carehub/carehub/internal/influx/flux"
	"github.com/carehub/carehub/internal/query"
)

// ReadingsSet answers a resident page's charts with one Flux query
// (query.ReadingsSetSource).
func (r readingsAdapter) ReadingsSet(ctx context.Context, qs []api.ReadingsQuery) ([][]api.Point, error) {
	fq := make([]flux.ReadingsQuery, len(qs))
	for i, q := range qs {
		fq[i] = flux.ReadingsQuery{ResidentID: q.ResidentID, Metric: q.Metric, From: q.From, To: q.To, Every: q.Every, Fn: q.Fn, Location: r.loc}
	}
	sets, err := r.c.ReadingsSet(ctx, fq)
	if err != nil {
		return nil, err
	}
	out := make([][]api.Point, len(sets))
	for i, pts := range sets {
		out[i] = make([]api.Point, len(pts))
		for j, p := range pts {
			out[i][j] = api.Point{T: p.T, V: p.V}
		}
	}
	return out, nil
}

// sparklineTodayTTL: today's part of the overview's sparklines is at most
// this old (and asked again in the background once it is).
const sparklineTodayTTL = time.Minute

// dailyMeans answers the overview's sparklines (query.DailySource) for
// every resident at once: the whole past days from the baseline cache
// (they change only when late data arrives), today's from a cache of its
// own that is a minute fresh. Both answer at once from what they hold and
// refresh in the background, so only the first overview of a day waits
// for InfluxDB (and the warm-up asks before anyone does).
type dailyMeans struct {
	past, today *flux.DailyCache
	loc         *time.Location
}

func (d dailyMeans) DailyMeans(ctx context.Context, metric string, from, to time.Time) (map[string][]query.Point, error) {
	y, m, day := to.In(d.loc).Date()
	today := time.Date(y, m, day, 0, 0, 0, 0, d.loc)
	from = from.In(d.loc)
	out := map[string][]query.Point{}
	add := func(c *flux.DailyCache, start, end time.Time) error {
		if !start.Before(end) {
			return nil
		}
		days, err := c.DailyAggregates(ctx, flux.DailyQuery{Metric: metric, Fn: "mean", From: start, To: end, Location: d.loc})
		if err != nil {
			return err
		}
		for rid, vs := range days {
			for _, v := range vs {
				out[rid] = append(out[rid], query.Point{T: start.AddDate(0, 0, v.Day), V: v.V})
			}
		}
		return nil
	}
	if err := add(d.past, from, today); err != nil {
		return nil, err
	}
	if err := add(d.today, today, today.AddDate(0, 0, 1)); err != nil {
		return nil, err
	}
	return out, nil
}

var _ query.ReadingsSetSource = readingsAdapter{}
