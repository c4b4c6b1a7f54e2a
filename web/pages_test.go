package web_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/carehub/carehub/internal/users"
	"github.com/carehub/carehub/web"
)

// TestPages goes through every page as a coordinator and a caregiver: the
// CSP on each, the audit entries each view records (the actions of its API
// twins, once each), scoping (404 for a resident or alert the caregiver
// may not see, the same as the API), and the overview's content.
func TestPages(t *testing.T) {
	h := newHarness(t)
	h.resident("r1", "김영희")
	h.resident("r2", "박철수")
	h.resident("r3", "이순자")
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
		{"/", []string{"overview.read"}},
		{"/residents/r1", []string{"resident.read", "devices.read", "readings.read"}},
		{"/residents/r1?range=day", []string{"resident.read", "devices.read", "readings.read"}},
		{"/alerts", []string{"alerts.list"}},
		{"/alerts/rows", []string{"alerts.list"}},
		{"/alerts/" + a1.ID, []string{"alert.read", "readings.read"}},
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
			if got := resp.Header.Get("Content-Security-Policy"); got != web.CSP || !strings.Contains(got, "script-src 'self'") {
				t.Errorf("%s GET %s: CSP %q", who.name, p.path, got)
			}
			var got []string
			for _, e := range h.audit.since(mark) {
				got = append(got, e.Action)
				if e.Actor != who.c.userID() {
					t.Errorf("%s GET %s: audit actor %q", who.name, p.path, e.Actor)
				}
			}
			if !slices.Equal(got, p.actions) {
				t.Errorf("%s GET %s: audit actions %v, want %v (its API twins)", who.name, p.path, got, p.actions)
			}
		}
	}

	// Scoping: the caregiver sees r1 only; others are 404, like the API.
	for _, path := range []string{"/residents/r2", "/residents/r3", "/residents/nobody", "/alerts/" + a2.ID, "/alerts/no-such-alert"} {
		if resp, body := cg.do("GET", path, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("caregiver GET %s: %d, want 404: %.200s", path, resp.StatusCode, body)
		}
		if strings.HasPrefix(path, "/residents/r") {
			if resp, _ := co.do("GET", path, nil); resp.StatusCode != http.StatusOK {
				t.Errorf("coordinator GET %s: %d, want 200", path, resp.StatusCode)
			}
		}
	}
	_, inbox := cg.do("GET", "/alerts", nil)
	if strings.Contains(inbox, a2.ID) || !strings.Contains(inbox, a1.ID) {
		t.Errorf("caregiver inbox shows %v other residents' alerts or misses their own", a2.ID)
	}
	_, ov := cg.do("GET", "/", nil)
	if strings.Contains(ov, "박철수") || !strings.Contains(ov, "김영희") {
		t.Error("caregiver overview shows a resident not assigned to them, or misses theirs")
	}

	// The overview as a coordinator: r1 (critical alert, data arriving),
	// r2 (alert, no data) and r3 (no data) — missing data marked as such.
	_, ov = co.do("GET", "/", nil)
	for _, want := range []string{`data-resident="r1"`, `data-resident="r2"`, `data-resident="r3"`, `data-testid="missing"`, "위급", "▲▲▲", "데이터 없음", `class="spark"`, "<path class=\"line\""} {
		if !strings.Contains(ov, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
	if i, j := strings.Index(ov, `data-resident="r1"`), strings.Index(ov, `data-resident="r3"`); i > j {
		t.Error("overview: the critical alert's resident is not first")
	}
	if strings.Count(ov, `data-testid="missing"`) != 2 {
		t.Errorf("overview: %d rows marked missing data, want 2 (r2, r3)", strings.Count(ov, `data-testid="missing"`))
	}

	// The resident page: a chart with NEWS2 bands, the normal band, a gap,
	// and a sentence and a table for screen readers.
	_, rp := co.do("GET", "/residents/r1", nil)
	for _, want := range []string{`data-testid="chart-heart_rate"`, `class="news2 news2-`, `class="normal"`, "<details>", "표로 보기", "빈 구간"} {
		if !strings.Contains(rp, want) {
			t.Errorf("resident page lacks %q", want)
		}
	}
	hr := rp[strings.Index(rp, `data-testid="chart-heart_rate"`):]
	hr = hr[:strings.Index(hr, "</svg>")]
	if n := strings.Count(hr, "M"); n < 2 {
		t.Errorf("heart-rate chart has %d line segments, want ≥ 2 (the 10-hour hole is a gap)", n)
	}

	// The inbox counts an unacknowledged critical up.
	if !strings.Contains(inbox, "분째 미확인") {
		t.Error("inbox does not count the unacknowledged alert up")
	}

	// English on request.
	_, en := co.do("GET", "/alerts?lang=en", nil)
	if !strings.Contains(en, `lang="en"`) || !strings.Contains(en, "Critical") || !strings.Contains(en, "unacknowledged for") {
		t.Errorf("English inbox: %.300s", en)
	}
}

func (c *client) userID() string {
	_, body := c.do("GET", "/api/v1/auth/me", nil)
	i := strings.Index(body, `"id":"`)
	if i < 0 {
		return ""
	}
	rest := body[i+6:]
	return rest[:strings.Index(rest, `"`)]
}

// TestSessionAndCSRF: pages need a session; every POST without its CSRF
// token is refused (login, logout, and the API through the cookie); the
// API's actions work through the cookie with the token.
func TestSessionAndCSRF(t *testing.T) {
	h := newHarness(t)
	h.resident("r1", "김영희")
	h.user("cg", "정요양", users.RoleCaregiver, "r1")
	a := h.raise("r1", "heart_rate", "critical", "heart_rate 135 /min for 5m0s (≥ 131)", time.Now())

	anon := h.client()
	if resp, _ := anon.do("GET", "/", nil); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Fatalf("GET / without a session: %d → %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, page := anon.do("GET", "/login", nil)
	if resp, _ := anon.do("POST", "/login", url.Values{"user": {"cg"}, "password": {"pass-cg-long"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("login without CSRF token: %d, want 403", resp.StatusCode)
	}
	if resp, _ := anon.do("POST", "/login", url.Values{"csrf": {"forged"}, "user": {"cg"}, "password": {"pass-cg-long"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("login with a wrong CSRF token: %d, want 403", resp.StatusCode)
	}
	tok := csrf(t, page)
	if resp, _ := anon.do("POST", "/login", url.Values{"csrf": {tok}, "user": {"cg"}, "password": {"pass-cg-long"}}, "Origin", "https://evil.example"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("login from another origin: %d, want 403", resp.StatusCode)
	}
	if resp, body := anon.do("POST", "/login", url.Values{"csrf": {tok}, "user": {"cg"}, "password": {"wrong-password"}}); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "맞지 않습니다") {
		t.Errorf("wrong password: %d", resp.StatusCode)
	}
	cg := h.client()
	cg.login("cg")
	set := ""
	{
		_, p := cg.do("GET", "/login", nil) // a fresh login cookie is harmless once signed in
		_ = p
	}
	_, home := cg.do("GET", "/", nil)
	sessionCSRF := csrf(t, home)
	if resp, _ := cg.do("GET", "/static/app.css", nil); resp.Header.Get("Cache-Control") != "no-cache" {
		t.Errorf("unversioned asset: Cache-Control %q", resp.Header.Get("Cache-Control"))
	}
	i := strings.Index(home, "/static/app.css?v=")
	set = home[i : i+len("/static/app.css?v=")+12]
	if resp, _ := cg.do("GET", set, nil); !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") || resp.Header.Get("ETag") == "" {
		t.Errorf("versioned asset %s: Cache-Control %q ETag %q", set, resp.Header.Get("Cache-Control"), resp.Header.Get("ETag"))
	}

	// The API through the session cookie: reads work, changes need the token.
	if resp, body := cg.do("GET", "/api/v1/alerts/"+a.ID, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("API read with the session cookie: %d %s", resp.StatusCode, body)
	}
	if resp, _ := cg.do("POST", "/api/v1/alerts/"+a.ID+"/ack", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("API ack through the cookie without CSRF token: %d, want 401", resp.StatusCode)
	}
	if resp, _ := cg.do("POST", "/api/v1/alerts/"+a.ID+"/ack", nil, web.CSRFHeader, sessionCSRF, "Sec-Fetch-Site", "cross-site"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("API ack from another site: %d, want 401", resp.StatusCode)
	}
	if resp, body := cg.do("POST", "/api/v1/alerts/"+a.ID+"/ack", nil, web.CSRFHeader, sessionCSRF, "Sec-Fetch-Site", "same-origin"); resp.StatusCode != http.StatusOK {
		t.Errorf("API ack with the CSRF token: %d %s", resp.StatusCode, body)
	}

	// Logout needs the token too, and then the session is gone.
	if resp, _ := cg.do("POST", "/logout", url.Values{}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("logout without CSRF token: %d, want 403", resp.StatusCode)
	}
	old := cg.cookies["carehub_session"]
	if resp, _ := cg.do("POST", "/logout", url.Values{"csrf": {sessionCSRF}}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("logout: %d", resp.StatusCode)
	}
	replay := h.client()
	replay.cookies["carehub_session"] = old
	if resp, _ := replay.do("GET", "/", nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the logged-out session still works: %d", resp.StatusCode)
	}
}

// TestLoginLimits: the console's login form is the API's login, with its
// limit on failed attempts: guessing through the form ends in 429 too.
func TestLoginLimits(t *testing.T) {
	h := newHarness(t)
	h.user("cg", "정요양", users.RoleCaregiver)
	c := h.client()
	deadline := time.Now().Add(time.Minute)
	for n := 1; ; n++ {
		_, page := c.do("GET", "/login", nil)
		resp, _ := c.do("POST", "/login", url.Values{"csrf": {csrf(t, page)}, "user": {"cg"}, "password": {"guess-" + strings.Repeat("x", n)}})
		if resp.StatusCode == http.StatusTooManyRequests {
			break
		}
		if resp.StatusCode != http.StatusUnauthorized || n > 50 || time.Now().After(deadline) {
			t.Fatalf("failed login %d: %d, want 401 then 429", n, resp.StatusCode)
		}
	}
}
