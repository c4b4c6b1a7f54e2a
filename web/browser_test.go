package web_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/carehub/carehub/internal/users"
)

// browser starts Debian's chromium (deploy/dev/setup.sh installs it with
// fonts-nanum, so Hangul renders) headless, and returns a context for its
// first tab. A missing chromium fails the test: it is part of the setup,
// not optional.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: run deploy/dev/setup.sh (apt-get install chromium fonts-nanum)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.Flag("no-sandbox", true),
		chromedp.Flag("lang", "ko-KR"), chromedp.WindowSize(1280, 900))
	alloc, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancelTab := chromedp.NewContext(alloc)
	t.Cleanup(cancelTab)
	ctx, cancelTime := context.WithTimeout(ctx, 6*time.Minute)
	t.Cleanup(cancelTime)
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatal(err)
	}
	return ctx
}

func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	step, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	start := time.Now()
	defer func() { t.Logf("%s: %v", what, time.Since(start).Round(time.Millisecond)) }()
	if err := chromedp.Do(step, steps...); err != nil {
		// Say where the browser is and what it shows.
		where, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText.slice(0, 600)`))
		t.Fatalf("%s: %v\nthe page: %s", what, err, where)
	}
}

func loginSteps(base, id string) []chromedp.Action[chromedp.Void] {
	return []chromedp.Action[chromedp.Void]{
		chromedp.Navigate(base + "/login"),
		chromedp.WaitVisible("#user"),
		chromedp.SendKeys("#user", id),
		chromedp.SendKeys("#password", "pass-"+id+"-long"),
		chromedp.Click(`button[type="submit"]`),
		// Only a signed-in page has the logout form: waiting for "main h1"
		// let the login page itself pass, and the next navigation then
		// raced the login's POST (ERR_ABORTED, or a refused login).
		chromedp.WaitVisible(`header form[action="/logout"] button`),
	}
}

// shot writes a full-page PNG to $CAREHUB_SCREENSHOTS (make screenshots),
// else to the test's temporary directory.
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("CAREHUB_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100 = PNG
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644); err != nil {
		t.Fatal(err)
	}
}

// noHorizontalScroll fails when the page is wider than its viewport
// (WCAG 1.4.10 reflow at 320 CSS px).
func noHorizontalScroll(t *testing.T, ctx context.Context, what string) {
	t.Helper()
	w, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
	if err != nil {
		t.Fatal(err)
	}
	vw, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.innerWidth`))
	if err != nil {
		t.Fatal(err)
	}
	if w > vw {
		t.Errorf("%s at %d px: the page is %d px wide (horizontal scroll)", what, vw, w)
	}
}

// TestBrowser drives the console in a real chromium: log in, see the
// overview and a resident's charts, receive a live alert in the inbox,
// acknowledge it and see it acknowledged in a second person's inbox; the
// pages reflow at 320 px; screenshots in Korean and English.
func TestBrowser(t *testing.T) {
	h := newHarness(t)
	h.careHomes()
	h.user("co", "최코디", users.RoleCoordinator)
	h.user("cg", "정요양", users.RoleCaregiver, "r1")
	h.user("kb", "김보람", users.RoleCaregiver, "r2")
	h.pastWeeks()
	h.writeWeek("r1")
	h.raise("r2", "inactivity", "warning", "no activity for 12h36m0s", time.Now().Add(-40*time.Minute))
	base := h.listen()

	co := browser(t)
	do(t, co, "coordinator logs in", loginSteps(base, "co")...)
	do(t, co, "overview", chromedp.WaitVisible(`[data-testid="overview"]`), chromedp.WaitVisible(`[data-resident="r2"]`))
	shot(t, co, "overview-ko-1280")
	accessible(t, co, "overview")
	do(t, co, "resident page", chromedp.Navigate(base+"/residents/r1"), chromedp.WaitVisible(`[data-testid="chart-heart_rate"]`))
	shot(t, co, "resident-trends-ko-1280")
	accessible(t, co, "resident page")

	// The inbox, live, in two sessions: the coordinator and the caregiver.
	do(t, co, "inbox", chromedp.Navigate(base+"/alerts"), chromedp.WaitVisible(`.live.on`))
	cg := browser(t) // a second person: a browser of their own
	do(t, cg, "caregiver logs in", loginSteps(base, "cg")...)
	do(t, cg, "caregiver inbox", chromedp.Navigate(base+"/alerts"), chromedp.WaitVisible(`.live.on`))

	a := h.raise("r1", "sos", "critical", "SOS button pressed", time.Now())
	row := `tr[data-alert="` + a.ID + `"]`
	do(t, co, "the new alert arrives live", chromedp.WaitVisible(row+`[data-state="open"]`))
	do(t, cg, "the new alert arrives live for the caregiver", chromedp.WaitVisible(row+`[data-state="open"]`))
	shot(t, co, "inbox-ko-1280")
	accessible(t, co, "inbox")
	do(t, cg, "the caregiver acknowledges", chromedp.Click(row+` button[data-act="ack"]`), chromedp.WaitVisible(row+`[data-state="acknowledged"]`))
	do(t, co, "the coordinator sees it acknowledged", chromedp.WaitVisible(row+`[data-state="acknowledged"]`))

	do(t, co, "alert page", chromedp.Navigate(base+"/alerts/"+a.ID), chromedp.WaitVisible(`[data-testid="timeline"]`))
	shot(t, co, "alert-ko-1280")
	accessible(t, co, "alert page")

	// Response statistics and device health (staff pages), then at 320 px.
	for _, p := range []string{"stats", "devices"} {
		do(t, co, p, chromedp.Navigate(base+"/"+p), chromedp.WaitVisible(`main h1`))
		shot(t, co, p+"-ko-1280")
		accessible(t, co, p)
		do(t, co, "320 px /"+p, chromedp.EmulateViewport(320, 640), chromedp.Navigate(base+"/"+p), chromedp.WaitVisible(`main h1`))
		noHorizontalScroll(t, co, "/"+p)
		do(t, co, "1280 px again", chromedp.EmulateViewport(1280, 900))
	}

	// Reflow at 320 px: no horizontal scroll.
	for _, p := range []string{"/", "/alerts", "/residents/r1", "/alerts/" + a.ID} {
		do(t, cg, "320 px "+p, chromedp.EmulateViewport(320, 640), chromedp.Navigate(base+p), chromedp.WaitVisible(`main h1`))
		noHorizontalScroll(t, cg, p)
		if p == "/alerts" {
			shot(t, cg, "inbox-ko-320")
		}
		if p == "/residents/r1" {
			shot(t, cg, "resident-trends-ko-320")
		}
	}

	// English.
	do(t, co, "English overview", chromedp.Navigate(base+"/?lang=en"), chromedp.WaitVisible(`[data-testid="overview"]`))
	shot(t, co, "overview-en-1280")
	do(t, co, "English resident", chromedp.Navigate(base+"/residents/r1"), chromedp.WaitVisible(`[data-testid="chart-heart_rate"]`))
	shot(t, co, "resident-trends-en-1280")
	do(t, co, "English inbox", chromedp.Navigate(base+"/alerts"), chromedp.WaitVisible(row))
	shot(t, co, "inbox-en-1280")
	do(t, co, "English alert", chromedp.Navigate(base+"/alerts/"+a.ID), chromedp.WaitVisible(`[data-testid="timeline"]`))
	shot(t, co, "alert-en-1280")
}

// axeSHA256 is the checksum of web/testdata/axe-4.14.1.min.js (VENDOR.md).
const axeSHA256 = "29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c"

// accessible runs axe-core in the page and fails on serious or critical
// violations.
func accessible(t *testing.T, ctx context.Context, what string) {
	t.Helper()
	src, err := os.ReadFile("testdata/axe-4.14.1.min.js")
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(src); hex.EncodeToString(sum[:]) != axeSHA256 {
		t.Fatal("testdata/axe-4.14.1.min.js does not match its checksum in VENDOR.md")
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](string(src)+";0")); err != nil {
		t.Fatalf("load axe: %v", err)
	}
	out, err := chromedp.Run(ctx, chromedp.Evaluate[string](`axe.run(document, {resultTypes: ["violations"]}).then(r =>
		r.violations.filter(v => v.impact === "serious" || v.impact === "critical")
		 .map(v => v.impact + " " + v.id + ": " + v.nodes.slice(0, 3).map(n => n.target.join(" ")).join(" | ")).join("\n"))`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("axe.run: %v", err)
	}
	if out != "" {
		t.Errorf("%s: accessibility violations:\n%s", what, out)
	}
}
