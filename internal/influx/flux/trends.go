package flux

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/carehub/carehub/internal/catalog"
)

// MaxTrendRange bounds the time range of the trend queries below, so one
// request cannot scan years of raw points.
const MaxTrendRange = 31 * 24 * time.Hour

// MetricValue is one metric's value at one time.
type MetricValue struct {
	Metric string
	T      time.Time
	V      float64
}

// MetricStats are one metric's statistics over a range.
type MetricStats struct {
	Metric         string
	Min, Mean, Max float64
	Count          int64
}

func checkRange(from, to time.Time) error {
	if from.IsZero() || to.IsZero() || !from.Before(to) {
		return errors.New("from must be before to")
	}
	if to.Sub(from) > MaxTrendRange {
		return fmt.Errorf("range longer than %s", MaxTrendRange)
	}
	return nil
}

// latestFlux: the last point of every field of one resident. Every query
// here ends its range with StopLit: Flux 0.65 on InfluxDB 1.8 would return
// a point lying exactly on range()'s stop, which would count a reading at
// the next local midnight in the wrong day.
func (r *Reader) latestFlux(residentID string, from, to time.Time) (Flux, error) {
	if !catalog.ValidID(residentID) {
		return Flux{}, fmt.Errorf("resident id %q is not a valid id", residentID)
	}
	if err := checkRange(from, to); err != nil {
		return Flux{}, err
	}
	return Fluxf(`from(bucket: %s)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r._measurement == "readings" and r.resident_id == %s)
  |> group(columns: ["_field"])
  |> sort(columns: ["_time"])
  |> last()
  |> keep(columns: ["_time", "_field", "_value"])`,
		StringLit(r.bucket), TimeLit(from), StopLit(to), StringLit(residentID)), nil
}

// Latest returns the latest value of every metric of a resident in
// [from, to), one per metric (whichever device sent it).
func (r *Reader) Latest(ctx context.Context, residentID string, from, to time.Time) ([]MetricValue, error) {
	f, err := r.latestFlux(residentID, from, to)
	if err != nil {
		return nil, err
	}
	var out []MetricValue
	err = r.scan(ctx, f, func(field string, t time.Time, v float64) {
		out = append(out, MetricValue{Metric: field, T: t, V: v})
	})
	return out, err
}

// statsFns are the aggregates Summary runs; the names are Flux functions
// from this whitelist only.
var statsFns = []string{"min", "max", "mean", "count"}

// Summary returns min, mean, max and count of every metric of a resident
// in [from, to) (a calendar day for GET /residents/{id}/summary).
func (r *Reader) Summary(ctx context.Context, residentID string, from, to time.Time) ([]MetricStats, error) {
	if !catalog.ValidID(residentID) {
		return nil, fmt.Errorf("resident id %q is not a valid id", residentID)
	}
	if err := checkRange(from, to); err != nil {
		return nil, err
	}
	byMetric := map[string]*MetricStats{}
	var order []string
	for _, fn := range statsFns {
		f := Fluxf(`from(bucket: %s)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r._measurement == "readings" and r.resident_id == %s)
  |> group(columns: ["_field"])
  |> %s()
  |> keep(columns: ["_field", "_value"])`,
			StringLit(r.bucket), TimeLit(from), StopLit(to), StringLit(residentID), Lit{text: fn})
		err := r.scan(ctx, f, func(field string, _ time.Time, v float64) {
			s := byMetric[field]
			if s == nil {
				s = &MetricStats{Metric: field}
				byMetric[field] = s
				order = append(order, field)
			}
			switch fn {
			case "min":
				s.Min = v
			case "max":
				s.Max = v
			case "mean":
				s.Mean = v
			case "count":
				s.Count = int64(v)
			}
		})
		if err != nil {
			return nil, err
		}
	}
	out := make([]MetricStats, 0, len(order))
	for _, m := range order {
		out = append(out, *byMetric[m])
	}
	return out, nil
}

// LastReadings returns, for every resident with a reading in [from, to),
// the time of their latest one (GET /overview: who has gone quiet).
func (r *Reader) LastReadings(ctx context.Context, from, to time.Time) (map[string]time.Time, error) {
	if err := checkRange(from, to); err != nil {
		return nil, err
	}
	f := Fluxf(`from(bucket: %s)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r._measurement == "readings")
  |> last()
  |> keep(columns: ["_time", "resident_id"])`,
		StringLit(r.bucket), TimeLit(from), StopLit(to))
	out := map[string]time.Time{}
	err := r.scanCSV(ctx, f, []string{"resident_id", "_time"}, func(vals []string) error {
		if vals[0] == "" {
			return nil
		}
		t, err := time.Parse(time.RFC3339Nano, vals[1])
		if err != nil {
			return fmt.Errorf("influx query: _time %q: %w", vals[1], err)
		}
		if t.After(out[vals[0]]) {
			out[vals[0]] = t
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// MaxExportPoints bounds one export: a month of a wearable's minute data
// for a few metrics fits; more is asked for in several ranges.
const MaxExportPoints = 200_000
