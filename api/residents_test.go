package api_test

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/internal/audit"
)

// auditReasons returns the actions recorded for a resident since from,
// with their reasons.
func (h *harness) auditReasons(rid string, from time.Time) map[string][]string {
	h.t.Helper()
	var res audit.Result
	h.expect(http.StatusOK, "GET", "/api/v1/audit?resident_id="+rid+"&from="+from.Format(time.RFC3339), adminToken, nil, &res)
	out := map[string][]string{}
	for _, e := range res.Entries {
		out[e.Action] = append(out[e.Action], e.Reason)
	}
	return out
}

// TestPatchResidentIfMatch: PATCH needs If-Match (428), a stale ETag is
// 412 and changes nothing, the right one applies and returns a new ETag
// (the KV revision), validation errors are 422, and the change is audited
// with the field names only.
func TestPatchResidentIfMatch(t *testing.T) {
	h := newHarness(t, nil)
	start := h.clk.now().Add(-time.Minute)
	h.resident("r1")
	coord := h.user("coord", "coordinator")

	_, hdr, _ := h.call("GET", "/api/v1/residents/r1", coord, nil, nil)
	etag := hdr.Get("ETag")
	if etag == "" || etag == `""` {
		t.Fatalf("GET gave no ETag: %q", etag)
	}
	body := map[string]any{"name": "Kim Young-hee", "birth_year": 1941}
	b := h.expect(http.StatusPreconditionRequired, "PATCH", "/api/v1/residents/r1", coord, body, nil)
	if errCode(b) != "precondition_required" {
		t.Fatalf("without If-Match: %s", b)
	}
	b = h.expect(http.StatusPreconditionFailed, "PATCH", "/api/v1/residents/r1", coord, body, nil, "If-Match", `"999999"`)
	if errCode(b) != "precondition_failed" {
		t.Fatalf("wrong If-Match: %s", b)
	}
	h.expect(http.StatusPreconditionFailed, "PATCH", "/api/v1/residents/r1", coord, body, nil, "If-Match", "W/"+etag)

	var got devices.Resident
	st, hdr2, raw := h.call("PATCH", "/api/v1/residents/r1", coord, body, &got, "If-Match", etag)
	if st != http.StatusOK || got.Name != "Kim Young-hee" || got.BirthYear != 1941 || got.HomeID != "h-r1" {
		t.Fatalf("patch: %d %s", st, raw)
	}
	etag2 := hdr2.Get("ETag")
	if etag2 == "" || etag2 == etag {
		t.Fatalf("ETag after patch %q (before %q)", etag2, etag)
	}
	if _, h3, _ := h.call("GET", "/api/v1/residents/r1", coord, nil, nil); h3.Get("ETag") != etag2 {
		t.Fatalf("GET ETag %q, PATCH gave %q", h3.Get("ETag"), etag2)
	}
	// The first ETag is stale now: a second editor who read before the
	// change is told so, and their change is not applied.
	h.expect(http.StatusPreconditionFailed, "PATCH", "/api/v1/residents/r1", coord, map[string]any{"name": "Other"}, nil, "If-Match", etag)
	if r, _ := h.reg.Resident("r1"); r.Name != "Kim Young-hee" {
		t.Fatalf("a stale PATCH applied: %+v", r)
	}

	for _, bad := range []any{
		map[string]any{},
		map[string]any{"name": "  "},
		map[string]any{"birth_year": 1800},
		map[string]any{"home_id": "Not An Id"},
		map[string]any{"nickname": "x"},
	} {
		st, _, b := h.call("PATCH", "/api/v1/residents/r1", coord, bad, nil, "If-Match", etag2)
		if st != 422 && st != 400 {
			t.Errorf("PATCH %v: %d %s, want 422 or 400", bad, st, b)
		}
	}
	// A move to another home moves the resident's devices.
	h.expect(http.StatusCreated, "POST", "/api/v1/devices", adminToken, map[string]any{"id": "d1", "kind": "wearable", "resident_id": "r1"}, nil)
	h.expect(http.StatusOK, "PATCH", "/api/v1/residents/r1", adminToken, map[string]any{"home_id": "unit-9"}, nil, "If-Match", "*")
	if d, _ := h.reg.Device("d1"); d.HomeID != "unit-9" {
		t.Fatalf("device home %q after the move", d.HomeID)
	}
	h.expect(http.StatusNotFound, "PATCH", "/api/v1/residents/nobody", coord, body, nil, "If-Match", etag2)

	acts := h.auditReasons("r1", start)
	if rs := acts["resident.update"]; len(rs) < 2 || rs[0] != "fields: name, birth_year" || strings.Contains(strings.Join(rs, " "), "Kim") {
		t.Fatalf("audit of updates: %v", rs)
	}
}

// TestPatchResidentConcurrent: many editors holding the same ETag race;
// exactly one gets 200, the others 412.
func TestPatchResidentConcurrent(t *testing.T) {
	h := newHarness(t, nil)
	h.resident("r1")
	_, hdr, _ := h.call("GET", "/api/v1/residents/r1", adminToken, nil, nil)
	etag := hdr.Get("ETag")
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, _, _ := h.call("PATCH", "/api/v1/residents/r1", adminToken, map[string]any{"birth_year": 1930 + i}, nil, "If-Match", etag)
			mu.Lock()
			codes[st]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[200] != 1 || codes[412] != 5 {
		t.Fatalf("status counts %v, want one 200 and five 412", codes)
	}
}

// TestConsent: PUT /consent records consent on the resident (GET shows
// it), a withdrawal keeps given_at and sets withdrawn_at, bad input is 422,
// caregivers may not record it (403), and every recording is audited.
func TestConsent(t *testing.T) {
	h := newHarness(t, nil)
	start := h.clk.now().Add(-time.Minute)
	h.resident("r1")
	care := h.user("care", "caregiver", "r1")

	give := map[string]any{"given": true, "scope": "monitoring+export", "recorded_by": "nurse Park", "document_ref": "form-2026-031"}
	var r devices.Resident
	h.expect(http.StatusOK, "PUT", "/api/v1/residents/r1/consent", adminToken, give, &r)
	if r.Consent == nil || !r.Consent.Given || r.Consent.Scope != "monitoring+export" || r.Consent.GivenAt == nil || r.Consent.WithdrawnAt != nil {
		t.Fatalf("consent: %+v", r.Consent)
	}
	givenAt := *r.Consent.GivenAt
	var got devices.Resident
	h.expect(http.StatusOK, "GET", "/api/v1/residents/r1", care, nil, &got)
	if got.Consent == nil || got.Consent.DocumentRef != "form-2026-031" || got.Consent.RecordedBy != "nurse Park" {
		t.Fatalf("GET consent: %+v", got.Consent)
	}

	h.clk.add(24 * time.Hour)
	h.expect(http.StatusOK, "PUT", "/api/v1/residents/r1/consent", adminToken, map[string]any{"given": false, "recorded_by": "nurse Park"}, &r)
	c := r.Consent
	if c == nil || c.Given || c.WithdrawnAt == nil || c.GivenAt == nil || !c.GivenAt.Equal(givenAt) || c.Scope != "monitoring+export" || !c.WithdrawnAt.After(givenAt) {
		t.Fatalf("withdrawal: %+v", c)
	}

	for _, bad := range []map[string]any{
		{"scope": "monitoring", "recorded_by": "x"},
		{"given": true, "scope": "everything", "recorded_by": "x"},
		{"given": true, "scope": "monitoring"},
		{"given": true, "scope": "monitoring", "recorded_by": strings.Repeat("x", 201)},
	} {
		if st, _, b := h.call("PUT", "/api/v1/residents/r1/consent", adminToken, bad, nil); st != 422 {
			t.Errorf("consent %v: %d %s, want 422", bad, st, b)
		}
	}
	care = h.user("care2", "caregiver", "r1") // the first token expired with the day
	h.expect(http.StatusForbidden, "PUT", "/api/v1/residents/r1/consent", care, give, nil)
	h.expect(http.StatusPreconditionFailed, "PUT", "/api/v1/residents/r1/consent", adminToken, give, nil, "If-Match", `"1"`)

	acts := h.auditReasons("r1", start)
	if rs := acts["consent.record"]; len(rs) != 2 || rs[0] != "given: monitoring+export" || rs[1] != "withdrawn" {
		t.Fatalf("consent audit: %v", acts)
	}
}

// TestHomes: POST /homes creates (201, 409 on a repeat, 422 on a bad id),
// GET /homes pages by id, GET /homes/{id} lists residents and device
// health, and a caregiver sees only the homes of their residents (404 for
// the others) and only their residents in a shared home.
func TestHomes(t *testing.T) {
	h := newHarness(t, nil)
	var home devices.Home
	h.expect(http.StatusCreated, "POST", "/api/v1/homes", adminToken, map[string]any{"id": "unit-1", "name": "Unit 1"}, &home)
	if home.ID != "unit-1" || home.Name != "Unit 1" || home.CreatedAt.IsZero() {
		t.Fatalf("home: %+v", home)
	}
	h.expect(http.StatusConflict, "POST", "/api/v1/homes", adminToken, map[string]any{"id": "unit-1"}, nil)
	h.expect(422, "POST", "/api/v1/homes", adminToken, map[string]any{"id": "Unit 1"}, nil)
	var gen devices.Home
	h.expect(http.StatusCreated, "POST", "/api/v1/homes", adminToken, map[string]any{}, &gen)
	if !strings.HasPrefix(gen.ID, "h-") {
		t.Fatalf("generated id %q", gen.ID)
	}
	// Two residents share unit-1; another lives in h-r3.
	for _, r := range []devices.Resident{{ID: "r1", Name: "A", HomeID: "unit-1"}, {ID: "r2", Name: "B", HomeID: "unit-1"}, {ID: "r3", Name: "C", HomeID: "h-r3"}} {
		h.expect(http.StatusCreated, "POST", "/api/v1/residents", adminToken, map[string]any{"id": r.ID, "name": r.Name, "home_id": r.HomeID}, nil)
	}
	h.expect(http.StatusCreated, "POST", "/api/v1/devices", adminToken, map[string]any{"id": "d1", "kind": "wearable", "resident_id": "r1"}, nil)
	h.expect(http.StatusCreated, "POST", "/api/v1/devices", adminToken, map[string]any{"id": "d2", "kind": "motion", "resident_id": "r2"}, nil)

	var ids []string
	cursor := ""
	for range 5 {
		var page struct {
			Homes      []devices.Home `json:"homes"`
			NextCursor string         `json:"next_cursor"`
		}
		h.expect(http.StatusOK, "GET", "/api/v1/homes?limit=2&cursor="+cursor, adminToken, nil, &page)
		for _, x := range page.Homes {
			ids = append(ids, x.ID)
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if strings.Join(ids, ",") != gen.ID+",h-r3,unit-1" {
		t.Fatalf("paged homes %v", ids)
	}
	h.expect(422, "GET", "/api/v1/homes?limit=0", adminToken, nil, nil)
	h.expect(400, "GET", "/api/v1/homes?cursor=Bad%20Cursor", adminToken, nil, nil)

	type view struct {
		ID          string   `json:"id"`
		ResidentIDs []string `json:"resident_ids"`
		Devices     []struct {
			ID     string `json:"id"`
			Online bool   `json:"online"`
		} `json:"devices"`
	}
	var v view
	h.expect(http.StatusOK, "GET", "/api/v1/homes/unit-1", adminToken, nil, &v)
	if strings.Join(v.ResidentIDs, ",") != "r1,r2" || len(v.Devices) != 2 || v.Devices[0].ID != "d1" {
		t.Fatalf("home view: %+v", v)
	}
	h.expect(http.StatusNotFound, "GET", "/api/v1/homes/nowhere", adminToken, nil, nil)

	care := h.user("care", "caregiver", "r1")
	var cl struct {
		Homes []devices.Home `json:"homes"`
	}
	h.expect(http.StatusOK, "GET", "/api/v1/homes", care, nil, &cl)
	if len(cl.Homes) != 1 || cl.Homes[0].ID != "unit-1" {
		t.Fatalf("caregiver's homes: %+v", cl.Homes)
	}
	var cv view
	h.expect(http.StatusOK, "GET", "/api/v1/homes/unit-1", care, nil, &cv)
	if strings.Join(cv.ResidentIDs, ",") != "r1" || len(cv.Devices) != 1 || cv.Devices[0].ID != "d1" {
		t.Fatalf("caregiver's view of a shared home: %+v", cv)
	}
	for _, hid := range []string{"h-r3", gen.ID} {
		if b := h.expect(http.StatusNotFound, "GET", "/api/v1/homes/"+hid, care, nil, nil); errCode(b) != "not_found" {
			t.Fatalf("caregiver GET /homes/%s: %s", hid, b)
		}
	}
	h.expect(http.StatusForbidden, "POST", "/api/v1/homes", care, map[string]any{"id": "unit-2"}, nil)
	if acts := h.auditReasons("r1", h.clk.now().Add(-time.Hour)); len(acts["home.read"]) < 2 {
		t.Fatalf("home reads not audited for r1: %v", acts)
	}
}

// TestRegistryRefusalsNameTheField: a registry body refused for one field
// names it in error.fields, with the English reason and its values apart
// (the console marks the field and says why in its own language), and the
// message still says the same in English.
func TestRegistryRefusalsNameTheField(t *testing.T) {
	h := newHarness(t, nil)
	h.resident("r1")
	year := strconv.Itoa(h.clk.now().Year() + 1)
	for _, c := range []struct {
		method, path, body  string
		code, field, reason string
	}{
		{"POST", "/api/v1/residents", `{"name":"A","home_id":"h1","birth_year":` + year + `}`, "invalid_field", "birth_year", "birth_year %d outside %d..%d"},
		{"POST", "/api/v1/residents", `{"id":"batch","name":"A","home_id":"h1"}`, "invalid_field", "id", `resident id "batch" is reserved: choose another id`},
		{"POST", "/api/v1/residents", `{"name":" ","home_id":"h1"}`, "invalid_field", "name", "resident name is required"},
		{"POST", "/api/v1/residents", `{"name":"A","home_id":"Unit 1"}`, "invalid_field", "home_id", "home_id %q does not match ^[a-z0-9][a-z0-9_-]{0,63}$"},
		{"PATCH", "/api/v1/residents/r1", `{"birth_year":1800}`, "invalid_field", "birth_year", "birth_year %d outside %d..%d"},
		{"POST", "/api/v1/homes", `{"id":"Unit 1"}`, "invalid_field", "id", "home id %q does not match ^[a-z0-9][a-z0-9_-]{0,63}$"},
		{"POST", "/api/v1/devices", `{"kind":"wearable"}`, "invalid_field", "resident_id", "resident_id is required"},
		{"POST", "/api/v1/devices", `{"kind":"wearable","resident_id":"nobody"}`, "unknown_resident", "resident_id", "resident %s does not exist: create it first with POST /api/v1/residents"},
		{"POST", "/api/v1/devices", `{"kind":"toaster","resident_id":"r1"}`, "invalid_field", "kind", "device kind %q is not one of %v"},
		{"POST", "/api/v1/devices", `{"id":"Band 1","kind":"wearable","resident_id":"r1"}`, "invalid_field", "id", "device id %q does not match ^[a-z0-9][a-z0-9_-]{0,63}$"},
		{"PUT", "/api/v1/residents/r1/consent", `{"scope":"monitoring","recorded_by":"x"}`, "invalid_consent", "given", "given is required: true to record consent, false to record its withdrawal"},
		{"PUT", "/api/v1/residents/r1/consent", `{"given":true,"scope":"monitoring"}`, "invalid_consent", "recorded_by", "recorded_by is required: who took the consent"},
		{"PUT", "/api/v1/residents/r1/consent", `{"given":true,"scope":"monitoring","recorded_by":"x","document_ref":"` + strings.Repeat("x", 201) + `"}`, "invalid_consent", "document_ref", "document_ref is at most %d characters"},
	} {
		st, _, b := h.call(c.method, c.path, adminToken, c.body, nil, "If-Match", "*")
		var e struct {
			Error struct{ Code, Message string }
		}
		_ = json.Unmarshal(b, &e)
		f := errFields(t, b)
		if st != 422 || e.Error.Code != c.code || len(f) != 1 || f[0].Field != c.field || f[0].Reason != c.reason {
			t.Errorf("%s %s %s: %d %s; want 422 %s naming %s: %q", c.method, c.path, c.body, st, b, c.code, c.field, c.reason)
			continue
		}
		args := f[0].Args
		for i, a := range args {
			if n, ok := a.(float64); ok && n == math.Trunc(n) {
				args[i] = int(n) // a JSON number, for %d
			}
		}
		if want := fmt.Sprintf(c.reason, args...); !strings.Contains(e.Error.Message, want) || strings.Contains(want, "%!") {
			t.Errorf("%s %s: message %q does not say %q", c.method, c.path, e.Error.Message, want)
		}
	}
}
