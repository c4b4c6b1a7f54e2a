package api_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestCaregiverSeesOnlyAssignedResidents walks every resident-scoped
// endpoint: for a resident not assigned to the caregiver the answer is 404
// (never 403, contract §4), for an assigned one it is not.
func TestCaregiverSeesOnlyAssignedResidents(t *testing.T) {
	h := newHarness(t, nil)
	h.resident("mine")
	h.resident("other")
	care := h.user("care", "caregiver", "mine")
	coord := h.user("coord", "coordinator")
	h.chain("mine", "care") // the caregiver's own alerts, so they may hand them over
	mineAlert := h.raise("mine", "heart_rate", "high")
	otherAlert := h.raise("other", "heart_rate", "high")

	type ep struct{ method, path, body string }
	endpoints := func(rid, alertID string) []ep {
		return []ep{
			{"GET", "/api/v1/residents/" + rid, ""},
			{"GET", "/api/v1/residents/" + rid + "/readings?metric=heart_rate", ""},
			{"GET", "/api/v1/residents/" + rid + "/devices", ""},
			{"GET", "/api/v1/residents/" + rid + "/status", ""},
			{"PUT", "/api/v1/residents/" + rid + "/status", `{"mode":"away","reason":"family visit"}`},
			{"GET", "/api/v1/residents/" + rid + "/settings", ""},
			{"GET", "/api/v1/residents/" + rid + "/escalation", ""},
			{"GET", "/api/v1/homes/h-" + rid, ""},
			{"GET", "/api/v1/alerts?resident_id=" + rid, ""},
			{"GET", "/api/v1/alerts/stream?resident_id=" + rid + "&probe=1", ""},
			{"GET", "/api/v1/alerts/" + alertID, ""},
			{"POST", "/api/v1/alerts/" + alertID + "/comment", `{"note":"phoned"}`},
			{"POST", "/api/v1/alerts/" + alertID + "/assign", `{"user_id":"care"}`},
			{"POST", "/api/v1/alerts/" + alertID + "/snooze", `{"minutes":10,"reason":"visit in progress"}`},
			{"POST", "/api/v1/alerts/" + alertID + "/ack", ""},
			{"POST", "/api/v1/alerts/" + alertID + "/resolve", `{"outcome":"visited"}`},
		}
	}
	for _, e := range endpoints("other", otherAlert.ID) {
		var body any
		if e.body != "" {
			body = e.body
		}
		st, _, b := h.call(e.method, e.path, care, body, nil)
		if st != http.StatusNotFound || errCode(b) != "not_found" {
			t.Errorf("caregiver %s %s (not assigned): %d %s, want 404", e.method, e.path, st, b)
		}
		// A coordinator sees every resident.
		if strings.Contains(e.path, "/stream") || e.method != "GET" {
			continue
		}
		if st, _, b := h.call(e.method, e.path, coord, body, nil); st != http.StatusOK {
			t.Errorf("coordinator %s %s: %d %s", e.method, e.path, st, b)
		}
	}
	for _, e := range endpoints("mine", mineAlert.ID) {
		if strings.Contains(e.path, "/stream") {
			continue // a stream never ends; TestAlertStreamResume covers it
		}
		var body any
		if e.body != "" {
			body = e.body
		}
		if st, _, b := h.call(e.method, e.path, care, body, nil); st != http.StatusOK {
			t.Errorf("caregiver %s %s (assigned): %d %s, want 200", e.method, e.path, st, b)
		}
	}

	// Lists hold only the caregiver's residents.
	var rs struct {
		Residents []struct{ ID string } `json:"residents"`
	}
	h.expect(http.StatusOK, "GET", "/api/v1/residents", care, nil, &rs)
	if len(rs.Residents) != 1 || rs.Residents[0].ID != "mine" {
		t.Fatalf("caregiver's residents: %+v", rs.Residents)
	}
	var as struct {
		Alerts []struct {
			ResidentID string `json:"resident_id"`
		} `json:"alerts"`
	}
	h.expect(http.StatusOK, "GET", "/api/v1/alerts", care, nil, &as)
	if len(as.Alerts) != 1 || as.Alerts[0].ResidentID != "mine" {
		t.Fatalf("caregiver's alerts: %+v", as.Alerts)
	}
	// Unknown resident and unknown alert look the same as a hidden one.
	h.expect(http.StatusNotFound, "GET", "/api/v1/residents/nobody", coord, nil, nil)
	h.expect(http.StatusNotFound, "GET", "/api/v1/alerts/no-such-alert", coord, nil, nil)

	// Erasure is for admins only: a coordinator is refused too.
	if st, _, b := h.call("DELETE", "/api/v1/residents/mine?reason=x", coord, nil, nil); st != http.StatusForbidden || errCode(b) != "forbidden" {
		t.Errorf("coordinator DELETE /residents/mine: %d %s, want 403", st, b)
	}
	// Staff-only endpoints are 403 for a caregiver, whatever the resident.
	for _, e := range []ep{
		{"POST", "/api/v1/residents", `{"name":"X","home_id":"h"}`},
		{"POST", "/api/v1/devices", `{"kind":"wearable","resident_id":"mine"}`},
		{"GET", "/api/v1/devices", ""},
		{"PUT", "/api/v1/residents/mine/settings", `{}`},
		{"PUT", "/api/v1/residents/mine/escalation", `{"tiers":[{"role":"caregiver"}]}`},
		{"POST", "/api/v1/users", `{"name":"X","role":"admin"}`},
		{"GET", "/api/v1/users/care", ""},
		{"PATCH", "/api/v1/residents/mine", `{"name":"X"}`},
		{"PUT", "/api/v1/residents/mine/consent", `{"given":true,"scope":"monitoring","recorded_by":"X"}`},
		{"POST", "/api/v1/homes", `{"id":"h-new"}`},
		{"DELETE", "/api/v1/residents/mine?reason=x", ""},
		{"GET", "/api/v1/alerts/stats", ""},
	} {
		var body any
		if e.body != "" {
			body = e.body
		}
		if st, _, b := h.call(e.method, e.path, care, body, nil); st != http.StatusForbidden || errCode(b) != "forbidden" {
			t.Errorf("caregiver %s %s: %d %s, want 403", e.method, e.path, st, b)
		}
	}
}
