package api_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/carehub/carehub/alerts/rules"
)

type durJSON struct {
	Count int      `json:"count"`
	P50   *float64 `json:"p50_seconds"`
	P90   *float64 `json:"p90_seconds"`
	Mean  *float64 `json:"mean_seconds"`
}

type groupJSON struct {
	Key      string  `json:"key"`
	Alerts   int     `json:"alerts"`
	Ack      durJSON `json:"time_to_acknowledge"`
	Resolve  durJSON `json:"time_to_resolve"`
	Critical struct {
		Count     int      `json:"count"`
		Within60s int      `json:"answered_within_60s"`
		Within3m  int      `json:"answered_within_3m"`
		Share60s  *float64 `json:"share_within_60s"`
		Share3m   *float64 `json:"share_within_3m"`
	} `json:"critical"`
}

type statsPage struct {
	GroupBy string      `json:"group_by"`
	Partial bool        `json:"partial"`
	Total   groupJSON   `json:"total"`
	Groups  []groupJSON `json:"groups"`
}

func near(p *float64, want float64) bool { return p != nil && math.Abs(*p-want) < 1e-9 }

// TestAlertStats drives real alerts through the Manager with a moved clock
// and checks the response-time statistics per severity and per caregiver.
func TestAlertStats(t *testing.T) {
	h := newHarness(t, nil)
	h.resident("r1")
	h.resident("r2")
	care := h.user("care", "caregiver", "r1")
	care2 := h.user("care2", "caregiver", "r2")
	coord := h.user("coord", "coordinator")
	ack := func(id, tok string) { h.expect(http.StatusOK, "POST", "/api/v1/alerts/"+id+"/ack", tok, nil, nil) }
	resolve := func(id, tok string) {
		h.expect(http.StatusOK, "POST", "/api/v1/alerts/"+id+"/resolve", tok, map[string]any{"outcome": "visited"}, nil)
	}
	start := h.clk.now()

	a := h.raise("r1", "spo2", "critical") // answered in 30 s, resolved at 240 s
	h.clk.add(30 * time.Second)
	ack(a.ID, care)
	b := h.raise("r2", "spo2", "critical") // answered in 90 s
	h.clk.add(90 * time.Second)
	ack(b.ID, care2)
	h.raise("r2", "glucose", "critical") // never answered
	d := h.raise("r1", "heart_rate", "high")
	h.clk.add(120 * time.Second)
	ack(d.ID, coord)
	resolve(a.ID, care)
	h.clk.add(60 * time.Second)
	resolve(d.ID, coord)
	h.raise("r1", "room_temp", "warning")
	if err := h.mgr.Signal(context.Background(), rules.Signal{ResidentID: "r1", Rule: "room_temp"}); err != nil {
		t.Fatal(err) // auto-cleared: nobody's response
	}
	h.clk.add(10 * time.Minute)

	var st statsPage
	h.expect(http.StatusOK, "GET", "/api/v1/alerts/stats", coord, nil, &st)
	if st.GroupBy != "severity" || st.Partial || len(st.Groups) != 3 {
		t.Fatalf("stats: %+v", st)
	}
	w, hi, cr := st.Groups[0], st.Groups[1], st.Groups[2]
	if w.Key != "warning" || hi.Key != "high" || cr.Key != "critical" {
		t.Fatalf("group order: %+v", st.Groups)
	}
	if cr.Alerts != 3 || cr.Ack.Count != 2 || !near(cr.Ack.P50, 30) || !near(cr.Ack.P90, 90) || !near(cr.Ack.Mean, 60) ||
		cr.Resolve.Count != 1 || !near(cr.Resolve.P50, 240) {
		t.Fatalf("critical times: %+v", cr)
	}
	if c := cr.Critical; c.Count != 3 || c.Within60s != 1 || c.Within3m != 2 || !near(c.Share60s, 1.0/3) || !near(c.Share3m, 2.0/3) {
		t.Fatalf("critical targets: %+v", c)
	}
	if hi.Alerts != 1 || !near(hi.Ack.Mean, 120) || !near(hi.Resolve.Mean, 180) || hi.Critical.Share60s != nil {
		t.Fatalf("high: %+v", hi)
	}
	if w.Alerts != 1 || w.Ack.Count != 0 || w.Resolve.Count != 0 || w.Ack.P50 != nil {
		t.Fatalf("warning (auto-cleared): %+v", w)
	}
	if tot := st.Total; tot.Alerts != 5 || tot.Ack.Count != 3 || !near(tot.Ack.P50, 90) || !near(tot.Ack.Mean, 80) || !near(tot.Resolve.Mean, 210) {
		t.Fatalf("total: %+v", tot)
	}

	h.expect(http.StatusOK, "GET", "/api/v1/alerts/stats?group_by=caregiver", adminToken, nil, &st)
	got := map[string]int{}
	for _, g := range st.Groups {
		got[g.Key] = g.Alerts
	}
	if len(got) != 4 || got["care"] != 1 || got["care2"] != 1 || got["coord"] != 1 || got["@unanswered"] != 2 {
		t.Fatalf("by caregiver: %v", got)
	}

	h.expect(http.StatusOK, "GET", "/api/v1/alerts/stats?group_by=week", adminToken, nil, &st)
	y, wk := start.ISOWeek()
	n := 0
	for _, g := range st.Groups {
		n += g.Alerts
	}
	if n != 5 || len(st.Groups) > 2 || (len(st.Groups) == 1 && st.Groups[0].Key != fmt.Sprintf("%04d-W%02d", y, wk)) {
		t.Fatalf("by week (from %s): %+v", start, st.Groups)
	}

	// A range before the alerts holds none; a range past what the Manager
	// keeps is marked partial.
	old := start.Add(-24 * time.Hour).Format(time.RFC3339)
	h.expect(http.StatusOK, "GET", "/api/v1/alerts/stats?from="+start.Add(-40*24*time.Hour).Format(time.RFC3339)+"&to="+old, adminToken, nil, &st)
	if st.Total.Alerts != 0 || len(st.Groups) != 0 || !st.Partial {
		t.Fatalf("old range: %+v", st)
	}
	for q, code := range map[string]string{
		"group_by=resident": "invalid_group_by",
		"from=yesterday":    "invalid_time",
		"to=2026-13-01":     "invalid_time",
		"from=2024-01-01T00:00:00Z&to=2025-06-01T00:00:00Z": "invalid_time_range",
		"from=2025-06-01T00:00:00Z&to=2025-05-01T00:00:00Z": "invalid_time_range",
	} {
		if b := h.expect(422, "GET", "/api/v1/alerts/stats?"+q, adminToken, nil, nil); errCode(b) != code {
			t.Errorf("%s: %s", q, b)
		}
	}
}
