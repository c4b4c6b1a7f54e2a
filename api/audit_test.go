package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/carehub/carehub/api"
	"github.com/carehub/carehub/internal/audit"
)

// TestAuditTrail: reads and changes of a resident's data, including alert
// actions, appear in GET /audit with who, what and the source; only admins
// read the trail.
func TestAuditTrail(t *testing.T) {
	h := newHarness(t, nil)
	h.resident("r1")
	h.resident("r2")
	care := h.user("care", "caregiver", "r1")
	a := h.raise("r1", "heart_rate", "high")
	h.expect(http.StatusOK, "GET", "/api/v1/residents/r1", care, nil, nil)
	h.expect(http.StatusOK, "POST", "/api/v1/alerts/"+a.ID+"/ack", care, nil, nil)
	h.expect(http.StatusOK, "GET", "/api/v1/residents/r2", adminToken, nil, nil)

	var res audit.Result
	from := h.clk.now().Add(-time.Minute).Format(time.RFC3339)
	h.expect(http.StatusOK, "GET", "/api/v1/audit?resident_id=r1&from="+from, adminToken, nil, &res)
	want := map[string]string{"resident.read": "care", "alert.ack": "care", "assignment.set": api.BootstrapAdminID}
	for _, e := range res.Entries {
		if e.ResidentID != "r1" {
			t.Fatalf("entry of another resident: %+v", e)
		}
		if who, ok := want[e.Action]; ok && who == e.Actor && e.Source != "" {
			delete(want, e.Action)
		}
	}
	if len(want) > 0 {
		t.Fatalf("missing audit entries %v in %+v", want, res.Entries)
	}
	var one audit.Result
	h.expect(http.StatusOK, "GET", "/api/v1/audit?resident_id=r1&from="+from+"&limit=1", adminToken, nil, &one)
	if len(one.Entries) != 1 || !one.Truncated {
		t.Fatalf("limit 1: %+v", one)
	}
	h.expect(http.StatusForbidden, "GET", "/api/v1/audit", care, nil, nil)
	h.expect(422, "GET", "/api/v1/audit?from=yesterday", adminToken, nil, nil)
	h.expect(422, "GET", "/api/v1/audit?from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", adminToken, nil, nil)
	// For a resident nobody touched, the only entry is this very query:
	// reading the trail is audited too.
	var r9 audit.Result
	h.expect(http.StatusOK, "GET", "/api/v1/audit?resident_id=r9", adminToken, nil, &r9)
	if len(r9.Entries) != 1 || r9.Entries[0].Action != "audit.read" {
		t.Fatalf("r9: %+v", r9.Entries)
	}
}
