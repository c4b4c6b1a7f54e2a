package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/carehub/carehub/api"
	"github.com/carehub/carehub/internal/audit"
	"github.com/carehub/carehub/internal/testenv"
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
		if !e.Names("r1") {
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

// trail returns the entries naming rid (everyone's when rid is empty).
func (h *harness) trail(rid string) []audit.Entry {
	h.t.Helper()
	var res audit.Result
	h.expect(http.StatusOK, "GET", "/api/v1/audit?limit=1000&resident_id="+rid, adminToken, nil, &res)
	return res.Entries
}

func hasEntry(es []audit.Entry, action, actor, outcome string) bool {
	for _, e := range es {
		if e.Action == action && e.Actor == actor && e.Outcome == outcome {
			return true
		}
	}
	return false
}

// TestAuditListReadsRecordResidents: the residents list, the alerts list,
// the alert statistics and the overview record which residents each answer
// disclosed, so each resident's trail shows them, and a resident the
// answer did not name does not.
func TestAuditListReadsRecordResidents(t *testing.T) {
	h, _, _ := trendsHarnessWith(t)
	for _, id := range []string{"r1", "r2", "r3"} {
		h.resident(id)
	}
	care := h.user("care", "caregiver", "r1", "r2")
	h.raise("r2", "heart_rate", "high")
	h.raise("r3", "sos", "critical")
	h.expect(http.StatusOK, "GET", "/api/v1/residents", care, nil, nil)
	h.expect(http.StatusOK, "GET", "/api/v1/alerts", care, nil, nil)
	h.expect(http.StatusOK, "GET", "/api/v1/overview", care, nil, nil)
	h.clk.add(time.Second) // statistics count alerts raised before now
	h.expect(http.StatusOK, "GET", "/api/v1/alerts/stats", adminToken, nil, nil)

	r1, r2, r3 := h.trail("r1"), h.trail("r2"), h.trail("r3")
	for _, c := range []struct {
		trail  []audit.Entry
		action string
		actor  string
		want   bool
	}{
		{r1, "residents.list", "care", true},
		{r2, "residents.list", "care", true},
		{r3, "residents.list", "care", false},
		{r2, "alerts.list", "care", true},
		{r1, "alerts.list", "care", false}, // no alert of r1 was in the answer
		{r3, "alerts.list", "care", false},
		{r1, "overview.read", "care", true}, // no reading for 24 h: on the overview
		{r3, "overview.read", "care", false},
		{r3, "alerts.stats", api.BootstrapAdminID, true},
		{r1, "alerts.stats", api.BootstrapAdminID, false},
	} {
		if hasEntry(c.trail, c.action, c.actor, audit.OutcomeOK) != c.want {
			t.Errorf("%s by %s in the trail: want %v; trail %+v", c.action, c.actor, c.want, c.trail)
		}
	}
}

// TestAuditLoginsAndOutcomes: failed and successful logins and user
// administration are audited with their outcome, and a change that fails
// after it was audited gets a second entry with outcome denied and the
// status.
func TestAuditLoginsAndOutcomes(t *testing.T) {
	h := newHarness(t, nil)
	h.resident("r1")
	h.user("nurse", "coordinator")
	h.expect(http.StatusUnauthorized, "POST", "/api/v1/auth/login", "", map[string]any{"id": "nurse", "password": "wrong-password-x"}, nil)
	h.expect(http.StatusOK, "POST", "/api/v1/auth/login", "", map[string]any{"id": "nurse", "password": "pass-nurse-long"}, nil)
	h.expect(http.StatusNoContent, "POST", "/api/v1/users/nurse/revoke-tokens", adminToken, nil, nil)
	// Acknowledging an acknowledged alert: audited first, then refused.
	a := h.raise("r1", "heart_rate", "high")
	h.expect(http.StatusOK, "POST", "/api/v1/alerts/"+a.ID+"/ack", adminToken, nil, nil)
	h.expect(http.StatusConflict, "POST", "/api/v1/alerts/"+a.ID+"/ack", adminToken, nil, nil)

	all := h.trail("")
	for _, c := range []struct{ action, actor, outcome string }{
		{"login", "nurse", audit.OutcomeDenied},
		{"login", "nurse", audit.OutcomeOK},
		{"user.create", api.BootstrapAdminID, audit.OutcomeOK},
		{"user.revoke_tokens", api.BootstrapAdminID, audit.OutcomeOK},
	} {
		if !hasEntry(all, c.action, c.actor, c.outcome) {
			t.Errorf("no %s by %s with outcome %s in %+v", c.action, c.actor, c.outcome, all)
		}
	}
	failed := false
	for _, e := range h.trail("r1") {
		failed = failed || (e.Action == "alert.ack" && e.Outcome == audit.OutcomeDenied && e.Status == http.StatusConflict)
	}
	if !failed {
		t.Errorf("the refused update has no denied entry: %+v", h.trail("r1"))
	}
	h.expect(422, "GET", "/api/v1/audit?resident_id=r1.>", adminToken, nil, nil) // ids are validated
}

// TestAuditStreamDeliveries: what an alert stream delivered is recorded,
// batched at the heartbeat, naming the residents whose alerts it carried
// and only those.
func TestAuditStreamDeliveries(t *testing.T) {
	h := newHarness(t, func(o *api.Options) { o.Heartbeat = 100 * time.Millisecond })
	base := h.serve()
	h.resident("mine")
	h.resident("other")
	care := h.user("care", "caregiver", "mine")
	events, _, _ := openStream(t, base, care, "")
	h.raise("other", "heart_rate", "high")
	a := h.raise("mine", "heart_rate", "high")
	if e := next(t, events); e.alert.ID != a.ID {
		t.Fatalf("event: %+v", e)
	}
	testenv.WaitFor(t, 10*time.Second, "the delivery in the trail", func() bool {
		return hasEntry(h.trail("mine"), "alerts.stream.delivery", "care", audit.OutcomeOK)
	})
	if hasEntry(h.trail("other"), "alerts.stream.delivery", "care", audit.OutcomeOK) {
		t.Fatal("a delivery names a resident the stream did not carry")
	}
}
