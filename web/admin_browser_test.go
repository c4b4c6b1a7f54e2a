package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/carehub/carehub/alerts/escalation"
	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/internal/testenv"
	"github.com/carehub/carehub/internal/users"
)

// storedSettings reads a resident's settings and their ETag through the API.
func storedSettings(t *testing.T, c *client, rid string) (rules.Settings, string) {
	t.Helper()
	resp, body := c.do("GET", "/api/v1/residents/"+rid+"/settings", nil)
	var st rules.Settings
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil {
		t.Fatalf("GET settings: %d %.300s", resp.StatusCode, body)
	}
	return st, resp.Header.Get("ETag")
}

// save runs steps, submits the form and waits for the page the form
// reloads after a save (not the old one, which still shows the edits).
func save(t *testing.T, b context.Context, what, form string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	steps = append([]chromedp.Action[chromedp.Void]{chromedp.Evaluate[chromedp.Void](`void (window.stale = 1)`)}, steps...)
	do(t, b, what, append(steps, chromedp.Click(`[data-testid="`+form+`"] button[type="submit"]`))...)
	testenv.WaitFor(t, 10*time.Second, what+": the page reloaded", func() bool {
		v, err := chromedp.Run(b, chromedp.Evaluate[bool](`window.stale === undefined && document.readyState === "complete"`))
		return err == nil && v
	})
}

// TestBrowserSettingsForm: a coordinator changes a heart-rate threshold
// and switches SpO2 off through the settings form's fields; the API then
// answers the new settings, the rest as before. A clear level on the raise
// side of a band is refused by the server: its message shows in the status
// line, and nothing is stored.
func TestBrowserSettingsForm(t *testing.T) {
	h := newHarness(t)
	h.resident("r1", "김영희")
	h.user("co", "최코디", users.RoleCoordinator)
	api := h.client()
	api.login("co")
	base := h.listen()
	b := browser(t)
	do(t, b, "coordinator logs in", loginSteps(base, "co")...)
	do(t, b, "settings page", chromedp.Navigate(base+"/residents/r1/settings"), chromedp.WaitVisible(`[data-testid="settings-form"]`))
	accessible(t, b, "settings form")

	// Another SpO2 scale shows that scale's default SpO2 limits at once,
	// not after a save.
	for _, scale := range []int{2, 1} {
		def, _ := rules.DefaultLimit(rules.RuleSpO2, scale)
		want := strconv.FormatFloat(def.Bands[0].Value, 'g', -1, 64)
		do(t, b, fmt.Sprintf("SpO2 scale %d chosen", scale), chromedp.SetValue(`[name="spo2_scale"]`, strconv.Itoa(scale)),
			chromedp.Evaluate[chromedp.Void](`void document.querySelector('[name="spo2_scale"]').dispatchEvent(new Event("change", {bubbles: true}))`))
		testenv.WaitFor(t, 10*time.Second, fmt.Sprintf("scale %d's first SpO2 band (%s) shown", scale, want), func() bool {
			v, err := chromedp.Run(b, chromedp.Evaluate[string](`document.querySelector('[name="limits.spo2.bands.0.value"]').value`))
			return err == nil && v == want
		})
	}

	hr := `tr[data-rule="heart_rate"] `
	save(t, b, "heart rate ≤ 38 critical, SpO2 off", "settings-form",
		chromedp.Click(hr+`summary`),
		chromedp.Click(hr+`input[data-toggle]`),
		chromedp.SetValue(`[name="limits.heart_rate.bands.0.value"]`, "38"),
		chromedp.Click(`#on-spo2`))
	do(t, b, "the page shows SpO2 off", chromedp.WaitVisible(`tr[data-rule="spo2"][data-off="1"]`))
	st, etag := storedSettings(t, api, "r1")
	def, _ := rules.DefaultLimit(rules.RuleHeartRate, 1)
	want := def
	want.Bands = slices.Clone(def.Bands)
	want.Bands[0].Value = 38
	got, own := st.Limits[rules.RuleHeartRate]
	if !own || !slices.Equal(got.Bands, want.Bands) || got.ClearLow != want.ClearLow || got.ClearHigh != want.ClearHigh ||
		got.ClearFor != want.ClearFor || got.MaxGap != want.MaxGap {
		t.Errorf("stored heart-rate limits %+v, want %+v", got, want)
	}
	if !st.Disabled[rules.RuleSpO2] || st.Disabled[rules.RuleHeartRate] || len(st.Limits) != 1 || st.SpO2Scale != 1 || st.Mode != "" {
		t.Errorf("stored settings %+v: want SpO2 off and nothing else changed", st)
	}
	shot(t, b, "settings-form-ko-1280")

	// Invalid: heart rate clears at 30, below the ≤ 38 band.
	do(t, b, "clear level on the raise side",
		chromedp.SetValue(`#l-heart_rate-clear_low`, "30"),
		chromedp.Click(`[data-testid="settings-form"] button[type="submit"]`))
	// The refusal is said in Korean, on the field's own label, and the
	// field is marked and focused.
	msg := refusal(t, b, "the server's refusal in the status line")
	if want := "심박 · 이 값 이상이면 해제 (회/분): 30은(는) 1번 구간(<= 38)의 알림 범위 안에 있습니다"; !strings.Contains(msg, want) || strings.Contains(msg, "clear_low") {
		t.Errorf("status line %q, want it to say %q and no field path", msg, want)
	}
	if n := strings.Count(msg, "이 값 이상이면 해제"); n != 1 {
		t.Errorf("status line %q names the field %d times; want its first problem only", msg, n)
	}
	marked, err := chromedp.Run(b, chromedp.Evaluate[bool](`(function () {
		var el = document.getElementById("l-heart_rate-clear_low");
		return el.getAttribute("aria-invalid") === "true" && document.activeElement === el &&
			document.querySelectorAll("[aria-invalid]").length === 1;
	})()`))
	if err != nil || !marked {
		t.Errorf("the refused field is not the one marked and focused (%v)", err)
	}
	shot(t, b, "settings-error-ko-1280")

	// A duration under its floor: the durations in the units' words, the
	// rule by its name.
	in := `tr[data-rule="inactivity"] `
	do(t, b, "inactivity after 30 seconds",
		chromedp.Reload(), chromedp.WaitVisible(`[data-testid="settings-form"]`),
		chromedp.Click(in+`summary`), chromedp.Click(in+`input[data-toggle]`),
		chromedp.SetValue(`[name="limits.inactivity.bands.0.for"]`, "30"),
		chromedp.SetValue(`[name="limits.inactivity.bands.0.for"] + select`, "s"),
		chromedp.Click(`[data-testid="settings-form"] button[type="submit"]`))
	msg = refusal(t, b, "the floor's refusal in the status line")
	if want := "무활동 · 움직임 없는 시간 · 1: 30초은(는) 최소 1시간보다 짧습니다 (무활동)"; !strings.Contains(msg, want) {
		t.Errorf("status line %q, want it to say %q", msg, want)
	}

	// A quiet mode two days long, refused by the status endpoints' rule: the
	// mode by its name and its cap, on the end's label.
	seoul, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		t.Fatal(err)
	}
	do(t, b, "quiet mode for two days",
		chromedp.Reload(), chromedp.WaitVisible(`[data-testid="settings-form"]`),
		chromedp.SetValue(`#s-mode`, "quiet"),
		chromedp.SetValue(`#s-until`, time.Now().In(seoul).Add(48*time.Hour).Format("2006-01-02T15:04")),
		chromedp.SetValue(`#s-reason`, "방문 간호"),
		chromedp.Click(`[data-testid="settings-form"] button[type="submit"]`))
	msg = refusal(t, b, "the mode's refusal in the status line")
	if want := "상태 끝나는 시각: 방해 금지 모드는 지금부터 최대 4시간까지입니다"; !strings.Contains(msg, want) || strings.Contains(msg, "quiet") {
		t.Errorf("status line %q, want it to say %q in Korean only", msg, want)
	}
	if marked, err := chromedp.Run(b, chromedp.Evaluate[bool](`document.activeElement.id === "s-until" && document.activeElement.getAttribute("aria-invalid") === "true"`)); err != nil || !marked {
		t.Errorf("the mode's end is not marked and focused (%v)", err)
	}
	shot(t, b, "settings-mode-error-ko-1280")

	// Over the field's maximum: the page says so itself, in Korean on the
	// status line, and sends nothing.
	do(t, b, "a fresh form", chromedp.Reload(), chromedp.WaitVisible(`[data-testid="settings-form"]`))
	audits := len(h.audit.since(0)) // the page's read is audited too
	do(t, b, "heart rate band at 400",
		chromedp.SetValue(`[name="limits.heart_rate.bands.0.value"]`, "400"),
		chromedp.Click(`[data-testid="settings-form"] button[type="submit"]`))
	msg = refusal(t, b, "the page's own refusal in the status line")
	if want := "심박 · 값 (회/분) · 1: 250 이하여야 합니다"; !strings.Contains(msg, want) {
		t.Errorf("status line %q, want it to say %q", msg, want)
	}
	marked, err = chromedp.Run(b, chromedp.Evaluate[bool](`document.activeElement.name === "limits.heart_rate.bands.0.value" && document.activeElement.getAttribute("aria-invalid") === "true"`))
	if err != nil || !marked {
		t.Errorf("the field over its maximum is not marked and focused (%v)", err)
	}
	shot(t, b, "settings-invalid-ko-1280")
	if n := len(h.audit.since(0)); n != audits {
		t.Errorf("%d audit records after a save the page refused, want %d: it reached the server", n, audits)
	}
	if _, again := storedSettings(t, api, "r1"); again != etag {
		t.Errorf("a refused save changed the settings (ETag %s, was %s)", again, etag)
	}

	do(t, b, "English settings", chromedp.Navigate(base+"/residents/r1/settings?lang=en"), chromedp.WaitVisible(`[data-testid="settings-form"]`),
		chromedp.Click(`details.panel summary`), chromedp.Click(`tr[data-rule="inactivity"] summary`), chromedp.Click(`tr[data-rule="night_exit"] summary`))
	accessible(t, b, "English settings form")
	shot(t, b, "settings-form-en-1280")
	do(t, b, "320 px settings", chromedp.EmulateViewport(320, 640), chromedp.Reload(), chromedp.WaitVisible(`main h1`))
	noHorizontalScroll(t, b, "settings form")
	shot(t, b, "settings-form-en-320")
	do(t, b, "320 px Korean settings", chromedp.Navigate(base+"/residents/r1/settings?lang=ko"), chromedp.WaitVisible(`[data-testid="settings-form"]`))
	noHorizontalScroll(t, b, "Korean settings form")
	shot(t, b, "settings-form-ko-320")
}

// TestBrowserChainForm: an admin names people on tiers through the chain
// form's checkboxes, then takes one off, removes a tier and adds one; the
// stored chain follows each save and still ends with 119.
func TestBrowserChainForm(t *testing.T) {
	h := newHarness(t)
	h.resident("r1", "김영희")
	h.user("ad", "한관리", users.RoleAdmin)
	h.user("cg1", "정요양", users.RoleCaregiver, "r1")
	h.user("cg2", "김보람", users.RoleCaregiver)
	base := h.listen()
	b := browser(t)
	do(t, b, "admin logs in", loginSteps(base, "ad")...)
	page := chromedp.Navigate(base + "/residents/r1/escalation")
	do(t, b, "chain page", page, chromedp.WaitVisible(`[data-testid="chain-form"]`))
	accessible(t, b, "chain form")
	stored := func(what string, want []escalation.Tier) {
		t.Helper()
		var got []escalation.Tier
		testenv.WaitFor(t, 10*time.Second, what, func() bool {
			ch, err := h.mgr.Chains().Chain(context.Background(), "r1")
			got = ch.Tiers
			return err == nil && slices.EqualFunc(got, want, func(a, b escalation.Tier) bool {
				return a.Role == b.Role && slices.Equal(a.UserIDs, b.UserIDs)
			})
		})
	}
	tick := func(tier, user string) chromedp.Action[chromedp.Void] {
		return chromedp.Click(`input[name="tiers.` + tier + `.user_ids"][value="` + user + `"]`)
	}
	save(t, b, "cg1 on the caregiver tier, cg2 on the backup tier", "chain-form", tick("1", "cg1"), tick("2", "cg2"))
	stored("the chain names cg1 and cg2", []escalation.Tier{{Role: "caregiver", UserIDs: []string{"cg1"}}, {Role: "backup", UserIDs: []string{"cg2"}},
		{Role: "coordinator"}, {Role: "guardian"}, {Role: "emergency"}})
	do(t, b, "the page shows it", chromedp.WaitVisible(`input[name="tiers.1.user_ids"][value="cg1"]:checked`))
	shot(t, b, "escalation-form-ko-1280")

	save(t, b, "cg1 off tier 1, guardian tier out, a new backup tier with cg1", "chain-form",
		tick("1", "cg1"), chromedp.SetValue(`select[name="tiers.4.role"]`, ""),
		chromedp.SetValue(`select[name="tiers.6.role"]`, "backup"), tick("6", "cg1"))
	stored("the chain without cg1 on tier 1 and with the new tier", []escalation.Tier{{Role: "caregiver"}, {Role: "backup", UserIDs: []string{"cg2"}},
		{Role: "coordinator"}, {Role: "backup", UserIDs: []string{"cg1"}}, {Role: "emergency"}})
	do(t, b, "the page shows it", chromedp.WaitVisible(`[data-testid="tiers"] tr[data-role="emergency"]`),
		chromedp.WaitVisible(`input[name="tiers.4.user_ids"][value="cg1"]:checked`))
	accessible(t, b, "chain form after the save")

	// Every tier removed and no 119: refused, said in Korean, nothing stored.
	do(t, b, "the chain page again", page, chromedp.WaitVisible(`[data-testid="chain-form"]`))
	if _, err := chromedp.Run(b, chromedp.Evaluate[bool](`(function () {
		document.querySelectorAll('[data-testid="chain-form"] select').forEach(function (s) { s.value = ""; });
		document.getElementById("t-emergency").checked = false;
		return true;
	})()`)); err != nil {
		t.Fatal(err)
	}
	do(t, b, "save an empty chain", chromedp.Click(`[data-testid="chain-form"] button[type="submit"]`))
	msg := refusal(t, b, "the empty chain's refusal in the status line")
	if want := "연락 순서에는 단계가 하나 이상 있어야 합니다"; !strings.Contains(msg, want) || strings.Contains(msg, "tier") {
		t.Errorf("status line %q, want it to say %q in Korean only", msg, want)
	}
	stored("the chain as it was", []escalation.Tier{{Role: "caregiver"}, {Role: "backup", UserIDs: []string{"cg2"}},
		{Role: "coordinator"}, {Role: "backup", UserIDs: []string{"cg1"}}, {Role: "emergency"}})
	// A refusal without a field (a user id taken): the page's words for the
	// API's code (apierr.conflict), not its English message.
	do(t, b, "users page", chromedp.Navigate(base+"/users"), chromedp.WaitVisible(`[data-testid="create-user"]`),
		chromedp.SendKeys(`[data-testid="new-id"]`, "cg2"), chromedp.SendKeys(`[data-testid="new-name"]`, "김보람"),
		chromedp.Click(`[data-testid="create-user"] button[type="submit"]`))
	taken := refusal(t, b, "the taken id's refusal in the status line")
	if want := "이미 있거나 그사이 바뀌었습니다"; !strings.Contains(taken, want) || strings.Contains(taken, "already") {
		t.Errorf("status line %q, want the Korean words for the API's conflict (%q) and no English", taken, want)
	}
	do(t, b, "English chain", chromedp.Navigate(base+"/residents/r1/escalation?lang=en"), chromedp.WaitVisible(`[data-testid="chain-form"]`))
	shot(t, b, "escalation-form-en-1280")
	do(t, b, "320 px chain", chromedp.EmulateViewport(320, 640), chromedp.Reload(), chromedp.WaitVisible(`main h1`))
	noHorizontalScroll(t, b, "chain form")
	shot(t, b, "escalation-form-en-320")
	do(t, b, "320 px Korean chain", chromedp.Navigate(base+"/residents/r1/escalation?lang=ko"), chromedp.WaitVisible(`[data-testid="chain-form"]`))
	noHorizontalScroll(t, b, "Korean chain form")
	shot(t, b, "escalation-form-ko-320")
}

// TestBrowserSettingsRoundTrip: settings that use every field (a mode with
// its end, reason and author, a snooze, bathroom devices, report intervals
// by kind and by device, a night-exit window, the heat wave, scale 2) come
// back unchanged from a save of the form nobody edited; unticking the
// snooze ends it; ticking "own limits" on every rule stores each rule's
// defaults as they were shown.
func TestBrowserSettingsRoundTrip(t *testing.T) {
	h := newHarness(t)
	h.resident("r1", "김영희")
	h.user("co", "최코디", users.RoleCoordinator)
	api := h.client()
	api.login("co")
	until := time.Now().Add(20 * 24 * time.Hour).UTC().Truncate(time.Minute)
	snooze := time.Now().Add(3 * time.Hour).UTC().Truncate(time.Second)
	body, _ := json.Marshal(map[string]any{"spo2_scale": 2, "heat_wave": true, "mode": "away", "mode_until": until, "mode_reason": "가족 방문",
		"disabled": map[string]bool{"fall": true}, "snoozed": map[string]any{"co2": map[string]any{"until": snooze, "reason": "환기 공사"}},
		"bathroom_device_ids": []string{"pir-bath", "radar-bath"}, "report_intervals": map[string]string{"motion": "2h", "wear-1": "0s", "door": "90s"},
		"limits": map[string]any{"night_exit": map[string]any{"from": "23:00", "to": "05:30", "window": "20m"},
			"inactivity": map[string]any{"bands": []map[string]any{{"severity": "warning", "for": "10h"}, {"severity": "critical", "for": "24h"}}}}})
	if resp, b := api.doJSON("PUT", "/api/v1/residents/r1/settings", string(body), "Authorization", "Bearer "+adminToken); resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT settings: %d %s", resp.StatusCode, b)
	}
	before, _ := storedSettings(t, api, "r1")
	base := h.listen()
	b := browser(t)
	do(t, b, "coordinator logs in", loginSteps(base, "co")...)
	saved := func() bool {
		for _, e := range h.audit.since(0) {
			if e.Action == "settings.update" && e.Actor == "co" {
				return true
			}
		}
		return false
	}
	do(t, b, "settings page", chromedp.Navigate(base+"/residents/r1/settings"), chromedp.WaitVisible(`[data-testid="settings-form"]`))
	accessible(t, b, "settings form with every field")
	save(t, b, "save the settings unchanged", "settings-form")
	testenv.WaitFor(t, 10*time.Second, "the save", saved)
	after, _ := storedSettings(t, api, "r1")
	a, _ := json.Marshal(after)
	w, _ := json.Marshal(before)
	if string(a) != string(w) {
		t.Errorf("a save of the unchanged form changed the settings:\n got %s\nwant %s", a, w)
	}
	save(t, b, "end the snooze", "settings-form", chromedp.Click(`[name="snoozed.co2"]`))
	testenv.WaitFor(t, 10*time.Second, "the snooze ended", func() bool {
		st, _ := storedSettings(t, api, "r1")
		return len(st.Snoozed) == 0 && st.Mode == "away"
	})

	// "Own limits" ticked on every rule and saved as shown: each rule's
	// fields hold its whole default limit (scale 2's for SpO2).
	save(t, b, "own limits everywhere", "settings-form",
		chromedp.Evaluate[chromedp.Void](`document.querySelectorAll("input[data-toggle]:not(:checked)").forEach(c => c.click())`))
	st, _ := storedSettings(t, api, "r1")
	for _, rule := range rules.RuleNames() {
		want, _ := rules.DefaultLimit(rule, 2)
		if l, ok := before.Limits[rule]; ok {
			want = l
		}
		got, ok := st.Limits[rule]
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		if ok != (string(w) != "{}") || string(g) != string(w) {
			t.Errorf("%s: stored %s, want %s", rule, g, w)
		}
	}
}

// refusal waits for the form's status line to say the save failed
// ("저장하지 못했습니다: ...") and returns what it says.
func refusal(t *testing.T, b context.Context, what string) string {
	t.Helper()
	var msg string
	testenv.WaitFor(t, 10*time.Second, what, func() bool {
		got, err := chromedp.Run(b, chromedp.Evaluate[string](`document.querySelector(".status").textContent`))
		msg = got
		return err == nil && strings.Contains(got, "저장하지 못했습니다")
	})
	return msg
}
