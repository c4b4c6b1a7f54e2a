package main

import (
	"math"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/carehub/carehub/internal/metrics"
)

// TestScrapeReadsRegistry: scrape() and histogramQuantile read the text the
// metrics registry renders, under the series keys the benchmarks look up.
func TestScrapeReadsRegistry(t *testing.T) {
	r := metrics.New()
	msgs := r.Counter("carehub_ingest_messages_total", "MQTT messages by topic kind and outcome.", "kind", "outcome")
	msgs.With("telemetry", "accepted").Add(1200)
	r.Counter("carehub_influx_points_written_total", "Points InfluxDB accepted, by measurement.", "measurement").With("readings").Add(3600)
	r.Counter("carehub_ingest_rejected_total", "Rejected device input by reason.", "reason").With("out_of_range").Inc()
	e2e := r.Histogram("carehub_ingest_end_to_end_seconds", "End to end.", []float64{0.01, 0.1, 1}).With()
	for range 50 {
		e2e.Observe(0.005)
	}
	for range 50 {
		e2e.Observe(0.05)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { r.WriteText(w) }))
	defer srv.Close()

	m, err := scrape(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]float64{
		`carehub_ingest_messages_total{kind="telemetry",outcome="accepted"}`: 1200,
		`carehub_influx_points_written_total{measurement="readings"}`:        3600,
		`carehub_ingest_rejected_total{reason="out_of_range"}`:               1,
		`carehub_ingest_end_to_end_seconds_bucket{le="+Inf"}`:                100,
		`carehub_ingest_end_to_end_seconds_count`:                            100,
	} {
		if got, ok := m[k]; !ok || got != want {
			t.Errorf("scrape[%s] = %v (present %v), want %v", k, got, ok, want)
		}
	}
	// p50 is the 50th of 100: the top of the first bucket; p99 inside the second.
	if got := histogramQuantile(m, "carehub_ingest_end_to_end_seconds", 0.5); math.Abs(got-0.01) > 1e-9 {
		t.Errorf("p50 = %v, want 0.01", got)
	}
	if got, want := histogramQuantile(m, "carehub_ingest_end_to_end_seconds", 0.99), 0.01+0.09*49/50; math.Abs(got-want) > 1e-9 {
		t.Errorf("p99 = %v, want %v", got, want)
	}
}
