package web_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/carehub/carehub/internal/audit"
	"github.com/carehub/carehub/internal/testenv"
	"github.com/carehub/carehub/internal/users"
	"github.com/carehub/carehub/web"
)

// TestAdminPages goes through the management pages (web/admin) as an
// admin, a coordinator and a caregiver: who gets each page and who gets
// 404, the CSP on every answer, and the audit entries each view records
// (its API twins': settings.read, escalation.read, audit.read,
// residents.list for the page that names every resident; none for the
// user list, as GET /api/v1/users records none).
func TestAdminPages(t *testing.T) {
	h := newHarness(t)
	h.resident("r1", "김영희")
	h.resident("r2", "박철수")
	h.user("ad", "한관리", users.RoleAdmin)
	h.user("co", "최코디", users.RoleCoordinator)
	h.user("cg", "정요양", users.RoleCaregiver, "r1")
	ad, co, cg := h.client(), h.client(), h.client()
	ad.login("ad")
	co.login("co")
	cg.login("cg")
	who := map[string]*client{"admin": ad, "coordinator": co, "caregiver": cg}

	pages := []struct {
		path    string
		allowed []string // roles that get the page; the others get 404
		actions []string // what a view records
	}{
		{"/users", []string{"admin"}, nil},
		{"/assignments", []string{"admin", "coordinator"}, []string{"residents.list"}},
		{"/residents/r1/settings", []string{"admin", "coordinator"}, []string{"settings.read"}},
		{"/residents/r1/escalation", []string{"admin", "coordinator"}, []string{"escalation.read"}},
		{"/audit", []string{"admin"}, []string{"audit.read"}},
		{"/residents/nobody/settings", nil, nil},
		{"/residents/nobody/escalation", nil, nil},
	}
	for _, p := range pages {
		for _, role := range []string{"admin", "coordinator", "caregiver"} {
			c := who[role]
			mark := h.audit.mark()
			resp, body := c.do("GET", p.path, nil)
			want, actions := http.StatusNotFound, []string(nil)
			if slices.Contains(p.allowed, role) {
				want, actions = http.StatusOK, p.actions
			}
			if resp.StatusCode != want {
				t.Errorf("%s GET %s: %d, want %d: %.300s", role, p.path, resp.StatusCode, want, body)
			}
			if got := resp.Header.Get("Content-Security-Policy"); got != web.CSP {
				t.Errorf("%s GET %s: CSP %q", role, p.path, got)
			}
			var got []string
			for _, e := range h.audit.since(mark) {
				got = append(got, e.Action)
			}
			if !slices.Equal(got, actions) {
				t.Errorf("%s GET %s: audit actions %v, want %v", role, p.path, got, actions)
			}
		}
	}

	// Nav links only for the roles that may use them.
	_, adHome := ad.do("GET", "/", nil)
	_, coHome := co.do("GET", "/", nil)
	_, cgHome := cg.do("GET", "/", nil)
	for _, l := range []string{`href="/users"`, `href="/audit"`, `href="/assignments"`} {
		if !strings.Contains(adHome, l) {
			t.Errorf("admin's nav lacks %s", l)
		}
		if strings.Contains(cgHome, l) {
			t.Errorf("caregiver's nav has %s", l)
		}
	}
	if !strings.Contains(coHome, `href="/assignments"`) || strings.Contains(coHome, `href="/users"`) || strings.Contains(coHome, `href="/audit"`) {
		t.Error("coordinator's nav: assignments only of the management pages")
	}

	// Users: everyone, one's own row without actions, forms for the others.
	_, up := ad.do("GET", "/users", nil)
	for _, want := range []string{`data-user="ad"`, `data-user="co"`, `data-user="cg"`, `data-path="/api/v1/users"`,
		`data-path="/api/v1/users/cg/disable"`, `data-path="/api/v1/users/cg/role" data-method="PUT"`, `data-path="/api/v1/users/cg/password"`,
		`data-path="/api/v1/users/cg/revoke-tokens"`, "본인 계정"} {
		if !strings.Contains(up, want) {
			t.Errorf("users page lacks %s", want)
		}
	}
	if strings.Contains(up, `/api/v1/users/ad/disable`) {
		t.Error("users page offers the admin to disable their own account")
	}

	// Assignments: the caregiver with their resident, a form per caregiver.
	_, ap := co.do("GET", "/assignments", nil)
	sec := ap[strings.Index(ap, `data-user="cg"`):]
	if !strings.Contains(sec, "김영희") || !strings.Contains(sec, `value="r1" checked`) || strings.Contains(sec, `value="r2" checked`) ||
		!strings.Contains(sec, `data-path="/api/v1/users/cg/residents" data-method="PUT"`) {
		t.Errorf("assignments page: cg's section %.600s", sec)
	}

	// Settings: the page's If-Match is the API's ETag, so a save from the
	// page fails with 412 when someone changed the settings meanwhile.
	_, sp := co.do("GET", "/residents/r1/settings", nil)
	resp, _ := co.do("GET", "/api/v1/residents/r1/settings", nil)
	etag := resp.Header.Get("ETag")
	if etag == "" || !strings.Contains(sp, `data-if-match="`+strings.ReplaceAll(etag, `"`, "&#34;")+`"`) {
		t.Errorf("settings page: If-Match is not the API's ETag %s", etag)
	}
	if !strings.Contains(sp, `data-rule="heart_rate"`) || !strings.Contains(sp, "심박") || !strings.Contains(sp, `name="limits.heart_rate.bands.0.value"`) {
		t.Error("settings page lacks the rule table or the form")
	}

	// Chain: the default chain, tier by tier.
	_, ep := co.do("GET", "/residents/r1/escalation", nil)
	for _, want := range []string{`data-role="caregiver"`, `data-role="emergency"`, "보호자", `name="tiers.1.role" data-drop`, `name="tiers.7.role" value="emergency" checked`} {
		if !strings.Contains(ep, want) {
			t.Errorf("chain page lacks %s", want)
		}
	}

	// Changes through the cookie need the CSRF token (the pages' forms send it).
	tok := csrf(t, ap)
	body := `{"resident_ids":["r1","r2"]}`
	if resp, _ := co.doJSON("PUT", "/api/v1/users/cg/residents", body); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("assignment through the cookie without CSRF token: %d, want 401", resp.StatusCode)
	}
	if resp, b := co.doJSON("PUT", "/api/v1/users/cg/residents", body, web.CSRFHeader, tok, "Sec-Fetch-Site", "same-origin"); resp.StatusCode != http.StatusOK {
		t.Errorf("assignment with the CSRF token: %d %s", resp.StatusCode, b)
	}
	if u, _ := h.users.Get(context.Background(), "cg"); !slices.Equal(u.ResidentIDs, []string{"r1", "r2"}) {
		t.Errorf("cg's residents after the assignment: %v", u.ResidentIDs)
	}
}

// doJSON sends a JSON body, as the console's fetch calls do.
func (c *client) doJSON(method, path, body string, hdr ...string) (*http.Response, string) {
	c.h.t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range c.cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.h.srv.App().Test(req, 20000)
	if err != nil {
		c.h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var (
	auditEntryRow = regexp.MustCompile(`data-testid="entry" data-action="([^"]+)"`)
	nextLink      = regexp.MustCompile(`href="(/audit\?[^"]*)" data-testid="next"`)
)

// TestAuditPage: the audit page filters by resident and time, pages
// through a long trail without repeating or skipping an entry, and
// answers a filter that does not parse with 400 naming the field.
func TestAuditPage(t *testing.T) {
	h := newHarness(t)
	h.resident("r1", "김영희")
	h.resident("r2", "박철수")
	h.user("ad", "한관리", users.RoleAdmin)
	ad := h.client()
	ad.login("ad")
	ctx := context.Background()
	start := time.Now().UTC().Add(-10 * time.Minute)
	const n = 105 // more than a page (100)
	for i := range n {
		if err := h.audit.Record(ctx, audit.Entry{At: start.Add(time.Duration(i) * time.Millisecond), Actor: "x", Action: fmt.Sprintf("test.e%03d", i), ResidentID: "r2", Outcome: audit.OutcomeOK}); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.audit.Record(ctx, audit.Entry{At: start, Actor: "x", Action: "test.other", ResidentID: "r1", Outcome: audit.OutcomeOK}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	path := "/audit?resident_id=r2"
	pages := 0
	for path != "" {
		pages++
		if pages > 3 {
			t.Fatal("the audit page never ends")
		}
		resp, body := ad.do("GET", path, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %.300s", path, resp.StatusCode, body)
		}
		for _, m := range auditEntryRow.FindAllStringSubmatch(body, -1) {
			seen[m[1]]++
		}
		path = ""
		if m := nextLink.FindStringSubmatch(body); m != nil {
			path = strings.ReplaceAll(m[1], "&amp;", "&")
		}
	}
	if pages != 2 {
		t.Errorf("%d pages, want 2", pages)
	}
	for i := range n {
		if k := fmt.Sprintf("test.e%03d", i); seen[k] != 1 {
			t.Errorf("%s shown %d times, want once", k, seen[k])
		}
	}
	if seen["test.other"] != 0 {
		t.Error("the resident filter shows another resident's entry")
	}
	if seen["audit.read"] == 0 {
		t.Error("the trail does not show its own reading (audit.read)")
	}

	// A time window before the entries: none of them.
	from := start.Add(-2 * time.Hour).In(h.seoul).Format("2006-01-02T15:04")
	to := start.Add(-time.Hour).In(h.seoul).Format("2006-01-02T15:04")
	_, body := ad.do("GET", "/audit?resident_id=r2&from="+from+"&to="+to, nil)
	if strings.Contains(body, "test.e") || !strings.Contains(body, "조건에 맞는 기록이 없습니다") {
		t.Errorf("a window before the entries shows some: %.300s", body)
	}

	for q, want := range map[string]string{
		"resident_id=R%20X":                         "어르신 아이디 형식이 맞지 않습니다",
		"from=yesterday":                            "시작 시각을 읽을 수 없습니다",
		"to=2026-13-01T00:00":                       "끝 시각을 읽을 수 없습니다",
		"from=2026-12-02T10:00&to=2026-12-01T10:00": "366일 이내",
		"after=garbage":                             "다음 기록 링크가 맞지 않습니다",
	} {
		mark := h.audit.mark()
		resp, body := ad.do("GET", "/audit?"+q, nil)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, want) || !strings.Contains(body, `data-testid="problem"`) {
			t.Errorf("GET /audit?%s: %d, want 400 saying %q", q, resp.StatusCode, want)
		}
		if len(h.audit.since(mark)) != 0 {
			t.Errorf("GET /audit?%s: a refused filter recorded a read", q)
		}
	}
	// Each refused filter is counted, as every answer is, by route and class.
	if _, m := ad.do("GET", "/metrics", nil); !strings.Contains(m, `carehub_http_requests_total{route="/audit",status="4xx"} 5`) {
		t.Error("the refused audit filters are not counted in carehub_http_requests_total")
	}
}

// TestBrowserAdmin (make screenshots runs it): in chromium an admin creates a caregiver on the users
// page and assigns them a resident on the assignments page; the store and
// the page then show the assignment, and the new caregiver sees that
// resident (and only that one) once signed in.
func TestBrowserAdmin(t *testing.T) {
	h := newHarness(t)
	h.resident("r1", "김영희")
	h.resident("r2", "박철수")
	h.user("ad", "한관리", users.RoleAdmin)
	base := h.listen()

	b := browser(t)
	do(t, b, "admin logs in", append(loginSteps(base, "ad"), chromedp.WaitVisible(`[data-testid="overview"]`))...)
	do(t, b, "users page", chromedp.Navigate(base+"/users"), chromedp.WaitVisible(`[data-testid="create-user"]`))
	accessible(t, b, "users page")
	do(t, b, "create a caregiver",
		chromedp.SendKeys(`[data-testid="new-id"]`, "cg9"),
		chromedp.SendKeys(`[data-testid="new-name"]`, "나새봄"),
		chromedp.SetValue(`[data-testid="new-role"]`, "caregiver"),
		chromedp.SendKeys(`[data-testid="new-password"]`, "pass-cg9-long"),
		chromedp.Click(`[data-testid="create-user"] button[type="submit"]`),
		chromedp.WaitVisible(`[data-testid="created"]`))
	id, err := chromedp.Run(b, chromedp.Text(`[data-testid="created"] [data-field="id"]`))
	if err != nil || id != "cg9" {
		t.Fatalf("the page shows the created user as %q (%v)", id, err)
	}
	shot(t, b, "users-ko-1280")
	if u, err := h.users.Get(context.Background(), "cg9"); err != nil || u.Role != users.RoleCaregiver || u.Name != "나새봄" {
		t.Fatalf("cg9 in the store: %+v, %v", u, err)
	}

	sec := `section[data-user="cg9"]`
	do(t, b, "assignments page", chromedp.Navigate(base+"/assignments"), chromedp.WaitVisible(sec))
	accessible(t, b, "assignments page")
	do(t, b, "assign r1 to cg9",
		chromedp.Click(sec+` summary`),
		chromedp.Click(sec+` input[value="r1"]`),
		chromedp.Click(sec+` button[type="submit"]`))
	testenv.WaitFor(t, 10*time.Second, "cg9 assigned r1", func() bool {
		u, err := h.users.Get(context.Background(), "cg9")
		return err == nil && slices.Equal(u.ResidentIDs, []string{"r1"})
	})
	// The form's page reloads by itself after the save and shows it.
	testenv.WaitFor(t, 10*time.Second, "the assignments page shows cg9's resident", func() bool {
		got, err := chromedp.Run(b, chromedp.Evaluate[string](`(document.querySelector('section[data-user="cg9"] [data-testid="assigned"]') || {}).textContent || ""`))
		return err == nil && strings.TrimSpace(got) == "김영희"
	})
	shot(t, b, "assignments-ko-1280")

	// A resident's rule settings: saved from the page (PUT with If-Match),
	// shown after the reload; the chain and the audit trail pages.
	do(t, b, "settings page", chromedp.Navigate(base+"/residents/r1/settings"), chromedp.WaitVisible(`[data-testid="settings-form"]`))
	accessible(t, b, "settings page")
	do(t, b, "turn heart rate off",
		chromedp.Click(`#on-heart_rate`),
		chromedp.Click(`[data-testid="settings-form"] button[type="submit"]`),
		chromedp.WaitVisible(`tr[data-rule="heart_rate"][data-off="1"]`))
	shot(t, b, "settings-ko-1280")
	do(t, b, "chain page", chromedp.Navigate(base+"/residents/r1/escalation"), chromedp.WaitVisible(`[data-testid="chain-form"]`))
	accessible(t, b, "chain page")
	do(t, b, "name cg9 in the first tier, remove the guardian's",
		chromedp.Click(`input[name="tiers.1.user_ids"][value="cg9"]`),
		chromedp.SetValue(`select[name="tiers.4.role"]`, ""),
		chromedp.Click(`[data-testid="chain-form"] button[type="submit"]`))
	testenv.WaitFor(t, 10*time.Second, "the chain page shows the saved chain", func() bool {
		got, err := chromedp.Run(b, chromedp.Evaluate[string](`(document.querySelector('[data-testid="tiers"] tbody') || {}).textContent || ""`))
		return err == nil && strings.Contains(got, "나새봄") && !strings.Contains(got, "보호자")
	})
	shot(t, b, "escalation-ko-1280")
	do(t, b, "audit page", chromedp.Navigate(base+"/audit?resident_id=r1"), chromedp.WaitVisible(`tr[data-action="escalation.update"]`))
	accessible(t, b, "audit page")
	shot(t, b, "audit-ko-1280")
	for _, p := range []string{"/users", "/assignments", "/residents/r1/settings", "/residents/r1/escalation", "/audit"} {
		do(t, b, "320 px "+p, chromedp.EmulateViewport(320, 640), chromedp.Navigate(base+p), chromedp.WaitVisible(`main h1`))
		noHorizontalScroll(t, b, p)
	}
	shot(t, b, "audit-ko-320")

	// The new caregiver signs in and sees their resident only.
	cg := browser(t)
	do(t, cg, "cg9 logs in", loginSteps(base, "cg9")...)
	do(t, cg, "cg9's overview", chromedp.WaitVisible(`[data-resident="r1"]`))
	n, err := chromedp.Run(cg, chromedp.Evaluate[int](`document.querySelectorAll('[data-resident="r2"]').length`))
	if err != nil || n != 0 {
		t.Errorf("cg9 sees r2 (%d, %v)", n, err)
	}
}
