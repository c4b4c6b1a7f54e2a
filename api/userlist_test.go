package api_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestListUsers: admins list everyone without secrets; coordinators list
// caregivers only (for assignments), another role is 403; caregivers get
// 403; a role that does not exist is 422.
func TestListUsers(t *testing.T) {
	h := newHarness(t, nil)
	h.resident("r1")
	ad := h.user("ad", "admin")
	co := h.user("co", "coordinator")
	cg := h.user("cg", "caregiver", "r1")
	h.user("cg2", "caregiver")

	type list struct {
		Users []struct {
			ID, Role    string
			ResidentIDs []string `json:"resident_ids"`
		}
	}
	ids := func(l list) string {
		var s []string
		for _, u := range l.Users {
			s = append(s, u.ID)
		}
		return strings.Join(s, ",")
	}
	var all list
	body := h.expect(http.StatusOK, "GET", "/api/v1/users", ad, nil, &all)
	if ids(all) != "ad,cg,cg2,co" {
		t.Errorf("admin lists %s, want ad,cg,cg2,co", ids(all))
	}
	if strings.Contains(string(body), "password") || strings.Contains(string(body), "$2a$") {
		t.Errorf("the list shows password hashes: %s", body)
	}
	if all.Users[1].ID != "cg" || len(all.Users[1].ResidentIDs) != 1 || all.Users[1].ResidentIDs[0] != "r1" {
		t.Errorf("cg's assignment in the list: %+v", all.Users[1])
	}
	var cgs list
	h.expect(http.StatusOK, "GET", "/api/v1/users?role=caregiver", ad, nil, &cgs)
	if ids(cgs) != "cg,cg2" {
		t.Errorf("admin lists caregivers %s", ids(cgs))
	}
	var coList list
	h.expect(http.StatusOK, "GET", "/api/v1/users", co, nil, &coList)
	if ids(coList) != "cg,cg2" {
		t.Errorf("coordinator lists %s, want the caregivers only", ids(coList))
	}
	h.expect(http.StatusForbidden, "GET", "/api/v1/users?role=admin", co, nil, nil)
	h.expect(http.StatusForbidden, "GET", "/api/v1/users", cg, nil, nil)
	h.expect(http.StatusUnprocessableEntity, "GET", "/api/v1/users?role=root", ad, nil, nil)
}
