package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/serviceworker"
	"github.com/chromedp/chromedp"

	"github.com/carehub/carehub/api"
	"github.com/carehub/carehub/internal/notify"
	"github.com/carehub/carehub/internal/testenv"
	"github.com/carehub/carehub/internal/users"
	"github.com/carehub/carehub/internal/webpush"
	"github.com/carehub/carehub/internal/webpush/webpushtest"
)

// pushStub replaces PushManager's subscribe and getSubscription in the
// page: the real ones register with Google's push service, which a test
// without internet cannot reach (console.md §3.5). The stub hands out the
// fake push service's subscriber, as a browser would after subscribing.
func pushStub(sub *webpushtest.Subscriber) string {
	j, _ := json.Marshal(map[string]any{"endpoint": sub.Endpoint, "expirationTime": nil,
		"keys": map[string]string{"p256dh": sub.P256DH(), "auth": sub.AuthSecret()}})
	return `(function () {
  if (!window.PushManager) { return; }
  var json = ` + string(j) + `;
  var sub = { endpoint: json.endpoint, expirationTime: null, options: { userVisibleOnly: true, applicationServerKey: null },
    toJSON: function () { return json; },
    unsubscribe: function () { localStorage.removeItem("stub-sub"); return Promise.resolve(true); } };
  PushManager.prototype.subscribe = function () { localStorage.setItem("stub-sub", "1"); return Promise.resolve(sub); };
  PushManager.prototype.getSubscription = function () { return Promise.resolve(localStorage.getItem("stub-sub") ? sub : null); };
})();`
}

// tapTargets lists the visible controls smaller than 44×44 CSS px (a radio
// button counts by its label, which is what the thumb hits).
const tapTargets = `JSON.stringify([...document.querySelectorAll('button, a, [role=button], input, select, summary')].map(e => {
  let t = e;
  if (e.matches('input[type=radio], input[type=checkbox]') && e.closest('label')) { t = e.closest('label'); }
  const r = t.getBoundingClientRect();
  return {what: e.outerHTML.slice(0, 80), w: Math.round(r.width), h: Math.round(r.height)};
}).filter(x => x.w > 0 && x.h > 0 && (x.w < 44 || x.h < 44)))`

// TestBrowserPhone drives the phone app in chromium at 390 px: the login
// comes back to /m/, the service worker registers with scope /m/, "this
// phone" subscribes (PushManager stubbed), an alert is pushed through the
// real Web Push channel to the fake push service, whose decrypted payload
// is delivered to the real service worker (CDP
// ServiceWorker.deliverPushMessage); the notification carries the alert's
// tag, the masked name and the acknowledge and open actions; the
// acknowledgement is replayed as the service worker sends it (the
// headless browser cannot click a notification) and shows on the phone
// page and in an open console inbox. Accessibility, tap targets ≥ 44 px,
// no horizontal scroll; screenshots in Korean and English. Logging out on
// the phone unsubscribes it.
func TestBrowserPhone(t *testing.T) {
	h := newPushHarness(t)
	h.careHomes()
	h.user("co", "최코디", users.RoleCoordinator)
	h.user("cg", "정요양", users.RoleCaregiver, "r1")
	h.writeWeek("r1")
	h.raise("r1", "inactivity", "warning", "no activity for 12h36m0s", time.Now().Add(-40*time.Minute))
	base := h.listen()
	phone := h.fake.NewSubscriber()

	ph := browser(t)
	if _, err := chromedp.CallBrowser(ph, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
		Permission: &cdpbrowser.PermissionDescriptor{Name: "notifications"}, Setting: cdpbrowser.PermissionSettingGranted, Origin: base}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ph, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: pushStub(phone)}); err != nil {
		t.Fatal(err)
	}
	do(t, ph, "390 px", chromedp.EmulateViewport(390, 844))
	do(t, ph, "the phone logs in and comes back to /m/",
		chromedp.Navigate(base+"/m/"), chromedp.WaitVisible("#user"),
		chromedp.SendKeys("#user", "cg"), chromedp.SendKeys("#password", "pass-cg-long"),
		chromedp.Click(`button[type="submit"]`), chromedp.WaitVisible(`[data-testid="phone-alerts"]`))
	do(t, ph, "the service worker registers", chromedp.WaitVisible(`body[data-sw="registered"]`))
	scope, err := chromedp.Run(ph, chromedp.Evaluate[string](`navigator.serviceWorker.ready.then(r => r.scope)`, chromedp.EvalAwaitPromise))
	if err != nil || scope != base+"/m/" {
		t.Fatalf("service worker scope %q (%v), want %s/m/", scope, err, base)
	}

	// This phone: not receiving yet; the button subscribes.
	do(t, ph, "this phone: not subscribed", chromedp.Navigate(base+"/m/phone"), chromedp.WaitVisible(`[data-testid="device"][data-state="no"]`))
	phoneShot(t, ph, "phone-device-ko-390")
	do(t, ph, "subscribe", chromedp.Click(`[data-testid="subscribe"]`), chromedp.WaitVisible(`[data-testid="device"][data-state="ok"]`))
	phoneShot(t, ph, "phone-device-ok-ko-390")
	subs, err := h.push.Phones(context.Background(), "cg")
	if err != nil || len(subs) != 1 || subs[0].Endpoint != phone.Endpoint {
		t.Fatalf("the phone's subscription: %+v %v", subs, err)
	}

	// A console inbox, open in another browser.
	co := browser(t)
	do(t, co, "coordinator logs in", loginSteps(base, "co")...)
	do(t, co, "inbox", chromedp.Navigate(base+"/alerts"), chromedp.WaitVisible(`.live.on`))

	// An SOS: the Web Push channel encrypts it for the phone; the fake push
	// service decrypts it.
	a := h.raise("r1", "sos", "critical", "SOS button pressed", time.Now())
	pc := &notify.PushChannel{Store: h.push.Store, Sender: &webpush.Sender{VAPID: h.push.VAPID}, Tokens: h.push.Tokens}
	if err := pc.Send(context.Background(), notify.Notification{AlertID: a.ID, Seq: a.Seq, MsgID: fmt.Sprintf("%s:raised:%d", a.ID, a.Seq),
		Transition: "raised", Severity: a.Severity, Rule: a.Rule, ResidentID: "r1", ResidentMasked: notify.MaskName("김영희"), UserID: "cg",
		RaisedAt: a.RaisedAt, URL: base + "/m/alerts/" + a.ID, AckURL: base + notify.AckPath(a.ID)}); err != nil {
		t.Fatal(err)
	}
	got := h.fake.ReceivedBy(phone)
	if len(got) != 1 {
		t.Fatalf("the fake push service got %d pushes for the phone", len(got))
	}
	var pl notify.Payload
	if err := json.Unmarshal(got[0].Payload, &pl); err != nil || pl.ActionToken == "" || pl.Tag != a.ID {
		t.Fatalf("payload %s: %v", got[0].Payload, err)
	}

	// The phone's list shows it, newest critical first.
	do(t, ph, "the phone's list", chromedp.Navigate(base+"/m/"), chromedp.WaitVisible(`[data-alert="`+a.ID+`"][data-state="open"]`))
	first, err := chromedp.Run(ph, chromedp.Evaluate[string](`document.querySelector('.mlist li').dataset.alert`))
	if err != nil || first != a.ID {
		t.Errorf("the first alert on the phone is %q, want the new critical %s", first, a.ID)
	}
	phoneShot(t, ph, "phone-alerts-ko-390")

	// The push to the real service worker.
	regs := chromedp.Events(ph, serviceworker.WorkerRegistrationUpdated)
	if _, err := chromedp.Call(ph, serviceworker.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	var regID serviceworker.RegistrationID
	regCtx, cancelRegs := context.WithTimeout(ph, 20*time.Second)
	for ev, err := range regs {
		if err != nil {
			t.Fatalf("service worker registrations: %v", err)
		}
		for _, r := range ev.Registrations {
			if r.ScopeURL == base+"/m/" && !r.IsDeleted {
				regID = r.RegistrationID
			}
		}
		if regID != "" || regCtx.Err() != nil {
			break
		}
	}
	cancelRegs()
	if regID == "" {
		t.Fatal("no service worker registration for /m/")
	}
	if _, err := chromedp.Call(ph, serviceworker.DeliverPushMessage, serviceworker.DeliverPushMessageParams{Origin: base, RegistrationID: regID, Data: string(got[0].Payload)}); err != nil {
		t.Fatal(err)
	}
	var shown []struct {
		Title, Tag, Body string
		Actions          []string
	}
	// Generous: the push starts the idle worker, which under the full race
	// run on 2 cores has taken more than 15 s.
	testenv.WaitFor(t, 45*time.Second, "the notification shown", func() bool {
		s, err := chromedp.Run(ph, chromedp.Evaluate[string](`navigator.serviceWorker.ready.then(r => r.getNotifications({tag: `+jsString(a.ID)+`}))
		  .then(ns => JSON.stringify(ns.map(n => ({title: n.title, tag: n.tag, body: n.body, actions: (n.actions || []).map(x => x.action)}))))`, chromedp.EvalAwaitPromise))
		return err == nil && json.Unmarshal([]byte(s), &shown) == nil && len(shown) > 0
	})
	n := shown[0]
	if n.Tag != a.ID || strings.Join(n.Actions, ",") != "ack,open" || !strings.Contains(n.Body, "김○희") || strings.Contains(n.Title+n.Body, "김영희") {
		t.Errorf("notification %+v: want tag %s, actions ack,open, the masked name only", n, a.ID)
	}

	// The worker reported the push shown (its receipt, with the push's token).
	testenv.WaitFor(t, 10*time.Second, "the shown receipt", func() bool {
		rs, err := h.push.Receipts(context.Background(), a.ID)
		return err == nil && len(rs) == 1 && rs[0].ShownAt != nil
	})

	// The alert page before the acknowledgement: masked, tap to reveal.
	do(t, ph, "the phone's alert page", chromedp.Navigate(base+"/m/alerts/"+a.ID), chromedp.WaitVisible(`[data-testid="phone-alert"][data-state="open"]`),
		chromedp.WaitVisible(`body[data-live="1"]`))
	phoneShot(t, ph, "phone-alert-ko-390")
	do(t, ph, "scroll to the end", scroll("document.body.scrollHeight"))
	phoneShot(t, ph, "phone-alert-resolve-ko-390")
	do(t, ph, "scroll back", scroll("0"))
	accessible(t, ph, "phone alert page")
	checkTaps(t, ph, "phone alert page")
	noHorizontalScroll(t, ph, "/m/alerts/"+a.ID)
	do(t, ph, "tap to reveal", chromedp.Click(`[data-testid="reveal"]`), chromedp.WaitVisible(`[data-testid="reveal"][aria-expanded="true"]`))
	name, err := chromedp.Run(ph, chromedp.Evaluate[string](`document.querySelector('[data-testid="reveal"] .name').textContent`))
	if err != nil || name != "김영희" {
		t.Errorf("revealed name %q (%v)", name, err)
	}

	// The notification's acknowledge action, replayed as the service
	// worker sends it: the payload's ack URL, the token header, no cookie.
	req, _ := http.NewRequest("POST", pl.AckURL, strings.NewReader("{}"))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(api.ActionTokenHeader, pl.ActionToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the notification's acknowledge: %d", resp.StatusCode)
	}
	do(t, ph, "the phone shows it acknowledged", chromedp.WaitVisible(`[data-testid="phone-alert"][data-state="acknowledged"]`), chromedp.WaitVisible(`[data-testid="acked-by"]`))
	if rs, err := h.push.Receipts(context.Background(), a.ID); err != nil || len(rs) != 1 || rs[0].AckedAt == nil {
		t.Errorf("receipts after the acknowledge action: %+v %v", rs, err)
	}
	do(t, co, "the console inbox shows it acknowledged", chromedp.WaitVisible(`tr[data-alert="`+a.ID+`"][data-state="acknowledged"]`))
	phoneShot(t, ph, "phone-alert-acked-ko-390")

	// Resolve with an outcome, on the phone.
	do(t, ph, "resolve as visited", chromedp.Click(`input[value="visited"]`), chromedp.Click(`.mresolve button[type="submit"]`),
		chromedp.WaitVisible(`[data-testid="phone-alert"][data-state="resolved"]`))

	// /m/ and "this phone": accessibility and tap targets at 390 px.
	for _, p := range []string{"/m/", "/m/phone"} {
		do(t, ph, p, chromedp.Navigate(base+p), chromedp.WaitVisible(`main h1`))
		accessible(t, ph, p)
		checkTaps(t, ph, p)
		noHorizontalScroll(t, ph, p)
	}

	// English.
	b := h.raise("r1", "night_exit", "high", "door opened at night, no motion inside since", time.Now().Add(-4*time.Minute))
	do(t, ph, "English list", chromedp.Navigate(base+"/m/?lang=en"), chromedp.WaitVisible(`[data-alert="`+b.ID+`"]`))
	phoneShot(t, ph, "phone-alerts-en-390")
	do(t, ph, "English alert", chromedp.Navigate(base+"/m/alerts/"+b.ID), chromedp.WaitVisible(`[data-testid="phone-alert"]`))
	phoneShot(t, ph, "phone-alert-en-390")
	do(t, ph, "English phone", chromedp.Navigate(base+"/m/phone"), chromedp.WaitVisible(`[data-testid="device"][data-state="ok"]`))
	phoneShot(t, ph, "phone-device-en-390")

	// Someone else resolved it while this phone was answering: the page's
	// own words for it (data-failed409), not the API's English (the focused field holds
	// the page still, as a person typing would).
	do(t, ph, "Korean alert", chromedp.Navigate(base+"/m/alerts/"+b.ID+"?lang=ko"), chromedp.WaitVisible(`.mresolve`))
	// (By script: a click at the radio's place can land on the acknowledge
	// bar fixed to the bottom of the screen.)
	if _, err := chromedp.Run(ph, chromedp.Evaluate[bool](`(function () {
		document.querySelector('input[value="ok_by_phone"]').checked = true;
		document.getElementById("rnote").focus();
		return true;
	})()`)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.mgr.Resolve(context.Background(), b.ID, "co", "visited", ""); err != nil {
		t.Fatal(err)
	}
	// Sent with the note still focused, so that the page, which does not
	// re-read itself under a person's typing, keeps its status line.
	if _, err := chromedp.Run(ph, chromedp.Evaluate[bool](`document.querySelector(".mresolve form").requestSubmit(), true`)); err != nil {
		t.Fatal(err)
	}
	var refused string
	testenv.WaitFor(t, 10*time.Second, "the refusal on the phone", func() bool {
		got, err := chromedp.Run(ph, chromedp.Evaluate[string](`document.querySelector(".status").textContent`))
		refused = got
		return err == nil && got != ""
	})
	if want := "다른 사람이 먼저 처리했거나"; !strings.Contains(refused, want) || strings.Contains(refused, "already") {
		t.Errorf("phone status %q, want the page's words for a conflict (%q)", refused, want)
	}
	phoneShot(t, ph, "phone-conflict-ko-390")
	do(t, ph, "this phone again", chromedp.Navigate(base+"/m/phone"), chromedp.WaitVisible(`[data-testid="device"][data-state="ok"]`))

	// Logging out on this phone ends its alerts: the subscription is gone
	// on the server and in the browser, and the session is over.
	do(t, ph, "log out on the phone", chromedp.Click(`[data-testid="logout"] button`), chromedp.WaitVisible("#user"))
	if subs, err := h.push.Phones(context.Background(), "cg"); err != nil || len(subs) != 0 {
		t.Errorf("after logout the server still has %d phones for cg (%v)", len(subs), err)
	}
	if left, err := chromedp.Run(ph, chromedp.Evaluate[string](`localStorage.getItem("stub-sub") || ""`)); err != nil || left != "" {
		t.Errorf("after logout the browser still holds its push subscription (%q, %v)", left, err)
	}
	do(t, ph, "the phone pages want a login again", chromedp.Navigate(base+"/m/"), chromedp.WaitVisible("#user"))
}

// phoneShot writes what the phone's screen shows (the viewport, not the
// full page: the acknowledge button is fixed to the bottom of the screen,
// and a full-page capture would draw it in the middle of the page).
func phoneShot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("CAREHUB_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644); err != nil {
		t.Fatal(err)
	}
}

func scroll(y string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[any](`window.scrollTo(0, `+y+`); 0`)(ctx, t)
		return err
	})
}

func jsString(s string) string { b, _ := json.Marshal(s); return string(b) }

// checkTaps fails for a control smaller than 44×44 CSS px.
func checkTaps(t *testing.T, ctx context.Context, what string) {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](tapTargets))
	if err != nil {
		t.Fatal(err)
	}
	if s != "[]" {
		t.Errorf("%s: tap targets under 44 px: %s", what, s)
	}
}
