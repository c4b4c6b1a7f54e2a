package web_test

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/internal/users"
)

// credentials reads the show-once box: the device id and password the
// page was given by the API's answer.
func credentials(t *testing.T, ctx context.Context) (id, password string) {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[document.querySelector('#cred [data-field="id"]').textContent,
		document.querySelector('#cred [data-field="mqtt.password"]').textContent]`))
	if err != nil || len(v) != 2 {
		t.Fatalf("read the credentials box: %v %v", v, err)
	}
	return v[0], v[1]
}

// acceptConfirm answers the page's confirm() dialogs with yes (a headless
// browser has no one to click them).
var acceptConfirm = chromedp.Evaluate[chromedp.Void](`window.confirm = function () { return true; }`)

// TestBrowserRegistry drives the registry pages in chromium as a
// coordinator: add a resident, edit the profile with If-Match, record
// consent, add a device and see its MQTT password once (a real password:
// the registry accepts it), and not after a reload; rotate it (the old one
// stops working), disable the device. Accessibility, reflow at 320 px,
// screenshots in Korean and English.
func TestBrowserRegistry(t *testing.T) {
	h := newHarness(t)
	h.resident("r1", "김영희")
	h.user("co", "최코디", users.RoleCoordinator)
	if _, _, err := h.reg.RegisterDevice(context.Background(), "band-r1", "wearable", "r1"); err != nil {
		t.Fatal(err)
	}
	base := h.listen()
	co := browser(t)
	do(t, co, "coordinator logs in", loginSteps(base, "co")...)

	// A new resident, through the residents page.
	do(t, co, "residents page", chromedp.Click(`a[href="/registry/residents"]`), chromedp.WaitVisible(`[data-testid="new-resident"]`))
	// A birth year to come passes the browser's checks (up to 2100) and is
	// refused by the server, which names the field: the page marks it and
	// says why on its label, in Korean.
	do(t, co, "a birth year to come",
		chromedp.SetValue("#rname", "박철수"), chromedp.SendKeys("#rhome", "h-r2"), chromedp.SendKeys("#rbirth", "2099"), chromedp.SendKeys("#rid", "r2"),
		chromedp.Click(`[data-testid="new-resident"] button[type="submit"]`),
		chromedp.WaitVisible(`#rbirth[aria-invalid="true"]`))
	if said := statusText(t, co); !strings.Contains(said, "출생 연도: 2099년은 1900–") {
		t.Fatalf("the refused birth year says %q", said)
	}
	shot(t, co, "registry-refusal-ko-1280")
	do(t, co, "add a resident", chromedp.SetValue("#rbirth", "1939"),
		chromedp.Click(`[data-testid="new-resident"] button[type="submit"]`),
		chromedp.WaitVisible(`tr[data-resident="r2"] [data-consent="none"]`))
	if r, ok := h.reg.Resident("r2"); !ok || r.Name != "박철수" || r.HomeID != "h-r2" || r.BirthYear != 1939 {
		t.Fatalf("resident r2 as stored: %+v %v", r, ok)
	}
	shot(t, co, "registry-residents-ko-1280")
	accessible(t, co, "residents registry")

	// Its page: change the name (If-Match), record consent.
	do(t, co, "resident registry page", chromedp.Click(`tr[data-resident="r2"] a[href="/registry/residents/r2"]`), chromedp.WaitVisible(`[data-testid="edit-profile"]`))
	etag, err := chromedp.Run(co, chromedp.Evaluate[string](`document.querySelector('[data-testid="profile"]').dataset.etag`))
	if err != nil || etag == "" {
		t.Fatalf("the page's ETag: %q %v", etag, err)
	}
	do(t, co, "edit the name", chromedp.SetValue("#pname", "박철순"), chromedp.Click(`[data-testid="edit-profile"] button[type="submit"]`),
		chromedp.WaitVisible(`[data-testid="profile"]:not([data-etag='`+etag+`'])`)) // reloaded at the new revision
	if r, _ := h.reg.Resident("r2"); r.Name != "박철순" || r.BirthYear != 1939 {
		t.Fatalf("after the edit: %+v", r)
	}
	do(t, co, "record consent", chromedp.SetValue("#cscope", "monitoring+export"), chromedp.SendKeys("#cdoc", "form-2026-12"),
		chromedp.Click(`[data-testid="record-consent"] button[type="submit"]`),
		chromedp.WaitVisible(`[data-testid="consent"][data-consent="given"]`))
	if r, _ := h.reg.Resident("r2"); r.Consent == nil || !r.Consent.Given || r.Consent.Scope != "monitoring+export" || r.Consent.RecordedBy != "최코디" || r.Consent.DocumentRef != "form-2026-12" {
		t.Fatalf("consent as stored: %+v", r.Consent)
	}

	// Someone else changes the resident meanwhile: this page's edit is
	// refused (412, in the page's words), nothing overwritten.
	if _, _, err := h.reg.UpdateResident(context.Background(), "r2", 0, func(r *devices.Resident) error { r.BirthYear = 1938; return nil }); err != nil {
		t.Fatal(err)
	}
	do(t, co, "a stale edit", chromedp.SetValue("#pname", "박철수"), chromedp.Click(`[data-testid="edit-profile"] button[type="submit"]`),
		chromedp.Poll[chromedp.Void](`document.querySelector(".status").textContent === document.querySelector(".status").dataset.failed412`))
	if r, _ := h.reg.Resident("r2"); r.Name != "박철순" || r.BirthYear != 1938 {
		t.Fatalf("a stale edit was saved: %+v", r)
	}
	do(t, co, "reload", chromedp.Reload(), chromedp.WaitVisible(`[data-testid="new-device"]`))

	// A device: its password is shown once.
	do(t, co, "add a device", chromedp.SetValue("#dkind", "bed"), chromedp.SendKeys("#did", "bed-r2"),
		chromedp.Click(`[data-testid="new-device"] button[type="submit"]`), chromedp.WaitVisible(`#cred [data-testid="password"]`))
	id, password := credentials(t, co)
	if id != "bed-r2" || len(password) < 16 || !h.reg.Authenticate("bed-r2", password) {
		t.Fatalf("shown credentials %q %q: not the device's", id, password)
	}
	shot(t, co, "registry-resident-ko-1280")
	accessible(t, co, "resident registry page with credentials")
	do(t, co, "reload", chromedp.Reload(), chromedp.WaitVisible(`tr[data-device="bed-r2"]`))
	html, err := chromedp.Run(co, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(html, password) {
		t.Fatal("the device password is on the page again after a reload")
	}
	if _, again := credentials(t, co); again != "" {
		t.Fatalf("the credentials box shows %q after a reload", again)
	}
	do(t, co, "the box is hidden after a reload", chromedp.WaitNotVisible(`#cred`))

	// Rotate: a new password, shown once; the old one stops working.
	do(t, co, "rotate", acceptConfirm, chromedp.Click(`tr[data-device="bed-r2"] [data-testid="rotate"]`), chromedp.WaitVisible(`#cred [data-testid="password"]`))
	_, rotated := credentials(t, co)
	if rotated == "" || rotated == password || !h.reg.Authenticate("bed-r2", rotated) || h.reg.Authenticate("bed-r2", password) {
		t.Fatalf("rotation: new %q works %v, old works %v", rotated, h.reg.Authenticate("bed-r2", rotated), h.reg.Authenticate("bed-r2", password))
	}

	// Devices across homes: disable one.
	do(t, co, "devices registry", chromedp.Navigate(base+"/registry/devices"), chromedp.WaitVisible(`tr[data-device="band-r1"]`))
	do(t, co, "a device of no resident", chromedp.SendKeys("#dres", "r9"),
		chromedp.Click(`[data-testid="new-device"] button[type="submit"]`), chromedp.WaitVisible(`#dres[aria-invalid="true"]`))
	if said := statusText(t, co); !strings.Contains(said, "어르신: ID가 r9인 어르신이 없습니다. 어르신을 먼저 등록하세요") {
		t.Fatalf("a device of an unknown resident says %q", said)
	}
	do(t, co, "disable", acceptConfirm, chromedp.Click(`tr[data-device="band-r1"] [data-testid="disable"]`),
		chromedp.WaitVisible(`tr[data-device="band-r1"][data-state="disabled"]`))
	if d, _ := h.reg.Device("band-r1"); !d.Disabled {
		t.Fatal("band-r1 is not disabled")
	}
	shot(t, co, "registry-devices-ko-1280")
	accessible(t, co, "devices registry")
	do(t, co, "homes registry", chromedp.Navigate(base+"/registry/homes"), chromedp.WaitVisible(`tr[data-home="h-r2"]`))
	// The page checks an id's form itself and says so in its own words.
	do(t, co, "an id with a space", chromedp.SetValue("#hname", "302호"), chromedp.SendKeys("#hid", "H 302"),
		chromedp.Click(`[data-testid="new-home"] button[type="submit"]`), chromedp.WaitVisible(`#hid[aria-invalid="true"]`))
	if said := statusText(t, co); !strings.Contains(said, "형식이 맞지 않습니다") {
		t.Fatalf("an id with a space says %q", said)
	}
	do(t, co, "add a home", chromedp.SetValue("#hid", "h-302"),
		chromedp.Click(`[data-testid="new-home"] button[type="submit"]`), chromedp.WaitVisible(`tr[data-home="h-302"]`))
	if hm, ok := h.reg.Home("h-302"); !ok || hm.Name != "302호" {
		t.Fatalf("home h-302 as stored: %+v %v", hm, ok)
	}
	shot(t, co, "registry-homes-ko-1280")
	accessible(t, co, "homes registry")

	for _, p := range []string{"/registry/homes", "/registry/residents", "/registry/residents/r2", "/registry/devices"} {
		do(t, co, "320 px "+p, chromedp.EmulateViewport(320, 640), chromedp.Navigate(base+p), chromedp.WaitVisible(`main h1`))
		noHorizontalScroll(t, co, p)
	}
	do(t, co, "1280 px, English", chromedp.EmulateViewport(1280, 900), chromedp.Navigate(base+"/registry/residents/r2?lang=en"), chromedp.WaitVisible(`[data-testid="consent"]`))
	shot(t, co, "registry-resident-en-1280")
	do(t, co, "English devices", chromedp.Navigate(base+"/registry/devices"), chromedp.WaitVisible(`tr[data-device="band-r1"]`))
	shot(t, co, "registry-devices-en-1280")
}

// statusText is what the page's status line says.
func statusText(t *testing.T, b context.Context) string {
	t.Helper()
	got, err := chromedp.Run(b, chromedp.Evaluate[string](`document.querySelector(".status").textContent`))
	if err != nil {
		t.Fatal(err)
	}
	return got
}
