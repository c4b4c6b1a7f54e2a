package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/alerts/escalation"
	"github.com/carehub/carehub/internal/audit"
)

// chain makes userIDs the first tier of a resident's escalation chain, so
// alerts raised afterwards are theirs.
func (h *harness) chain(residentID string, userIDs ...string) {
	h.t.Helper()
	if err := h.mgr.Chains().Put(context.Background(), escalation.Chain{ResidentID: residentID,
		Tiers: []escalation.Tier{{Role: escalation.RoleCaregiver, UserIDs: userIDs}, {Role: escalation.RoleCoordinator}}}); err != nil {
		h.t.Fatal(err)
	}
}

// auditActions returns the actions audited for a resident since from, by actor.
func (h *harness) auditActions(residentID string, from time.Time) map[string]string {
	h.t.Helper()
	var res audit.Result
	h.expect(http.StatusOK, "GET", "/api/v1/audit?resident_id="+residentID+"&from="+from.Format(time.RFC3339), adminToken, nil, &res)
	out := map[string]string{}
	for _, e := range res.Entries {
		out[e.Action] = e.Actor
	}
	return out
}

// TestAlertComment: a comment is stored in the alert's notes and served by
// GET, with no state change; bad bodies are refused; it is audited.
func TestAlertComment(t *testing.T) {
	h := newHarness(t, nil)
	h.resident("r1")
	care := h.user("care", "caregiver", "r1")
	start := h.clk.now().Add(-time.Minute)
	a := h.raise("r1", "heart_rate", "high")

	for body, code := range map[string]string{`{}`: "invalid_note", `{"note":"   "}`: "invalid_note",
		`{"note":"` + strings.Repeat("x", 4001) + `"}`: "invalid_note"} {
		if b := h.expect(422, "POST", "/api/v1/alerts/"+a.ID+"/comment", care, body, nil); errCode(b) != code {
			t.Errorf("comment %.40s: %s", body, b)
		}
	}
	h.expect(400, "POST", "/api/v1/alerts/"+a.ID+"/comment", care, `{"note":"x","by":"y"}`, nil)
	h.expect(404, "POST", "/api/v1/alerts/al-nope/comment", care, `{"note":"x"}`, nil)

	var got alerts.Alert
	h.expect(http.StatusOK, "POST", "/api/v1/alerts/"+a.ID+"/comment", care, map[string]any{"note": "phoned, no answer"}, &got)
	h.expect(http.StatusOK, "GET", "/api/v1/alerts/"+a.ID, care, nil, &got)
	n := got.Notes[len(got.Notes)-1]
	if n.Transition != alerts.NoteComment || n.By != "care" || n.Text != "phoned, no answer" {
		t.Fatalf("comment not stored: %+v", got.Notes)
	}
	if got.Status != alerts.StatusOpen || got.Seq != a.Seq || got.Transition != alerts.TransitionRaised {
		t.Fatalf("a comment changed the alert's state: %+v", got)
	}
	if who := h.auditActions("r1", start)["alert.comment"]; who != "care" {
		t.Fatalf("comment audited as %q", who)
	}
}

// TestAlertAssign: staff assign, the alert's caregiver hands over, other
// caregivers may not; the assignee must exist and be assigned to the
// resident when a caregiver.
func TestAlertAssign(t *testing.T) {
	h := newHarness(t, nil)
	h.resident("r1")
	h.resident("r2")
	care := h.user("care", "caregiver", "r1")
	care2 := h.user("care2", "caregiver", "r1")
	h.user("care3", "caregiver", "r2")
	coord := h.user("coord", "coordinator")
	h.chain("r1", "care")
	start := h.clk.now().Add(-time.Minute)
	a := h.raise("r1", "heart_rate", "high")

	// care2 sees the resident but the alert is not theirs.
	if b := h.expect(403, "POST", "/api/v1/alerts/"+a.ID+"/assign", care2, map[string]any{"user_id": "care2"}, nil); errCode(b) != "forbidden" {
		t.Fatalf("not their alert: %s", b)
	}
	for body, code := range map[string]string{`{}`: "invalid_user_id", `{"user_id":"nobody"}`: "invalid_user_id",
		`{"user_id":"care3"}`: "invalid_user_id"} { // care3 is a caregiver of r2 only
		if b := h.expect(422, "POST", "/api/v1/alerts/"+a.ID+"/assign", care, body, nil); errCode(b) != code {
			t.Errorf("assign %s: %s", body, b)
		}
	}
	var got alerts.Alert
	h.expect(http.StatusOK, "POST", "/api/v1/alerts/"+a.ID+"/assign", care, map[string]any{"user_id": "care2"}, &got)
	if got.AssignedTo != "care2" || len(got.Recipients) == 0 || got.Recipients[0] != "care2" {
		t.Fatalf("handover: %+v", got)
	}
	// Now it is care2's: care may no longer hand it on, care2 may; staff
	// always may, also to a coordinator (not tied to residents).
	h.expect(403, "POST", "/api/v1/alerts/"+a.ID+"/assign", care, map[string]any{"user_id": "care"}, nil)
	h.expect(http.StatusOK, "POST", "/api/v1/alerts/"+a.ID+"/assign", care2, map[string]any{"user_id": "care"}, nil)
	h.expect(http.StatusOK, "POST", "/api/v1/alerts/"+a.ID+"/assign", coord, map[string]any{"user_id": "coord"}, nil)
	h.expect(http.StatusOK, "GET", "/api/v1/alerts/"+a.ID, adminToken, nil, &got)
	if got.AssignedTo != "coord" || got.Notes[len(got.Notes)-1].Transition != alerts.NoteAssigned || got.Notes[len(got.Notes)-1].By != "coord" {
		t.Fatalf("after staff assign: %+v", got)
	}
	h.expect(http.StatusOK, "POST", "/api/v1/alerts/"+a.ID+"/resolve", coord, map[string]any{"outcome": "visited"}, nil)
	h.expect(409, "POST", "/api/v1/alerts/"+a.ID+"/assign", coord, map[string]any{"user_id": "care"}, nil)
	if who := h.auditActions("r1", start)["alert.assign"]; who == "" {
		t.Fatal("assignment not audited")
	}
}

// TestAlertSnooze: a snooze is stored in the resident's rule settings and on
// the alert, with its reason; it needs a reason and a sane length, and
// critical alerts cannot be snoozed.
func TestAlertSnooze(t *testing.T) {
	h := newHarness(t, nil)
	h.resident("r1")
	care := h.user("care", "caregiver", "r1")
	start := h.clk.now().Add(-time.Minute)
	a := h.raise("r1", "heart_rate", "high")
	crit := h.raise("r1", "spo2", "critical")

	for body, code := range map[string]string{
		`{"minutes":30}`:                    "invalid_reason",
		`{"minutes":30,"reason":"  "}`:      "invalid_reason",
		`{"minutes":0,"reason":"visit"}`:    "invalid_minutes",
		`{"minutes":1441,"reason":"visit"}`: "invalid_minutes",
		`{"reason":"visit"}`:                "invalid_minutes",
	} {
		if b := h.expect(422, "POST", "/api/v1/alerts/"+a.ID+"/snooze", care, body, nil); errCode(b) != code {
			t.Errorf("snooze %s: %s", body, b)
		}
	}
	if b := h.expect(422, "POST", "/api/v1/alerts/"+crit.ID+"/snooze", care, map[string]any{"minutes": 10, "reason": "x"}, nil); errCode(b) != "critical_not_snoozable" {
		t.Fatalf("critical snooze: %s", b)
	}
	if _, ok := h.settings.Settings("r1").Snoozed["spo2"]; ok {
		t.Fatal("a refused snooze was stored")
	}

	var got alerts.Alert
	h.expect(http.StatusOK, "POST", "/api/v1/alerts/"+a.ID+"/snooze", care, map[string]any{"minutes": 30, "reason": "known tachycardia"}, &got)
	until := h.clk.now().Add(30 * time.Minute)
	z, ok := h.settings.Settings("r1").Snoozed["heart_rate"]
	if !ok || !z.Until.Equal(until) || z.Reason != "known tachycardia" {
		t.Fatalf("settings snooze: %+v", h.settings.Settings("r1").Snoozed)
	}
	if got.Suppressed == nil || got.Suppressed.Mode != alerts.ModeSnooze || got.Suppressed.By != "care" ||
		got.Notes[len(got.Notes)-1].Transition != alerts.NoteSnoozed {
		t.Fatalf("alert snooze: %+v", got)
	}
	// The snooze holds the alert's escalation (high escalates at 5 min).
	h.clk.add(6 * time.Minute)
	if err := h.mgr.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.expect(http.StatusOK, "GET", "/api/v1/alerts/"+a.ID, care, nil, &got)
	if got.EscalationLevel != a.EscalationLevel {
		t.Fatalf("a snoozed alert escalated to %d", got.EscalationLevel)
	}
	var snoozeAudited bool
	var res audit.Result
	h.expect(http.StatusOK, "GET", "/api/v1/audit?resident_id=r1&from="+start.Format(time.RFC3339), adminToken, nil, &res)
	for _, e := range res.Entries {
		snoozeAudited = snoozeAudited || (e.Action == "alert.snooze" && e.Actor == "care" && e.Reason == "known tachycardia")
	}
	if !snoozeAudited {
		t.Fatalf("snooze not audited with its reason: %+v", res.Entries)
	}
}
