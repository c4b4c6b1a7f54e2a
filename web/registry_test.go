package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/carehub/carehub/internal/audit"
	"github.com/carehub/carehub/internal/users"
	"github.com/carehub/carehub/web"
)

// trail is what a request recorded: each entry's action, resident and
// the residents it named.
func trail(es []audit.Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Action + " " + e.ResidentID + " " + strings.Join(e.Residents, ",")
	}
	return out
}

// missingKey is a catalogue key shown as itself (T's fallback).
var missingKey = regexp.MustCompile(`\breg\.[a-z]+\.[a-z.]+`)

// TestRegistryPages: the registry pages are staff's (a caregiver gets 404
// and nothing is recorded), each carries the CSP, and each view records
// exactly what its API twins record (same actions, same residents named);
// the resident page's forms carry the ETag GET /residents/{id} gives,
// which the API accepts as If-Match; no page ever holds a device password.
func TestRegistryPages(t *testing.T) {
	h := newHarness(t)
	h.resident("r1", "김영희")
	h.resident("r2", "박철수")
	h.user("co", "최코디", users.RoleCoordinator)
	h.user("ad", "한관리", users.RoleAdmin)
	h.user("cg", "정요양", users.RoleCaregiver, "r1")
	_, secret, err := h.reg.RegisterDevice(context.Background(), "band-r1", "wearable", "r1")
	if err != nil {
		t.Fatal(err)
	}
	co, ad, cg := h.client(), h.client(), h.client()
	co.login("co")
	ad.login("ad")
	cg.login("cg")

	pages := []struct {
		path string
		twin []string // the API calls the page stands for
	}{
		{"/registry/homes", []string{"/api/v1/homes"}},
		{"/registry/residents", []string{"/api/v1/residents"}},
		{"/registry/residents?home_id=h-r1", []string{"/api/v1/residents?home_id=h-r1"}},
		{"/registry/residents/r1", []string{"/api/v1/residents/r1", "/api/v1/residents/r1/devices"}},
		{"/registry/devices", []string{"/api/v1/devices"}},
		{"/registry/devices?resident_id=r1", []string{"/api/v1/devices?resident_id=r1"}},
		{"/registry/devices?home_id=h-r2", []string{"/api/v1/devices?home_id=h-r2"}},
	}
	for _, who := range []struct {
		name string
		c    *client
	}{{"coordinator", co}, {"admin", ad}} {
		for _, p := range pages {
			mark := h.audit.mark()
			for _, api := range p.twin {
				if resp, body := who.c.doJSON("GET", api, ""); resp.StatusCode != http.StatusOK {
					t.Fatalf("%s GET %s: %d %s", who.name, api, resp.StatusCode, body)
				}
			}
			want := trail(h.audit.since(mark))
			mark = h.audit.mark()
			resp, body := who.c.do("GET", p.path, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s GET %s: %d: %.400s", who.name, p.path, resp.StatusCode, body)
			}
			if got := resp.Header.Get("Content-Security-Policy"); got != web.CSP {
				t.Errorf("%s GET %s: CSP %q", who.name, p.path, got)
			}
			if got := trail(h.audit.since(mark)); !slices.Equal(got, want) || len(got) == 0 {
				t.Errorf("%s GET %s: audit %q, want %q (its API twins)", who.name, p.path, got, want)
			}
			for _, e := range h.audit.since(mark) {
				if e.Actor != who.name[:2] {
					t.Errorf("%s GET %s: audit actor %q", who.name, p.path, e.Actor)
				}
			}
			if m := missingKey.FindString(body); m != "" {
				t.Errorf("%s GET %s shows the key %q: not in the catalogue", who.name, p.path, m)
			}
			if strings.Contains(body, secret) || strings.Contains(body, "secret_hash") {
				t.Errorf("%s GET %s holds a device password", who.name, p.path)
			}
			if !strings.Contains(body, `href="/registry/residents" aria-current="page"`) && !strings.Contains(body, `<a href="/registry/residents" aria-current="page">`) {
				t.Errorf("%s GET %s: the registry is not marked in the navigation", who.name, p.path)
			}
		}
	}

	// A caregiver: 404 everywhere, even for their own resident, and
	// nothing recorded; no registry link in their navigation.
	for _, p := range append(pages, struct {
		path string
		twin []string
	}{"/registry/residents/nobody", nil}) {
		mark := h.audit.mark()
		if resp, body := cg.do("GET", p.path, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("caregiver GET %s: %d, want 404: %.200s", p.path, resp.StatusCode, body)
		} else if resp.Header.Get("Content-Security-Policy") != web.CSP {
			t.Errorf("caregiver GET %s: no CSP on the 404", p.path)
		}
		if n := len(h.audit.since(mark)); n != 0 {
			t.Errorf("caregiver GET %s recorded %d entries, want 0", p.path, n)
		}
	}
	if _, body := cg.do("GET", "/", nil); strings.Contains(body, "/registry/") {
		t.Error("a caregiver's navigation links to the registry")
	}
	if resp, _ := co.do("GET", "/registry/residents/nobody", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("coordinator GET an unknown resident: %d, want 404", resp.StatusCode)
	}

	// Content: the lists, the consent state, the forms and their API paths.
	_, homes := co.do("GET", "/registry/homes", nil)
	for _, want := range []string{`data-home="h-r1"`, `data-home="h-r2"`, `data-path="/api/v1/homes"`, "가정 추가"} {
		if !strings.Contains(homes, want) {
			t.Errorf("homes page lacks %q", want)
		}
	}
	_, list := co.do("GET", "/registry/residents?home_id=h-r1", nil)
	if !strings.Contains(list, `data-resident="r1"`) || strings.Contains(list, `data-resident="r2"`) || !strings.Contains(list, `data-consent="none"`) {
		t.Errorf("residents of h-r1: %.600s", list)
	}
	_, devs := co.do("GET", "/registry/devices?resident_id=r1", nil)
	for _, want := range []string{`data-device="band-r1"`, `data-state="enabled"`, `data-path="/api/v1/devices/band-r1/disable"`,
		`data-path="/api/v1/devices/band-r1/rotate-credentials" data-show="cred"`, `id="cred" class="cred" hidden`, `data-field="mqtt.password"`} {
		if !strings.Contains(devs, want) {
			t.Errorf("devices page lacks %q", want)
		}
	}

	// The resident page's ETag is the API's; the page's forms use it.
	resp, _ := co.doJSON("GET", "/api/v1/residents/r1", "")
	etag := resp.Header.Get("ETag")
	_, rp := co.do("GET", "/registry/residents/r1", nil)
	if etag == "" || !strings.Contains(rp, `data-etag="`+strings.ReplaceAll(etag, `"`, "&#34;")+`"`) ||
		!strings.Contains(rp, `data-method="PATCH" data-if-match="`+strings.ReplaceAll(etag, `"`, "&#34;")+`"`) {
		t.Fatalf("resident page does not carry the ETag %s: %.800s", etag, rp)
	}
	tok := csrf(t, rp)
	// What the consent form sends, with the page's If-Match.
	if resp, body := co.doJSON("PUT", "/api/v1/residents/r1/consent", `{"given":true,"scope":"monitoring","recorded_by":"최코디"}`,
		web.CSRFHeader, tok, "If-Match", etag); resp.StatusCode != http.StatusOK {
		t.Fatalf("consent with the page's ETag: %d %s", resp.StatusCode, body)
	}
	// The page's old ETag is now stale: an edit made from it is refused.
	if resp, _ := co.doJSON("PATCH", "/api/v1/residents/r1", `{"name":"김영순"}`, web.CSRFHeader, tok, "If-Match", etag); resp.StatusCode != http.StatusPreconditionFailed {
		t.Errorf("PATCH with a stale ETag: %d, want 412", resp.StatusCode)
	}
	_, rp = co.do("GET", "/registry/residents/r1", nil)
	if !strings.Contains(rp, `data-consent="given"`) || !strings.Contains(rp, "모니터링") || !strings.Contains(rp, `data-testid="withdraw-consent"`) {
		t.Errorf("resident page after consent: %.800s", rp)
	}
	var created struct {
		MQTT struct{ Password string } `json:"mqtt"`
	}
	resp, body := co.doJSON("POST", "/api/v1/devices", `{"id":"bed-r1","kind":"bed","resident_id":"r1"}`, web.CSRFHeader, tok)
	if err := json.Unmarshal([]byte(body), &created); err != nil || resp.StatusCode != http.StatusCreated || created.MQTT.Password == "" {
		t.Fatalf("POST /devices: %d %s", resp.StatusCode, body)
	}
	_, rp = co.do("GET", "/registry/residents/r1", nil)
	if !strings.Contains(rp, `data-device="bed-r1"`) || strings.Contains(rp, created.MQTT.Password) {
		t.Error("resident page: the new device is missing, or its password is shown again")
	}

	// The resident's trends page links staff to the registry page, not a caregiver.
	if _, body := co.do("GET", "/residents/r1", nil); !strings.Contains(body, `href="/registry/residents/r1"`) {
		t.Error("the resident page does not link a coordinator to the registry page")
	}
	if _, body := cg.do("GET", "/residents/r1", nil); strings.Contains(body, "/registry/") {
		t.Error("the resident page links a caregiver to the registry")
	}

	// English.
	if _, en := co.do("GET", "/registry/residents/r1?lang=en", nil); !strings.Contains(en, "Consent to monitoring") || !strings.Contains(en, "Registry") {
		t.Errorf("English resident registry page: %.300s", en)
	}
}
