package metrics

import (
	"strings"
	"testing"
)

func TestWriteText(t *testing.T) {
	r := New()
	c := r.Counter("carehub_ingest_rejected_total", "Rejected input by reason.", "reason")
	c.With("out_of_range").Add(2)
	c.With("unknown_metric").Inc()
	c.With("a \"quoted\" \\ value\n").Inc()
	h := r.Histogram("carehub_write_seconds", "Write latency.", []float64{0.1, 1})
	h.With().Observe(0.05)
	h.With().Observe(0.5)
	h.With().Observe(5)
	r.GaugeFunc("carehub_lag", "Lag.", func() float64 { return 7 })
	var b strings.Builder
	r.WriteText(&b)
	out := b.String()
	for _, want := range []string{
		`carehub_ingest_rejected_total{reason="out_of_range"} 2`,
		`carehub_ingest_rejected_total{reason="unknown_metric"} 1`,
		`carehub_ingest_rejected_total{reason="a \"quoted\" \\ value\n"} 1`,
		`carehub_write_seconds_bucket{le="0.1"} 1`,
		`carehub_write_seconds_bucket{le="1"} 2`,
		`carehub_write_seconds_bucket{le="+Inf"} 3`,
		`carehub_write_seconds_count 3`,
		"carehub_lag 7",
		"# TYPE carehub_write_seconds histogram",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if got := c.With("out_of_range").Value(); got != 2 {
		t.Errorf("counter value = %v, want 2", got)
	}
}

func TestWrongLabelCountPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic for a wrong number of label values")
		}
	}()
	New().Counter("x", "x", "a").With("1", "2")
}
