package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/carehub/carehub/alerts/escalation"
	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/devices"
)

func TestResidentsListPaginated(t *testing.T) {
	h := newHarness(t, nil)
	for _, id := range []string{"r1", "r2", "r3", "r4", "r5"} {
		h.resident(id)
	}
	var ids []string
	cursor := ""
	for range 5 {
		var page struct {
			Residents  []devices.Resident `json:"residents"`
			NextCursor string             `json:"next_cursor"`
		}
		h.expect(http.StatusOK, "GET", "/api/v1/residents?limit=2&cursor="+cursor, adminToken, nil, &page)
		for _, r := range page.Residents {
			ids = append(ids, r.ID)
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if strings.Join(ids, ",") != "r1,r2,r3,r4,r5" {
		t.Fatalf("paged residents %v", ids)
	}
	var one struct{ Residents []devices.Resident }
	h.expect(http.StatusOK, "GET", "/api/v1/residents?home_id=h-r3", adminToken, nil, &one)
	if len(one.Residents) != 1 || one.Residents[0].ID != "r3" {
		t.Fatalf("home filter: %+v", one.Residents)
	}
	h.expect(422, "GET", "/api/v1/residents?limit=1000", adminToken, nil, nil)
	h.expect(400, "GET", "/api/v1/residents?cursor=Not%20An%20Id", adminToken, nil, nil)
}

func TestDevicesHealthDisableRotate(t *testing.T) {
	h := newHarness(t, nil)
	h.resident("r1")
	var created struct {
		ID   string
		MQTT struct{ Password string }
	}
	h.expect(http.StatusCreated, "POST", "/api/v1/devices", adminToken, map[string]any{"id": "d1", "kind": "wearable", "resident_id": "r1"}, &created)

	var list struct {
		Devices []map[string]any `json:"devices"`
	}
	h.expect(http.StatusOK, "GET", "/api/v1/residents/r1/devices", adminToken, nil, &list)
	if len(list.Devices) != 1 || list.Devices[0]["id"] != "d1" || list.Devices[0]["online"] != false {
		t.Fatalf("devices: %+v", list.Devices)
	}
	if _, leaked := list.Devices[0]["secret_hash"]; leaked {
		t.Fatal("device list shows the secret hash")
	}
	var d map[string]any
	h.expect(http.StatusOK, "POST", "/api/v1/devices/d1/disable", adminToken, nil, &d)
	if d["disabled"] != true {
		t.Fatalf("disable: %+v", d)
	}
	if got, _ := h.reg.Device("d1"); !got.Disabled {
		t.Fatal("registry still has d1 enabled")
	}
	h.expect(http.StatusOK, "POST", "/api/v1/devices/d1/enable", adminToken, nil, nil)

	var rotated struct {
		MQTT struct{ Password string }
	}
	h.expect(http.StatusOK, "POST", "/api/v1/devices/d1/rotate-credentials", adminToken, nil, &rotated)
	if rotated.MQTT.Password == "" || rotated.MQTT.Password == created.MQTT.Password {
		t.Fatal("rotation did not issue a new password")
	}
	if h.reg.Authenticate("d1", created.MQTT.Password) || !h.reg.Authenticate("d1", rotated.MQTT.Password) {
		t.Fatal("old password still works, or the new one does not")
	}
	h.expect(http.StatusNotFound, "POST", "/api/v1/devices/ghost/disable", adminToken, nil, nil)
	h.expect(http.StatusOK, "GET", "/api/v1/devices?resident_id=r1", adminToken, nil, &list)
	if len(list.Devices) != 1 {
		t.Fatalf("GET /devices: %+v", list.Devices)
	}
}

func TestSettingsStatusAndEscalation(t *testing.T) {
	h := newHarness(t, nil)
	h.resident("r1")
	care := h.user("care", "caregiver", "r1")

	_, hdr, _ := h.call("GET", "/api/v1/residents/r1/settings", adminToken, nil, nil)
	tag := hdr.Get("ETag")
	if tag == "" {
		t.Fatal("no ETag on settings")
	}
	b := h.expect(422, "PUT", "/api/v1/residents/r1/settings", adminToken, map[string]any{"spo2_scale": 3}, nil)
	if errCode(b) != "invalid_settings" || !strings.Contains(string(b), "spo2_scale") {
		t.Fatalf("invalid settings: %s", b)
	}
	h.expect(422, "PUT", "/api/v1/residents/r1/settings", adminToken, map[string]any{"disabled": map[string]bool{"no_such_rule": true}}, nil)
	h.expect(http.StatusOK, "PUT", "/api/v1/residents/r1/settings", adminToken, map[string]any{"spo2_scale": 2}, nil, "If-Match", tag)
	if h.settings.Settings("r1").SpO2Scale != 2 {
		t.Fatal("settings not stored")
	}
	// The old ETag is stale now.
	h.expect(http.StatusPreconditionFailed, "PUT", "/api/v1/residents/r1/settings", adminToken, map[string]any{"spo2_scale": 1}, nil, "If-Match", tag)

	// Status mode: a caregiver starts a visit (quiet mode) with a reason.
	h.expect(422, "PUT", "/api/v1/residents/r1/status", care, map[string]any{"mode": "quiet"}, nil)
	h.expect(422, "PUT", "/api/v1/residents/r1/status", care, map[string]any{"mode": "party", "reason": "x"}, nil)
	h.expect(422, "PUT", "/api/v1/residents/r1/status", care, map[string]any{"mode": "away", "reason": "x", "until": h.clk.now().Add(-time.Hour)}, nil)
	until := h.clk.now().Add(time.Hour)
	h.expect(http.StatusOK, "PUT", "/api/v1/residents/r1/status", care, map[string]any{"mode": "quiet", "reason": "weekly visit", "until": until}, nil)
	var st struct {
		Mode, Reason, By string
		Active           bool
	}
	h.expect(http.StatusOK, "GET", "/api/v1/residents/r1/status", care, nil, &st)
	if st.Mode != "quiet" || st.Reason != "weekly visit" || st.By != "care" || !st.Active {
		t.Fatalf("status: %+v", st)
	}
	s := h.settings.Settings("r1")
	if s.Mode != rules.ModeQuiet || !s.ModeUntil.Equal(until) || s.SpO2Scale != 2 {
		t.Fatalf("stored settings %+v (the mode must keep the other settings)", s)
	}
	sup, _ := h.settings.Suppression(context.Background(), "r1", "inactivity", h.clk.now())
	if sup == nil || sup.Reason != "weekly visit" {
		t.Fatalf("suppression %+v", sup)
	}
	h.expect(http.StatusOK, "PUT", "/api/v1/residents/r1/status", care, map[string]any{"mode": "none"}, &st)
	if st.Mode != "none" || st.Active {
		t.Fatalf("cleared status: %+v", st)
	}

	// Escalation chain.
	var ch escalation.Chain
	h.expect(http.StatusOK, "GET", "/api/v1/residents/r1/escalation", care, nil, &ch)
	if len(ch.Tiers) != 5 {
		t.Fatalf("default chain: %+v", ch)
	}
	b = h.expect(422, "PUT", "/api/v1/residents/r1/escalation", adminToken, map[string]any{"tiers": []map[string]any{{"role": "emergency"}, {"role": "caregiver"}}}, nil)
	if errCode(b) != "invalid_chain" {
		t.Fatalf("bad chain: %s", b)
	}
	h.expect(http.StatusOK, "PUT", "/api/v1/residents/r1/escalation", adminToken, map[string]any{"tiers": []map[string]any{
		{"role": "caregiver", "user_ids": []string{"care"}}, {"role": "emergency"}}}, nil)
	h.expect(http.StatusOK, "GET", "/api/v1/residents/r1/escalation", care, nil, &ch)
	if len(ch.Tiers) != 2 || ch.Tiers[0].UserIDs[0] != "care" {
		t.Fatalf("stored chain: %+v", ch)
	}
}

// TestSettingsDurations: rule durations are Go duration strings; a bare
// number (which was stored as nanoseconds) and a duration under its rule's
// floor are 422s that say what to write (issue 10 item 3).
func TestSettingsDurations(t *testing.T) {
	h := newHarness(t, nil)
	h.resident("r1")
	put := func(want int, body string) []byte {
		t.Helper()
		return h.expect(want, "PUT", "/api/v1/residents/r1/settings", adminToken, json.RawMessage(body), nil)
	}
	b := put(422, `{"limits":{"inactivity":{"bands":[{"severity":"info","for":28800}]}}}`)
	if errCode(b) != "invalid_settings" || !strings.Contains(string(b), "bare number") || !strings.Contains(string(b), `\"8h\"`) {
		t.Fatalf("bare number: %s", b)
	}
	b = put(422, `{"limits":{"inactivity":{"bands":[{"severity":"info","for":"30s"}]}}}`)
	if errCode(b) != "invalid_settings" || !strings.Contains(string(b), "below the floor of 1h0m0s") {
		t.Fatalf("under the floor: %s", b)
	}
	// The field at fault, apart, for a client to point at and translate.
	fields := errFields(t, b)
	if len(fields) != 1 {
		t.Fatalf("fields of %s", b)
	}
	if f := fields[0]; f.Field != "limits.inactivity.bands.0.for" || f.Reason != "%s is below the floor of %s for %s" || fmt.Sprint(f.Args) != "[30s 1h0m0s inactivity]" {
		t.Fatalf("field %+v", f)
	}
	put(http.StatusOK, `{"limits":{"inactivity":{"bands":[{"severity":"info","for":"8h"},{"severity":"high","for":"24h"}]},"bathroom_stay":{"window":"90m"}},"report_intervals":{"env":"30m"}}`)
	st := h.settings.Settings("r1")
	if st.Limits["inactivity"].Bands[0].For != 8*time.Hour || st.Limits["bathroom_stay"].Window != 90*time.Minute || st.ReportIntervals["env"] != 30*time.Minute {
		t.Fatalf("stored %+v", st)
	}
	var got map[string]any
	h.expect(http.StatusOK, "GET", "/api/v1/residents/r1/settings", adminToken, nil, &got)
	lim := got["limits"].(map[string]any)["bathroom_stay"].(map[string]any)
	if lim["window"] != "1h30m0s" {
		t.Fatalf("GET gives window %v, want \"1h30m0s\"", lim["window"])
	}
}
