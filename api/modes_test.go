package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/api"
)

// TestQuietModeNeedsEnd: quiet mode (a visit) must say when it ends, at
// most 4 h on; away and hospital are capped at 30 and 90 days, given that
// end when none is asked, and renewed by setting them again; the same caps
// hold through PUT /settings; a mode's reason is bounded; active modes show
// on the overview until they end.
func TestQuietModeNeedsEnd(t *testing.T) {
	h, _, _ := trendsHarnessWith(t)
	h.resident("r1")
	h.resident("r2")
	care := h.user("care", "caregiver", "r1")
	now := h.clk.now()
	put := func(want int, code string, body map[string]any) {
		t.Helper()
		b := h.expect(want, "PUT", "/api/v1/residents/r1/status", care, body, nil)
		if code != "" && errCode(b) != code {
			t.Fatalf("%v: %s, want %s", body, b, code)
		}
	}
	put(422, "mode_needs_end", map[string]any{"mode": "quiet", "reason": "visit"})
	put(422, "mode_too_long", map[string]any{"mode": "quiet", "reason": "visit", "until": now.Add(4*time.Hour + time.Minute)})
	put(422, "mode_too_long", map[string]any{"mode": "away", "reason": "family", "until": now.Add(31 * 24 * time.Hour)})
	put(422, "mode_too_long", map[string]any{"mode": "hospital", "reason": "ward", "until": now.Add(91 * 24 * time.Hour)})
	put(422, "invalid_reason", map[string]any{"mode": "away", "reason": strings.Repeat("가", 501)})
	// Each refusal names the body's field and its values apart, for a
	// client to say it in its own language.
	b := h.expect(422, "PUT", "/api/v1/residents/r1/status", care, map[string]any{"mode": "away", "reason": "family", "until": now.Add(31 * 24 * time.Hour)}, nil)
	if f := errFields(t, b); len(f) != 1 || f[0].Field != "until" || f[0].Reason != "%s mode may last at most %d days from now; set it again to renew it" ||
		fmt.Sprint(f[0].Args) != "[away 30]" || !strings.Contains(string(b), "away mode may last at most 30 days from now") {
		t.Errorf("away too long: %s", b)
	}

	put(http.StatusOK, "", map[string]any{"mode": "away", "reason": "family visit"})
	if st := h.settings.Settings("r1"); !st.ModeUntil.Equal(now.Add(30 * 24 * time.Hour)) {
		t.Fatalf("away without an end: until %s, want 30 days on", st.ModeUntil)
	}
	put(http.StatusOK, "", map[string]any{"mode": "hospital", "reason": "ward 3", "until": now.Add(60 * 24 * time.Hour)})
	// Through the settings too (staff).
	b = h.expect(422, "PUT", "/api/v1/residents/r2/settings", adminToken, map[string]any{"mode": "quiet", "mode_reason": "visit"}, nil)
	if f := errFields(t, b); errCode(b) != "mode_needs_end" || len(f) != 1 || f[0].Field != "mode_until" || len(f[0].Args) != 0 {
		t.Fatalf("quiet through settings: %s", b)
	}
	h.expect(http.StatusOK, "PUT", "/api/v1/residents/r2/settings", adminToken, map[string]any{"mode": "hospital", "mode_reason": "ward 5"}, nil)
	if st := h.settings.Settings("r2"); st.Mode != rules.ModeHospital || !st.ModeUntil.Equal(now.Add(90*24*time.Hour)) {
		t.Fatalf("hospital through settings: %+v", st)
	}

	put(http.StatusOK, "", map[string]any{"mode": "quiet", "reason": "weekly visit", "until": now.Add(2 * time.Hour)})
	var ov struct {
		Residents []struct {
			ResidentID string `json:"resident_id"`
			Mode       *struct {
				Mode, By string
				Until    *time.Time
			}
		}
	}
	h.expect(http.StatusOK, "GET", "/api/v1/overview", adminToken, nil, &ov)
	modes := map[string]string{}
	for _, r := range ov.Residents {
		if r.Mode != nil && r.Mode.Until != nil {
			modes[r.ResidentID] = r.Mode.Mode + " by " + r.Mode.By
		}
	}
	if modes["r1"] != "quiet by care" || modes["r2"] != "hospital by "+api.BootstrapAdminID {
		t.Fatalf("modes on the overview: %v", modes)
	}
	h.clk.add(2*time.Hour + time.Second) // the visit is over
	ov.Residents = nil
	h.expect(http.StatusOK, "GET", "/api/v1/overview", adminToken, nil, &ov)
	for _, r := range ov.Residents {
		if r.ResidentID == "r1" && r.Mode != nil {
			t.Fatalf("an ended quiet mode on the overview: %+v", r.Mode)
		}
	}
}
