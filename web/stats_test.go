package web_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/carehub/carehub/internal/users"
	"github.com/carehub/carehub/web"
)

// TestStatsPage: the response statistics page is staff's, as
// GET /alerts/stats is (a caregiver gets 404), records one alerts.stats
// entry like its API twin, carries the CSP, and shows the weeks, the care
// workers (who acknowledged) and the 60 s chart, in Korean and English.
func TestStatsPage(t *testing.T) {
	h := newHarness(t)
	h.resident("r1", "김영희")
	h.user("co", "최코디", users.RoleCoordinator)
	h.user("cg", "정요양", users.RoleCaregiver, "r1")
	a := h.raise("r1", "heart_rate", "critical", "heart_rate 135 /min for 5m0s (≥ 131)", time.Now().Add(-10*time.Minute))
	if _, err := h.mgr.Acknowledge(context.Background(), a.ID, "cg", ""); err != nil {
		t.Fatal(err)
	}
	h.raise("r1", "spo2", "high", "spo2 89 % for 5m0s (≤ 91)", time.Now().Add(-5*time.Minute))

	co := h.client()
	co.login("co")
	cg := h.client()
	cg.login("cg")

	mark := h.audit.mark()
	resp, body := co.do("GET", "/stats", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /stats: %d: %.400s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Content-Security-Policy"); got != web.CSP {
		t.Errorf("GET /stats: CSP %q", got)
	}
	var got []string
	for _, e := range h.audit.since(mark) {
		got = append(got, e.Action)
		if e.Action == "alerts.stats" && !slices.Equal(e.Residents, []string{"r1"}) {
			t.Errorf("alerts.stats names %v, want [r1]", e.Residents)
		}
	}
	if !slices.Equal(got, []string{"alerts.stats"}) {
		t.Errorf("GET /stats: audit actions %v, want [alerts.stats] (its API twin)", got)
	}
	for _, want := range []string{`data-testid="stats-week"`, `data-testid="stats-worker"`, `data-testid="stats-chart"`, "대응 통계", "요양보호사별",
		"<th scope=\"row\">정요양</th>", "응답 없음", `class="bar"`, `class="target"`, `href="/stats" aria-current="page"`} {
		if !strings.Contains(body, want) {
			t.Errorf("stats page lacks %q", want)
		}
	}
	_, en := co.do("GET", "/stats?lang=en", nil)
	if !strings.Contains(en, "Response statistics") || !strings.Contains(en, "By care worker") {
		t.Errorf("English stats page: %.300s", en)
	}

	mark = h.audit.mark()
	if resp, _ := cg.do("GET", "/stats", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("caregiver GET /stats: %d, want 404", resp.StatusCode)
	}
	if n := len(h.audit.since(mark)); n != 0 {
		t.Errorf("caregiver GET /stats recorded %d entries, want 0", n)
	}
	if _, ov := cg.do("GET", "/", nil); strings.Contains(ov, `href="/stats"`) {
		t.Error("the caregiver's navigation links to the statistics page")
	}
}
