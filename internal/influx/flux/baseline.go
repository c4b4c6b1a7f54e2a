package flux

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
// resident at once: day n starts at From's clock time n calendar days
// later in Location and lasts Period of wall-clock time, for the days that
// start before To. From is a local midnight for whole days, or 22:00 local
// with Period 8h for nights. A day with a daylight-saving change then has
// 23 or 25 hours, and its night 7 or 9; without a Location the days are
// fixed 24-hour days from From.
type DailyQuery struct {
	Metric   string
	Fn       string // min, max or mean
	From, To time.Time
	Period   time.Duration // the part of each day that counts, from its start: 1h to 24h (0 = 24h)
	Location *time.Location
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
// together. It queries all residents at once (GET /overview: who is
// drifting from their own baseline).
//
// Flux 0.65 (InfluxDB 1.8) has no time-zone-aware windows, so the days are
// cut into spans of equal days 24 hours apart, one window() query each:
// one span in a zone without daylight saving such as Asia/Seoul, three
// when a change falls in the range (the days before it, its day alone,
// the days after). One branch per local day was tried: 1.8's Flux slows
// down more than linearly with the number of branches, 17 of them taking
// three times as long as these windows for 100 residents' hourly data.
func (r *Reader) DailyAggregates(ctx context.Context, q DailyQuery) (map[string][]DayValue, error) {
	fs, spans, err := r.dailyFluxes(q)
	if err != nil {
		return nil, err
	}
	out := map[string][]DayValue{}
	for i, f := range fs {
		if err := r.dailySpan(ctx, f, spans[i], out); err != nil {
			return nil, err
		}
	}
	for _, vs := range out {
		sort.Slice(vs, func(a, b int) bool { return vs[a].Day < vs[b].Day })
	}
	return out, nil
}

// dailySpan runs the query of one span and adds its days to out.
func (r *Reader) dailySpan(ctx context.Context, f Flux, sp dailySpan, out map[string][]DayValue) error {
	return r.scanCSV(ctx, f, []string{"resident_id", "_start", "_value"}, func(vals []string) error {
		rid := vals[0]
		v, err := strconv.ParseFloat(vals[2], 64)
		if rid == "" || err != nil {
			return nil // no resident, or not a number: not ours
		}
		start, err := time.Parse(time.RFC3339Nano, vals[1])
		if err != nil {
			return fmt.Errorf("influx query: _start %q: %w", vals[1], err)
		}
		// The span's windows start 24 hours apart from its start (the
		// first may be cut to it by range); rounding takes either to its
		// day.
		n := sp.first + int((start.Sub(sp.start)+dailyEvery/2)/dailyEvery)
		out[rid] = append(out[rid], DayValue{Day: n, V: v})
		return nil
	})
}

// dailySpan is a run of days of one length whose starts are 24 hours
// apart: Flux's window() covers them with one query.
type dailySpan struct {
	first, n int // day numbers first .. first+n-1
	start    time.Time
	length   time.Duration
	stop     time.Time // the range's stop: the last day's end, or To
}

// spans cuts q's days into dailySpans. Day n starts at From's wall-clock
// time n calendar days later and ends Period of wall-clock time after
// that, so the days of a daylight-saving change break the runs.
func (q DailyQuery) spans() []dailySpan {
	loc := q.Location
	if loc == nil {
		_, off := q.From.Zone()
		loc = time.FixedZone("", off) // fixed 24-hour days
	}
	period := q.Period
	if period == 0 {
		period = dailyEvery
	}
	f := q.From.In(loc)
	day := func(n int, extra time.Duration) time.Time {
		return time.Date(f.Year(), f.Month(), f.Day()+n, f.Hour(), f.Minute(), f.Second()+int(extra/time.Second), f.Nanosecond(), loc)
	}
	var out []dailySpan
	for n := 0; ; n++ {
		start, end := day(n, 0), day(n, period)
		if !start.Before(q.To) {
			break
		}
		if k := len(out) - 1; k >= 0 && end.Sub(start) == out[k].length && start.Sub(out[k].start) == time.Duration(out[k].n)*dailyEvery {
			out[k].n++
			out[k].stop = end
		} else {
			out = append(out, dailySpan{first: n, n: 1, start: start, length: end.Sub(start), stop: end})
		}
	}
	if k := len(out) - 1; k >= 0 && out[k].stop.After(q.To) {
		out[k].stop = q.To
	}
	return out
}

// dailyFluxes validates q and builds the query of each of its spans.
func (r *Reader) dailyFluxes(q DailyQuery) ([]Flux, []dailySpan, error) {
	if err := r.checkDaily(q); err != nil {
		return nil, nil, err
	}
	spans := q.spans()
	fs := make([]Flux, len(spans))
	for i, sp := range spans {
		f, err := r.spanFlux(q, sp)
		if err != nil {
			return nil, nil, err
		}
		fs[i] = f
	}
	return fs, spans, nil
}

func (r *Reader) checkDaily(q DailyQuery) error {
	if _, ok := catalog.LookupMetric(q.Metric); !ok {
		return fmt.Errorf("metric %q is not in the catalogue", q.Metric)
	}
	if _, ok := dailyFns[q.Fn]; !ok {
		return fmt.Errorf("fn %q: use min, max or mean", q.Fn)
	}
	if q.Period != 0 && (q.Period < time.Hour || q.Period > dailyEvery || q.Period%time.Second != 0) {
		return fmt.Errorf("period %s: must be from 1h to 24h in whole seconds", q.Period)
	}
	return checkRange(q.From, q.To)
}

// spanFlux builds the query of one span of q, which checkDaily passed.
// Flux's window() ends each window at a multiple of every plus offset and
// starts it period before, so the offset that makes windows start at the
// span's start is start + length, modulo every. A span of several days
// has them every 24 hours; a day alone (a daylight-saving change) is one
// window of its own length. The range ends with StopLit: InfluxDB 1.8's
// range() would return a point lying exactly on its stop.
func (r *Reader) spanFlux(q DailyQuery, sp dailySpan) (Flux, error) {
	every := max(dailyEvery, sp.length)
	off := time.Duration(sp.start.Add(sp.length).UnixMilli()%every.Milliseconds()) * time.Millisecond
	everyLit, err := DurationLit(every)
	if err != nil {
		return Flux{}, err
	}
	period, err := DurationLit(sp.length)
	if err != nil {
		return Flux{}, err
	}
	window := Fluxf("every: %s, period: %s", everyLit, period)
	if off > 0 {
		offset, err := DurationLit(off)
		if err != nil {
			return Flux{}, err
		}
		window = Fluxf("every: %s, period: %s, offset: %s", everyLit, period, offset)
	}
	return Fluxf(`from(bucket: %s)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r._measurement == "readings" and r._field == %s)
  |> group(columns: ["resident_id"])
  |> window(%s)
  |> %s()
  |> keep(columns: ["_start", "_value", "resident_id"])`,
		StringLit(r.bucket), TimeLit(sp.start), StopLit(sp.stop), StringLit(q.Metric),
		Lit(window), Lit{text: dailyFns[q.Fn]}), nil
}

// DailyCache is a Reader whose DailyAggregates answers are remembered. The
// overview's baselines are whole past days, which change only when late
// data arrives (a gateway's backlog after an outage), yet they cost
// InfluxDB 1.8 seconds: for 100 residents' one-minute data the overview's
// three queries (run at once, 2 cores) took 5.5 s (make bench-api). So an
// answer older than the TTL is still given at once while a fresh one is
// asked in the background (stale while revalidating), and only a query
// never asked before waits for InfluxDB; api.Server.WarmBaselines asks the
// day's queries before any coordinator does. Every other method is the
// Reader's.
type DailyCache struct {
	*Reader
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

// NewDailyCache wraps r; answers are fresh for ttl by the clock now.
func NewDailyCache(r *Reader, ttl time.Duration, now func() time.Time) *DailyCache {
	if now == nil {
		now = time.Now
	}
	return &DailyCache{Reader: r, ttl: ttl, now: now, items: map[string]*dailyCacheItem{}}
}

// DailyAggregates answers from the cache when it holds an answer to the
// same query, refreshing it in the background when it is older than the
// TTL; otherwise it asks InfluxDB and keeps the answer (not an error). The
// caller must not modify the map it gets.
func (c *DailyCache) DailyAggregates(ctx context.Context, q DailyQuery) (map[string][]DayValue, error) {
	k := q.Metric + "|" + q.Fn + "|" + strconv.FormatInt(q.From.UnixNano(), 36) + "|" +
		strconv.FormatInt(q.To.UnixNano(), 36) + "|" + strconv.FormatInt(int64(q.Period), 36)
	if q.Location != nil {
		k += "|" + q.Location.String()
	}
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
	out, err := c.Reader.DailyAggregates(ctx, q)
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
	out, err := c.Reader.DailyAggregates(ctx, q)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		it.at, it.out = c.now(), out
	}
	it.refreshing = false
}
