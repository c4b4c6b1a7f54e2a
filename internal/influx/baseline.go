package influx

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/carehub/carehub/internal/catalog"
)

// DailyQuery asks for one aggregate of one metric per day, for every
// resident at once: the days [From + n·24h, From + n·24h + Period) for
// n = 0, 1, ... up to To. From is a local midnight for whole days, or 22:00
// local with Period 8h for nights.
type DailyQuery struct {
	Metric   string
	Fn       string // min, max or mean
	From, To time.Time
	Period   time.Duration // the part of each day that counts, from its start: 1h to 24h (0 = 24h)
}

// DayValue is one resident's aggregate over day Day (0 = the day that
// starts at From) of a DailyQuery.
type DayValue struct {
	Day int
	V   float64
}

// dailyFns are the aggregates DailyAggregates runs: the map is the
// whitelist, and the identifier written into the query is its value,
// never the caller's string.
var dailyFns = map[string]string{"min": "min", "max": "max", "mean": "mean"}

const dailyEvery = 24 * time.Hour

// DailyAggregates returns q.Fn of q.Metric per day for every resident with
// readings, keyed by resident id, in day order; a day without readings has
// no value. Series of several devices of a resident are aggregated
// together. It is one Flux query for all residents (GET /overview: who is
// drifting from their own baseline).
//
// Flux 0.65 (InfluxDB 1.8) has no time-zone-aware windows: the days are
// fixed 24-hour windows aligned to From, exact for zones without daylight
// saving such as Asia/Seoul and off by the DST hour elsewhere for part of
// the year. (One branch per exact local day was tried: 1.8's Flux slows
// down more than linearly with the number of branches, 17 of them taking
// three times as long as these windows for 100 residents' hourly data.)
func (c *Client) DailyAggregates(ctx context.Context, q DailyQuery) (map[string][]DayValue, error) {
	f, err := c.dailyFlux(q)
	if err != nil {
		return nil, err
	}
	res, err := c.Query(ctx, f)
	if err != nil {
		return nil, err
	}
	defer res.Close()
	out := map[string][]DayValue{}
	for res.Next() {
		rec := res.Record()
		rid, _ := rec.ValueByKey("resident_id").(string)
		var v float64
		switch x := rec.Value().(type) {
		case float64:
			v = x
		case int64:
			v = float64(x)
		case uint64:
			v = float64(x)
		default:
			continue
		}
		// Each window starts at From + n·24h (the first may be cut to
		// From by range); rounding takes either to day n.
		n := int((rec.Start().Sub(q.From) + dailyEvery/2) / dailyEvery)
		if rid != "" {
			out[rid] = append(out[rid], DayValue{Day: n, V: v})
		}
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("influx query: %w", err)
	}
	for _, vs := range out {
		sort.Slice(vs, func(a, b int) bool { return vs[a].Day < vs[b].Day })
	}
	return out, nil
}

// dailyFlux validates q and builds its query. Flux's window() ends each
// window at a multiple of every plus offset and starts it period before,
// so the offset that makes windows start at From's time of day is
// From + Period, modulo a day. The range ends with StopLit(To): InfluxDB
// 1.8's range() would return a point lying exactly on its stop.
func (c *Client) dailyFlux(q DailyQuery) (Flux, error) {
	if _, ok := catalog.LookupMetric(q.Metric); !ok {
		return Flux{}, fmt.Errorf("metric %q is not in the catalogue", q.Metric)
	}
	ident, ok := dailyFns[q.Fn]
	if !ok {
		return Flux{}, fmt.Errorf("fn %q: use min, max or mean", q.Fn)
	}
	if q.Period == 0 {
		q.Period = dailyEvery
	}
	if q.Period < time.Hour || q.Period > dailyEvery || q.Period%time.Millisecond != 0 {
		return Flux{}, fmt.Errorf("period %s: must be from 1h to 24h", q.Period)
	}
	if err := checkRange(q.From, q.To); err != nil {
		return Flux{}, err
	}
	off := time.Duration(q.From.Add(q.Period).UnixMilli()%dailyEvery.Milliseconds()) * time.Millisecond
	every, _ := DurationLit(dailyEvery)
	period, err := DurationLit(q.Period)
	if err != nil {
		return Flux{}, err
	}
	window := Fluxf("every: %s, period: %s", every, period)
	if off > 0 {
		offset, err := DurationLit(off)
		if err != nil {
			return Flux{}, err
		}
		window = Fluxf("every: %s, period: %s, offset: %s", every, period, offset)
	}
	return Fluxf(`from(bucket: %s)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r._measurement == "readings" and r._field == %s)
  |> group(columns: ["resident_id"])
  |> window(%s)
  |> %s()
  |> keep(columns: ["_start", "_value", "resident_id"])`,
		StringLit(c.bucket), TimeLit(q.From), StopLit(q.To), StringLit(q.Metric),
		Lit{text: window.text}, Lit{text: ident}), nil
}

// DailyCache is a Client whose DailyAggregates answers are remembered. The
// overview's baselines are whole past days, which change only when late
// data arrives (a gateway's backlog after an outage), yet they cost
// InfluxDB 1.8 seconds: for 100 residents' one-minute data the overview's
// three queries (run at once, 2 cores) took 5.5 s (make bench-api). So an
// answer older than the TTL is still given at once while a fresh one is
// asked in the background (stale while revalidating), and only a query
// never asked before waits for InfluxDB; api.Server.WarmBaselines asks the
// day's queries before any coordinator does. Every other method is the
// Client's.
type DailyCache struct {
	*Client
	ttl time.Duration
	now func() time.Time

	mu    sync.Mutex
	items map[string]*dailyCacheItem
}

type dailyCacheItem struct {
	at         time.Time
	out        map[string][]DayValue
	refreshing bool
}

// dailyCacheMaxItems bounds the cache: the overview asks three queries a
// day, so this is weeks of them; when full, it starts again empty.
const dailyCacheMaxItems = 64

// dailyRefreshTimeout bounds a background refresh.
const dailyRefreshTimeout = 2 * time.Minute

// NewDailyCache wraps c; answers are fresh for ttl by the clock now.
func NewDailyCache(c *Client, ttl time.Duration, now func() time.Time) *DailyCache {
	if now == nil {
		now = time.Now
	}
	return &DailyCache{Client: c, ttl: ttl, now: now, items: map[string]*dailyCacheItem{}}
}

// DailyAggregates answers from the cache when it holds an answer to the
// same query, refreshing it in the background when it is older than the
// TTL; otherwise it asks InfluxDB and keeps the answer (not an error). The
// caller must not modify the map it gets.
func (c *DailyCache) DailyAggregates(ctx context.Context, q DailyQuery) (map[string][]DayValue, error) {
	k := q.Metric + "|" + q.Fn + "|" + strconv.FormatInt(q.From.UnixNano(), 36) + "|" +
		strconv.FormatInt(q.To.UnixNano(), 36) + "|" + strconv.FormatInt(int64(q.Period), 36)
	c.mu.Lock()
	if it, ok := c.items[k]; ok {
		if c.now().Sub(it.at) >= c.ttl && !it.refreshing {
			it.refreshing = true
			go c.refresh(it, q)
		}
		out := it.out
		c.mu.Unlock()
		return out, nil
	}
	c.mu.Unlock()
	out, err := c.Client.DailyAggregates(ctx, q)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.items) >= dailyCacheMaxItems {
		c.items = map[string]*dailyCacheItem{}
	}
	c.items[k] = &dailyCacheItem{at: c.now(), out: out}
	return out, nil
}

// refresh asks InfluxDB for a fresh answer to q, the query of item it; on an
// error the stale answer stays, and the next call after the TTL tries
// again.
func (c *DailyCache) refresh(it *dailyCacheItem, q DailyQuery) {
	ctx, cancel := context.WithTimeout(context.Background(), dailyRefreshTimeout)
	defer cancel()
	out, err := c.Client.DailyAggregates(ctx, q)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		it.at, it.out = c.now(), out
	}
	it.refreshing = false
}
