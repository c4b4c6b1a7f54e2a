package flux

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ReadingsSet answers several aggregated queries about one resident over
// one range and window (a resident page's charts: every metric, each with
// its own Fn) with one Flux query instead of one each: each query costs
// InfluxDB 1.8 a compilation and a storage read of its own, which for a
// dozen metrics, most of them empty, was most of the page's time. The
// answers are Readings' for each query: the same merged series, windows
// and labels. The raw points read are bounded by the first query's
// MaxScan (MaxScanRows when 0) for all of them together.
func (r *Reader) ReadingsSet(ctx context.Context, qs []ReadingsQuery) ([][]Point, error) {
	out := make([][]Point, len(qs))
	if len(qs) == 0 {
		return out, nil
	}
	qs = append([]ReadingsQuery(nil), qs...) // the defaults below are ours, not the caller's
	q0 := qs[0]
	if q0.Bucket == "" {
		q0.Bucket = r.bucket
	}
	byMetric := map[string]int{}
	fields := make([]string, len(qs))
	for i, q := range qs {
		if q.Bucket == "" {
			q.Bucket = r.bucket
		}
		if q.Fn == "" {
			q.Fn = "mean"
		}
		qs[i] = q
		if _, err := q.Flux(); err != nil { // validates every value the query carries
			return nil, err
		}
		if q.Every == 0 || q.ResidentID != q0.ResidentID || q.Bucket != q0.Bucket || !q.From.Equal(q0.From) || !q.To.Equal(q0.To) ||
			q.Every != q0.Every || q.Location.String() != q0.Location.String() {
			return nil, errors.New("a readings set is aggregated queries of one resident over one range and window")
		}
		if _, dup := byMetric[q.Metric]; dup {
			return nil, fmt.Errorf("metric %q asked twice in one readings set", q.Metric)
		}
		byMetric[q.Metric] = i
		fields[i] = `r._field == ` + StringLit(q.Metric).text
	}
	// Metrics come from the catalogue (validated above) as string
	// literals: the or-chain is built from literals only.
	f := Flux{text: Fluxf(`from(bucket: %s)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r._measurement == "readings" and r.resident_id == %s)
  |> filter(fn: (r) => `, StringLit(q0.Bucket), TimeLit(q0.From), StopLit(q0.To), StringLit(q0.ResidentID)).text +
		strings.Join(fields, " or ") + ")\n  |> keep(columns: [\"_field\", \"_time\", \"_value\"])"}
	w := newWindowing(q0.Every, q0.Location)
	acc := make([]map[int64]*window, len(qs))
	for i := range acc {
		acc[i] = map[int64]*window{}
	}
	scanned, most := 0, q0.MaxScan
	if most <= 0 {
		most = MaxScanRows
	}
	err := r.scanCSV(ctx, f, []string{"_field", "_time", "_value"}, func(vals []string) error {
		i, ok := byMetric[vals[0]]
		if !ok {
			return nil
		}
		v, err := strconv.ParseFloat(vals[2], 64)
		if err != nil {
			return nil // not a number: not ours
		}
		t, err := time.Parse(time.RFC3339Nano, vals[1])
		if err != nil {
			return fmt.Errorf("influx query: _time %q: %w", vals[1], err)
		}
		if scanned++; scanned > most {
			return fmt.Errorf("%w: more than %d raw points in %s of %d metrics", ErrTooManyRows, most, q0.To.Sub(q0.From), len(qs))
		}
		k := w.key(t)
		a := acc[i][k]
		if a == nil {
			a = &window{}
			acc[i][k] = a
		}
		a.add(t, v)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i, q := range qs {
		out[i] = windowPoints(acc[i], w, q)
	}
	return out, nil
}
