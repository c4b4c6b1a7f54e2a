package web_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/carehub/carehub/internal/users"
	"github.com/carehub/carehub/web"
)

// TestPhonePages goes through the phone app (/m/) as a coordinator and a
// caregiver: the CSP on each page, the audit entries (the same as the
// console's twins: alerts.list, alert.read + readings.read), scoping (404
// for an alert the caregiver may not see), masked names, the login that
// comes back to the phone page, the manifest and the service worker.
func TestPhonePages(t *testing.T) {
	h := newHarness(t)
	h.resident("r1", "김영희")
	h.resident("r2", "박철수")
	h.user("co", "최코디", users.RoleCoordinator)
	h.user("cg", "정요양", users.RoleCaregiver, "r1")
	h.writeWeek("r1")
	a1 := h.raise("r1", "heart_rate", "critical", "heart_rate 135 /min for 5m0s (≥ 131)", time.Now().Add(-12*time.Minute))
	a2 := h.raise("r2", "heart_rate", "high", "heart_rate 135 /min for 5m0s (≥ 131)", time.Now().Add(-3*time.Minute))

	co := h.client()
	co.login("co")
	cg := h.client()
	cg.login("cg")
	pages := []struct {
		path    string
		actions []string
	}{
		{"/m/", []string{"alerts.list"}},
		{"/m/alerts/" + a1.ID, []string{"alert.read", "readings.read"}},
		{"/m/phone", nil},
	}
	for _, who := range []struct {
		name string
		c    *client
	}{{"coordinator", co}, {"caregiver", cg}} {
		for _, p := range pages {
			mark := h.audit.mark()
			resp, body := who.c.do("GET", p.path, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s GET %s: %d: %.400s", who.name, p.path, resp.StatusCode, body)
			}
			if got := resp.Header.Get("Content-Security-Policy"); got != web.CSP {
				t.Errorf("%s GET %s: CSP %q", who.name, p.path, got)
			}
			if resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("%s GET %s: Cache-Control %q", who.name, p.path, resp.Header.Get("Cache-Control"))
			}
			for _, want := range []string{`rel="manifest" href="/m/manifest.webmanifest`, "/static/phone.js?v="} {
				if !strings.Contains(body, want) {
					t.Errorf("%s GET %s lacks %q", who.name, p.path, want)
				}
			}
			var got []string
			for _, e := range h.audit.since(mark) {
				got = append(got, e.Action)
				if e.Actor != who.c.userID() {
					t.Errorf("%s GET %s: audit actor %q", who.name, p.path, e.Actor)
				}
			}
			if !slices.Equal(got, p.actions) {
				t.Errorf("%s GET %s: audit actions %v, want %v (the console's twins)", who.name, p.path, got, p.actions)
			}
		}
	}

	// Scoping: the caregiver sees r1's alert only.
	for _, path := range []string{"/m/alerts/" + a2.ID, "/m/alerts/no-such-alert"} {
		if resp, body := cg.do("GET", path, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("caregiver GET %s: %d, want 404: %.200s", path, resp.StatusCode, body)
		}
	}
	if resp, _ := co.do("GET", "/m/alerts/"+a2.ID, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("coordinator GET /m/alerts/%s: %d", a2.ID, resp.StatusCode)
	}
	_, list := cg.do("GET", "/m/", nil)
	if strings.Contains(list, a2.ID) || !strings.Contains(list, a1.ID) {
		t.Error("caregiver's phone list shows another resident's alert or misses their own")
	}
	// Masked names: the list never shows the full name; the alert page
	// shows the masked one, the full name only behind the reveal button.
	if strings.Contains(list, "김영희") || !strings.Contains(list, "김○희") {
		t.Error("phone list: the name is not masked")
	}
	_, ap := cg.do("GET", "/m/alerts/"+a1.ID, nil)
	for _, want := range []string{`<span class="name">김○희</span>`, `data-name="김영희"`, `aria-expanded="false"`, `data-testid="ack"`, `class="thumb"`,
		`value="false_alarm"`, "최근 측정값", "135", "h-r1"} {
		if !strings.Contains(ap, want) {
			t.Errorf("phone alert page lacks %q", want)
		}
	}
	// The coordinator's list: newest critical first (unacknowledged, then
	// severity, then newest).
	_, colist := co.do("GET", "/m/", nil)
	if i, j := strings.Index(colist, a1.ID), strings.Index(colist, a2.ID); i < 0 || j < 0 || i > j {
		t.Errorf("coordinator's list: the critical alert is not first (%d, %d)", i, j)
	}

	// Without a session the phone goes to the login and comes back.
	anon := h.client()
	resp, _ := anon.do("GET", "/m/alerts/"+a1.ID, nil)
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/login?next="+url.QueryEscape("/m/alerts/"+a1.ID) {
		t.Fatalf("phone page without a session: %d → %q", resp.StatusCode, loc)
	}
	_, lp := anon.do("GET", "/login?next="+url.QueryEscape("/m/alerts/"+a1.ID), nil)
	resp, _ = anon.do("POST", "/login", url.Values{"csrf": {csrf(t, lp)}, "user": {"cg"}, "password": {"pass-cg-long"}, "next": {"/m/alerts/" + a1.ID}})
	if loc := resp.Header.Get("Location"); loc != "/m/alerts/"+a1.ID {
		t.Errorf("login with next: → %q", loc)
	}
	evil := h.client()
	_, lp = evil.do("GET", "/login?next=https://evil.example/", nil)
	if strings.Contains(lp, "evil.example") {
		t.Error("the login form carries a foreign next page")
	}
	resp, _ = evil.do("POST", "/login", url.Values{"csrf": {csrf(t, lp)}, "user": {"cg"}, "password": {"pass-cg-long"}, "next": {"//evil.example/m/"}})
	if loc := resp.Header.Get("Location"); loc != "/" {
		t.Errorf("login with a foreign next: → %q, want /", loc)
	}

	// The manifest: installable, scoped to /m/, icons embedded.
	resp, mb := anon.do("GET", "/m/manifest.webmanifest?lang=en", nil)
	var m struct {
		Name, StartURL, Scope, Display string
		Icons                          []struct{ Src, Sizes, Type string }
	}
	if err := json.Unmarshal([]byte(mb), &m); err != nil || resp.Header.Get("Content-Type") != "application/manifest+json" {
		t.Fatalf("manifest: %v %q %s", err, resp.Header.Get("Content-Type"), mb)
	}
	_ = json.Unmarshal([]byte(strings.NewReplacer(`"start_url"`, `"StartURL"`).Replace(mb)), &m)
	if m.Scope != "/m/" || m.StartURL != "/m/" || m.Display != "standalone" || m.Name != "carehub care alerts" || len(m.Icons) < 2 {
		t.Errorf("manifest: %+v", m)
	}
	for _, ic := range m.Icons {
		if r, _ := anon.do("GET", ic.Src, nil); r.StatusCode != http.StatusOK || r.Header.Get("Content-Type") != ic.Type {
			t.Errorf("icon %s: %d %q", ic.Src, r.StatusCode, r.Header.Get("Content-Type"))
		}
	}

	// The service worker: JavaScript, revalidated, scope /m/ by its own
	// path, the catalogue's texts in place of the marker.
	resp, sw := anon.do("GET", "/m/sw.js", nil)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("sw.js: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"))
	}
	if strings.Contains(sw, "/*SW_TEXTS*/") || !strings.Contains(sw, `"ack":"확인"`) || !strings.Contains(sw, `"ack":"Acknowledge"`) {
		t.Errorf("sw.js texts not in place: %.300s", sw[strings.Index(sw, "TEXTS"):])
	}
}
