package flux

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"
)

// MaxScanRows bounds the raw points one aggregated readings query reads:
// Flux 0.65 cannot push window aggregates down to storage (flux.go), so
// carehub aggregates them itself, and a two-year hourly chart of a radar's
// per-second heart rate would otherwise read 63 million rows. A million
// take about a second; beyond, the query is refused with ErrTooManyRows.
const MaxScanRows = 1_000_000

// ErrTooManyRows is an aggregated query over more raw points than it may
// read (MaxScanRows), or a raw one without MaxPoints over more than
// DefaultMaxPoints: ask for a shorter range.
var ErrTooManyRows = errors.New("too many raw points to aggregate")

// Readings runs q against this client's bucket (q.Bucket, when empty):
// the points of every series of the metric merged into one time line, raw
// or one per window that has any (GET /residents/{id}/readings). A window
// is labelled with its start, or with q.From for a first window that
// starts before it.
func (r *Reader) Readings(ctx context.Context, q ReadingsQuery) ([]Point, error) {
	if q.Bucket == "" {
		q.Bucket = r.bucket
	}
	f, err := q.Flux()
	if err != nil {
		return nil, err
	}
	if q.Every == 0 {
		var pts []Point
		err = r.scan(ctx, f, func(_ string, t time.Time, v float64) { pts = append(pts, Point{T: t, V: v}) })
		if err != nil {
			return nil, err
		}
		// Each series came in time order, cut to the limit: the first
		// points of the merged line are among them.
		sort.SliceStable(pts, func(i, j int) bool { return pts[i].T.Before(pts[j].T) })
		if q.MaxPoints == 0 && len(pts) > DefaultMaxPoints {
			// Without an explicit bound the caller wants the whole range:
			// refuse it rather than answer with a silently cut one.
			return nil, fmt.Errorf("%w: more than %d raw points of %s in %s; ask for a shorter range or aggregate with every", ErrTooManyRows, DefaultMaxPoints, q.Metric, q.To.Sub(q.From))
		}
		if n := q.limit(); len(pts) > n {
			pts = pts[:n]
		}
		return pts, nil
	}
	w := newWindowing(q.Every, q.Location)
	acc := map[int64]*window{}
	scanned, most := 0, q.MaxScan
	if most <= 0 {
		most = MaxScanRows
	}
	err = r.scanCSV(ctx, f, []string{"_field", "_time", "_value"}, func(vals []string) error {
		v, err := strconv.ParseFloat(vals[2], 64)
		if err != nil {
			return nil // not a number: not ours
		}
		t, err := time.Parse(time.RFC3339Nano, vals[1])
		if err != nil {
			return fmt.Errorf("influx query: _time %q: %w", vals[1], err)
		}
		if scanned++; scanned > most {
			return fmt.Errorf("%w: more than %d raw points in %s of %s", ErrTooManyRows, most, q.To.Sub(q.From), q.Metric)
		}
		k := w.key(t)
		a := acc[k]
		if a == nil {
			a = &window{}
			acc[k] = a
		}
		a.add(t, v)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return windowPoints(acc, w, q), nil
}

// windowPoints are the windows of acc in time order, each labelled with
// its start, or with q.From for a first window that starts before it.
func windowPoints(acc map[int64]*window, w windowing, q ReadingsQuery) []Point {
	keys := make([]int64, 0, len(acc))
	for k := range acc {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	pts := make([]Point, len(keys))
	for i, k := range keys {
		t := w.start(k)
		if t.Before(q.From) {
			t = q.From
		}
		pts[i] = Point{T: t, V: acc[k].value(q.Fn)}
	}
	return pts
}

// window accumulates the points of one aggregation window.
type window struct {
	n             int64
	sum, min, max float64
	last          float64
	lastT         time.Time
}

func (a *window) add(t time.Time, v float64) {
	if a.n == 0 {
		a.min, a.max, a.last, a.lastT = v, v, v, t
	}
	a.n++
	a.sum += v
	a.min = min(a.min, v)
	a.max = max(a.max, v)
	if !t.Before(a.lastT) {
		a.last, a.lastT = v, t
	}
}

// value is the window's aggregate fn (ValidAggregate; mean when empty).
func (a *window) value(fn string) float64 {
	switch fn {
	case "min":
		return a.min
	case "max":
		return a.max
	case "count":
		return float64(a.n)
	case "last":
		return a.last
	}
	return a.sum / float64(a.n)
}

// windowing numbers the windows of an every: runs of whole calendar days
// in loc (UTC when nil) when every is a number of days, so that a day is
// local midnight to midnight, daylight-saving days included; otherwise
// multiples of every from the Unix epoch, as Flux's aggregateWindow.
type windowing struct {
	every time.Duration
	days  int64 // every in days, or 0
	loc   *time.Location
}

func newWindowing(every time.Duration, loc *time.Location) windowing {
	if loc == nil {
		loc = time.UTC
	}
	w := windowing{every: every, loc: loc}
	if every%(24*time.Hour) == 0 {
		w.days = int64(every / (24 * time.Hour))
	}
	return w
}

// key is the number of the window that holds t.
func (w windowing) key(t time.Time) int64 {
	if w.days > 0 {
		y, m, d := t.In(w.loc).Date()
		day := time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400 // days since 1970-01-01
		return floorDiv(day, w.days)
	}
	return floorDiv(t.UnixNano(), int64(w.every))
}

// start is when window k begins.
func (w windowing) start(k int64) time.Time {
	if w.days > 0 {
		return time.Date(1970, 1, 1+int(k*w.days), 0, 0, 0, 0, w.loc)
	}
	return time.Unix(0, k*int64(w.every)).UTC()
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
