package web_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/carehub/carehub/internal/audit"
	"github.com/carehub/carehub/internal/users"
)

// TestEveryPageScoped walks every GET page the console mounts (the pages,
// the phone app, web/admin and web/registry) and asks each one, as a
// caregiver assigned to r1 only, for r2 — a resident, or an alert of a
// resident, they may not see. Every page must answer 404, the API's answer,
// and record no disclosure. A page added later with a parameter this test does
// not know fails here until someone says what it scopes.
func TestEveryPageScoped(t *testing.T) {
	h := newHarness(t)
	h.resident("r1", "김영희")
	h.resident("r2", "박철수")
	h.user("cg", "정요양", users.RoleCaregiver, "r1")
	other := h.raise("r2", "heart_rate", "high", "heart_rate 135 /min for 5m0s (≥ 131)", time.Now().Add(-3*time.Minute))
	cg := h.client()
	cg.login("cg")

	// What each route parameter names, and the value that belongs to r2.
	forbidden := map[string]string{
		"/residents/:id":            "r2",
		"/residents/:id/settings":   "r2",
		"/residents/:id/escalation": "r2",
		"/registry/residents/:id":   "r2",
		"/alerts/:id":               other.ID,
		"/m/alerts/:id":             other.ID,
	}
	checked := 0
	for _, r := range h.srv.App().GetRoutes(true) {
		if r.Method != http.MethodGet || !strings.Contains(r.Path, ":") ||
			strings.HasPrefix(r.Path, "/api/") || strings.HasPrefix(r.Path, "/static/") {
			continue
		}
		val, ok := forbidden[r.Path]
		if !ok {
			t.Errorf("GET %s takes a parameter this test does not know: add what it scopes to forbidden", r.Path)
			continue
		}
		path := r.Path[:strings.Index(r.Path, ":")] + val + r.Path[strings.Index(r.Path, ":")+len(":id"):]
		mark := h.audit.mark()
		if resp, body := cg.do("GET", path, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("caregiver GET %s: %d, want 404: %.200s", path, resp.StatusCode, body)
		}
		for _, e := range h.audit.since(mark) {
			if e.Outcome == "" || e.Outcome == audit.OutcomeOK {
				t.Errorf("caregiver GET %s recorded %s as disclosed: a refused view must not look like a read", path, e.Action)
			}
		}
		checked++
	}
	if checked < len(forbidden) {
		t.Errorf("checked %d pages with parameters, the table names %d: a route was renamed", checked, len(forbidden))
	}
}
