package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/api"
	"github.com/carehub/carehub/internal/influx"
	"github.com/carehub/carehub/internal/influx/flux"
	"github.com/carehub/carehub/internal/testenv"
)

type alertWithContext struct {
	ID         string `json:"id"`
	ResidentID string `json:"resident_id"`
	Rule       string `json:"rule"`
	Status     string `json:"status"`
	Metric     string `json:"metric"`
	RaisedAt   time.Time
	Context    *struct {
		From, To string
		Metric   string
		Unit     string
		Points   []struct {
			T string
			V float64
		}
		Truncated bool
		Latest    map[string]struct {
			T string
			V float64
		}
	} `json:"context"`
	ContextError *string `json:"context_error"`
}

// sos raises an alert without a metric.
func (h *harness) sos(residentID string) string {
	h.t.Helper()
	if err := h.mgr.Signal(context.Background(), rules.Signal{ResidentID: residentID, HomeID: "h-" + residentID, Rule: "sos",
		Severity: "critical", Active: true, Message: "SOS button", At: h.clk.now()}); err != nil {
		h.t.Fatal(err)
	}
	for _, a := range h.mgr.List(alerts.Filter{ResidentID: residentID}) {
		if a.Rule == "sos" {
			return a.ID
		}
	}
	h.t.Fatal("sos alert not raised")
	return ""
}

// TestAlertWithReadingsAround writes heart rates around an alert to the
// real influxd: GET /alerts/{id} keeps the alert's fields at the top level
// and adds the points from 30 min before to 30 min after it, not those
// outside, of another metric or of another resident.
func TestAlertWithReadingsAround(t *testing.T) {
	h, c, _ := trendsHarnessWith(t)
	h.resident("r1")
	h.resident("r2")
	a := h.raise("r1", "heart_rate", "high")
	t0 := a.RaisedAt
	for _, p := range []struct {
		rid, field string
		at         time.Duration
		v          float64
	}{
		{"r1", "heart_rate", -31 * time.Minute, 1}, // before the window
		{"r1", "heart_rate", -30 * time.Minute, 100},
		{"r1", "heart_rate", -5 * time.Minute, 120},
		{"r1", "heart_rate", 29 * time.Minute, 135},
		{"r1", "heart_rate", 30 * time.Minute, 2}, // on its end: outside
		{"r1", "heart_rate", 45 * time.Minute, 3},
		{"r1", "spo2", 0, 4},
		{"r2", "heart_rate", 0, 5},
	} {
		write(t, c, p.rid, t0.Add(p.at), p.field, p.v)
	}
	h.clk.add(2 * time.Hour) // the window's end is raised_at + 30 min, not now

	var got alertWithContext
	testenv.WaitFor(t, 10*time.Second, "the readings around the alert", func() bool {
		h.expect(http.StatusOK, "GET", "/api/v1/alerts/"+a.ID, adminToken, nil, &got)
		return got.Context != nil && len(got.Context.Points) == 3
	})
	cx := got.Context
	if got.ID != a.ID || got.ResidentID != "r1" || got.Rule != "heart_rate" || got.Status != "open" || got.ContextError != nil {
		t.Fatalf("alert fields: %+v", got)
	}
	if cx.Metric != "heart_rate" || cx.Unit != "/min" || cx.Truncated ||
		cx.From != t0.Add(-30*time.Minute).UTC().Format(time.RFC3339) || cx.To != t0.Add(30*time.Minute).UTC().Format(time.RFC3339) {
		t.Fatalf("context: %+v", cx)
	}
	for i, want := range []float64{100, 120, 135} {
		if cx.Points[i].V != want {
			t.Fatalf("points %+v, want 100, 120, 135", cx.Points)
		}
	}
	if cx.Points[0].T != t0.Add(-30*time.Minute).UTC().Format(time.RFC3339) {
		t.Fatalf("first point at %s", cx.Points[0].T)
	}

	// An alert without a metric: the latest value of each metric up to now.
	id := h.sos("r1")
	got = alertWithContext{}
	h.expect(http.StatusOK, "GET", "/api/v1/alerts/"+id, adminToken, nil, &got)
	if got.Context == nil || got.Context.Points != nil || len(got.Context.Latest) != 2 ||
		got.Context.Latest["heart_rate"].V != 3 || got.Context.Latest["spo2"].V != 4 {
		t.Fatalf("context of an alert without a metric: %+v", got.Context)
	}

	// A caregiver of another resident sees neither alert nor readings.
	care := h.user("care", "caregiver", "r2")
	h.expect(http.StatusNotFound, "GET", "/api/v1/alerts/"+a.ID, care, nil, nil)
}

// TestAlertWithInfluxDown: with InfluxDB stopped, GET /alerts/{id} still
// answers 200 with the alert, context null and context_error.
func TestAlertWithInfluxDown(t *testing.T) {
	in := testenv.StartInflux(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := influx.Open(ctx, influx.Options{URL: in.URL, Bucket: testenv.ID("care"), Version: "auto", Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	in.Stop()
	h := newHarness(t, func(o *api.Options) { q := flux.New(c); o.Trends, o.AlertContext = q, q })
	h.resident("r1")
	for _, id := range []string{h.raise("r1", "heart_rate", "high").ID, h.sos("r1")} {
		var raw map[string]json.RawMessage
		h.expect(http.StatusOK, "GET", "/api/v1/alerts/"+id, adminToken, nil, &raw)
		var got alertWithContext
		b, _ := json.Marshal(raw)
		_ = json.Unmarshal(b, &got)
		if got.ID != id || string(raw["context"]) != "null" || got.ContextError == nil || *got.ContextError == "" {
			t.Fatalf("alert with InfluxDB down: %s", b)
		}
	}
}
