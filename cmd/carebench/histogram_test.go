package main

import (
	"math"
	"testing"
)

// The benchmark's lag figures come from carehub's histogram: quantiles are
// interpolated within a bucket as Prometheus does, and a phase's own
// figures are the difference of two scrapes.
func TestHistogramQuantileAndDelta(t *testing.T) {
	const h = "lag_seconds"
	bucket := func(le string) string { return h + `_bucket{le="` + le + `"}` }
	before := map[string]float64{bucket("0.1"): 10, bucket("0.5"): 10, bucket("1"): 10, bucket("+Inf"): 10, "other": 3}
	after := map[string]float64{bucket("0.1"): 60, bucket("0.5"): 100, bucket("1"): 109, bucket("+Inf"): 110, "other": 9}

	// All 110: p50 is the 55th, in the first bucket: 0.1·55/60.
	if got := histogramQuantile(after, h, 0.5); math.Abs(got-0.1*55/60) > 1e-9 {
		t.Errorf("p50 of all = %v, want %v", got, 0.1*55/60)
	}
	d := histogramDelta(after, before, h)
	if len(d) != 4 || d[bucket("+Inf")] != 100 {
		t.Fatalf("delta = %v, want the four buckets, 100 observations", d)
	}
	// The 100 between the scrapes: 50 up to 0.1, 40 in (0.1, 0.5], 9 in
	// (0.5, 1], 1 above. p50 is the 50th: 0.1. p90 the 90th: 0.5. p99 the
	// 99th: 1. Above the last bound the quantile is that bound.
	for q, want := range map[float64]float64{0.5: 0.1, 0.9: 0.5, 0.95: 0.5 + 0.5*5/9, 0.99: 1, 1: 1} {
		if got := histogramQuantile(d, h, q); math.Abs(got-want) > 1e-9 {
			t.Errorf("delta p%v = %v, want %v", q*100, got, want)
		}
	}
	if got := histogramQuantile(map[string]float64{}, h, 0.5); got != 0 {
		t.Errorf("no histogram: %v, want 0", got)
	}
}
