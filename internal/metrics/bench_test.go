package metrics

import "testing"

// The ingest path resolves its series once (With at construction or per
// message for labelled ones) and then calls Inc/Observe per message. These
// benchmarks measure exactly those calls, so the registry behind the API can
// be compared: run them on the old and the new implementation.

func BenchmarkCounterInc(b *testing.B) {
	c := New().Counter("bench_total", "Bench.").With()
	b.ReportAllocs()
	for b.Loop() {
		c.Inc()
	}
}

func BenchmarkCounterIncParallel(b *testing.B) {
	c := New().Counter("bench_total", "Bench.").With()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Inc()
		}
	})
}

// BenchmarkCounterWithInc is the labelled case: ingest looks the series up
// by outcome/reason for each message.
func BenchmarkCounterWithInc(b *testing.B) {
	v := New().Counter("bench_total", "Bench.", "kind", "outcome")
	b.ReportAllocs()
	for b.Loop() {
		v.With("telemetry", "accepted").Inc()
	}
}

func BenchmarkHistogramObserve(b *testing.B) {
	h := New().Histogram("bench_seconds", "Bench.", DefBuckets).With()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		h.Observe(float64(i%1000) / 10000)
		i++
	}
}

func BenchmarkHistogramObserveParallel(b *testing.B) {
	h := New().Histogram("bench_seconds", "Bench.", DefBuckets).With()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			h.Observe(float64(i%1000) / 10000)
			i++
		}
	})
}
