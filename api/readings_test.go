package api_test

import (
	"context"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/carehub/carehub/api"
)

// recordingReadings answers every readings query with one point and keeps
// the last query it was asked.
type recordingReadings struct {
	mu   sync.Mutex
	last api.ReadingsQuery
	n    int
}

func (r *recordingReadings) Readings(_ context.Context, q api.ReadingsQuery) ([]api.Point, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last, r.n = q, r.n+1
	return []api.Point{{T: q.From, V: 72}}, nil
}

// TestReadingsParameters: each parameter of GET /residents/{id}/readings
// is validated before a query is sent, with the error code the contract's
// catalogue names, and valid ones reach the store typed as asked.
func TestReadingsParameters(t *testing.T) {
	rec := &recordingReadings{}
	h := newHarness(t, func(o *api.Options) { o.Readings = rec })
	h.resident("r1")
	now := h.clk.now()
	path := func(q string) string { return "/api/v1/residents/r1/readings?" + q }

	bad := map[string]string{
		"":                                     "invalid_metric",
		"metric=shoe_size":                     "invalid_metric",
		"metric=heart_rate&from=yesterday":     "invalid_time",
		"metric=heart_rate&to=2026-13-01":      "invalid_time",
		"metric=heart_rate&every=5x":           "invalid_every",
		"metric=heart_rate&every=500ms":        "invalid_every",
		"metric=heart_rate&every=32d":          "invalid_every",
		"metric=heart_rate&fn=median&every=1h": "invalid_fn",
		"metric=heart_rate&fn=max":             "invalid_fn",
		"metric=heart_rate&from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z": "invalid_time_range",
		// 32 days of raw points; 3 years even with every.
		"metric=heart_rate&from=2026-10-01T00:00:00Z&to=2026-11-02T00:00:00Z":          "invalid_time_range",
		"metric=heart_rate&from=2023-10-01T00:00:00Z&to=2026-11-02T00:00:00Z&every=1d": "invalid_time_range",
		// 2 years in 5-minute windows is 210,000 points.
		"metric=heart_rate&from=2024-11-01T00:00:00Z&to=2026-11-01T00:00:00Z&every=5m": "invalid_every",
	}
	for q, code := range bad {
		b := h.expect(http.StatusUnprocessableEntity, "GET", path(q), adminToken, nil, nil)
		if got := errCode(b); got != code {
			t.Errorf("%q: error code %q, want %q (%s)", q, got, code, b)
		}
	}
	if rec.n != 0 {
		t.Fatalf("%d invalid requests reached the store", rec.n)
	}

	var out struct {
		Metric, Unit string
		Points       []struct {
			T string
			V float64
		}
	}
	h.expect(http.StatusOK, "GET", path("metric=heart_rate"), adminToken, nil, &out)
	if rec.last.Metric != "heart_rate" || !rec.last.To.Equal(now) || rec.last.To.Sub(rec.last.From) != 24*time.Hour || rec.last.Every != 0 {
		t.Fatalf("defaults: %+v, want the last 24 h raw", rec.last)
	}
	if out.Unit != "/min" || len(out.Points) != 1 || out.Points[0].V != 72 {
		t.Fatalf("answer: %+v", out)
	}
	q := url.Values{"metric": {"spo2"}, "from": {"2024-11-01T00:00:00Z"}, "to": {"2026-11-01T00:00:00Z"}, "every": {"1h"}}
	h.expect(http.StatusOK, "GET", path(q.Encode()), adminToken, nil, nil)
	if rec.last.Metric != "spo2" || rec.last.Every != time.Hour || rec.last.Fn != "mean" || rec.last.From.Year() != 2024 {
		t.Fatalf("2 years hourly: %+v, want every 1h, fn mean", rec.last)
	}
	q.Set("fn", "last")
	q.Set("every", "1d")
	h.expect(http.StatusOK, "GET", path(q.Encode()), adminToken, nil, nil)
	if rec.last.Every != 24*time.Hour || rec.last.Fn != "last" {
		t.Fatalf("daily last: %+v", rec.last)
	}
}
