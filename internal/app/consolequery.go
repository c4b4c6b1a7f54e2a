package app

import (
	"context"
	"sync"
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

// lastReadingsTTL: the console overview's "last reading" of each resident
// is at most this old, plus a background refresh.
const lastReadingsTTL = 15 * time.Second

// lastReadingsCache answers the console overview's last reading of every
// resident (query.LastReadings) from an answer at most ttl old, asking
// InfluxDB again in the background once it is older (stale while
// revalidating): the query reads the last day of every series, 0.05-0.8 s
// for 100 residents on a busy machine, while "missing data" means no
// reading for 24 hours, which a quarter of a minute does not change. A
// reading older than the range asked for is left out of a cached answer,
// as InfluxDB would leave it out; only the first ask waits for InfluxDB.
type lastReadingsCache struct {
	src query.LastReadings
	ttl time.Duration
	now func() time.Time

	mu         sync.Mutex
	at         time.Time
	last       map[string]time.Time
	refreshing bool
}

func (c *lastReadingsCache) LastReadings(ctx context.Context, from, to time.Time) (map[string]time.Time, error) {
	c.mu.Lock()
	if c.last == nil {
		c.mu.Unlock()
		last, err := c.src.LastReadings(ctx, from, to)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		c.at, c.last = c.now(), last
	} else if c.now().Sub(c.at) >= c.ttl && !c.refreshing {
		c.refreshing = true
		go c.refresh(from, to)
	}
	out := make(map[string]time.Time, len(c.last))
	for rid, t := range c.last {
		if !t.Before(from) {
			out[rid] = t
		}
	}
	c.mu.Unlock()
	return out, nil
}

// refresh asks again, the range moved on by the answer's age; on an error
// the stale answer stays and the next ask after the TTL tries again.
func (c *lastReadingsCache) refresh(from, to time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	last, err := c.src.LastReadings(ctx, from, to)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		c.at, c.last = c.now(), last
	}
	c.refreshing = false
}
