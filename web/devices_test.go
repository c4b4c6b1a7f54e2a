package web_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/internal/users"
	"github.com/carehub/carehub/web"
)

// TestDevicesPage: device health across homes is staff's, as GET /devices
// is (a caregiver gets 404, nothing audited), records devices.list like
// it, carries the CSP, and marks a device offline (never seen), not worn
// (an open wearable_not_worn alert) and its home as one that cannot be
// monitored, in words and shapes.
func TestDevicesPage(t *testing.T) {
	h := newHarness(t)
	h.resident("r1", "김영희")
	h.resident("r2", "박철수") // no device: cannot be monitored either
	h.user("co", "최코디", users.RoleCoordinator)
	h.user("cg", "정요양", users.RoleCaregiver, "r1")
	if _, _, err := h.reg.RegisterDevice(context.Background(), "band-r1", "wearable", "r1"); err != nil {
		t.Fatal(err)
	}
	if err := h.mgr.Signal(context.Background(), rules.Signal{ResidentID: "r1", HomeID: "h-r1", DeviceID: "band-r1", Rule: rules.RuleWearableNotWorn,
		Severity: "warning", Active: true, Message: "not worn", At: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	co := h.client()
	co.login("co")
	cg := h.client()
	cg.login("cg")

	mark := h.audit.mark()
	resp, body := co.do("GET", "/devices", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /devices: %d: %.400s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Content-Security-Policy"); got != web.CSP {
		t.Errorf("GET /devices: CSP %q", got)
	}
	var got []string
	for _, e := range h.audit.since(mark) {
		got = append(got, e.Action)
	}
	if !slices.Equal(got, []string{"devices.list"}) {
		t.Errorf("GET /devices: audit actions %v, want [devices.list] (its API twin)", got)
	}
	for _, want := range []string{`data-device="band-r1"`, `data-testid="offline"`, `data-testid="notworn"`, `data-testid="cannot-monitor"`,
		`data-home="h-r2"`, "이 가정에는 기기가 없습니다", "기기 상태", "착용 안 함", "모니터링 불가", "⊘", `href="/devices" aria-current="page"`} {
		if !strings.Contains(body, want) {
			t.Errorf("devices page lacks %q", want)
		}
	}
	if n := strings.Count(body, `data-testid="cannot-monitor"`); n != 2 {
		t.Errorf("%d homes marked cannot be monitored, want 2 (h-r1 offline, h-r2 no device)", n)
	}
	if _, en := co.do("GET", "/devices?lang=en", nil); !strings.Contains(en, "Not worn") || !strings.Contains(en, "Cannot be monitored") {
		t.Errorf("English devices page: %.300s", en)
	}

	mark = h.audit.mark()
	if resp, _ := cg.do("GET", "/devices", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("caregiver GET /devices: %d, want 404", resp.StatusCode)
	}
	if n := len(h.audit.since(mark)); n != 0 {
		t.Errorf("caregiver GET /devices recorded %d entries, want 0", n)
	}
}

// TestDevicesPageStates: with the screenshots' homes (careHomes), the
// device health page tells every state apart (online, offline, low
// battery, not worn, homes that cannot be monitored) and names homes by
// their labels and devices by their kind in words, in Korean.
func TestDevicesPageStates(t *testing.T) {
	h := newHarness(t)
	h.careHomes()
	h.user("co", "최코디", users.RoleCoordinator)
	co := h.client()
	co.login("co")
	_, body := co.do("GET", "/devices", nil)
	for _, want := range []string{"모니터링할 수 없는 가정: 2곳 · 확인이 필요한 기기: 5대", "행복빌라 201호", "새봄주택 2층", "움직임 센서", "손목 밴드",
		`data-device="band-r1"`, "연결됨", "<td>12 %</td>", "<td>78 %</td>", `data-testid="lowbattery"`, `data-testid="notworn"`, `data-testid="offline"`} {
		if !strings.Contains(body, want) {
			t.Errorf("devices page lacks %q", want)
		}
	}
	for _, bad := range []string{"(wearable)", "(motion)", "가정 h-r1", "%!"} {
		if strings.Contains(body, bad) {
			t.Errorf("devices page shows %q", bad)
		}
	}
	if n := strings.Count(body, `data-testid="cannot-monitor"`); n != 2 {
		t.Errorf("%d homes marked cannot be monitored, want 2 (h-r3 offline, h-r4 no device)", n)
	}
	if n := strings.Count(body, `<span class="chip ok-chip">`); n != 5 {
		t.Errorf("%d devices shown online, want 5", n)
	}
}
