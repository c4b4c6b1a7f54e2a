package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/alerts/settings"
	"github.com/carehub/carehub/api"
	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/internal/audit"
	"github.com/carehub/carehub/internal/metrics"
	"github.com/carehub/carehub/internal/testenv"
	"github.com/carehub/carehub/internal/users"
)

const adminToken = "admin-test-token-0123456789abcdef"

// clock is a settable clock shared by the API, the user store and the
// alert manager.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// noReadings answers every readings query with no points: these tests are
// about access, not about InfluxDB (internal/app's end-to-end tests are).
type noReadings struct{}

func (noReadings) Readings(context.Context, api.ReadingsQuery) ([]api.Point, error) { return nil, nil }

// harness is the API on real NATS: registry, users, alerts, settings and
// audit all in JetStream, as in production.
type harness struct {
	t        *testing.T
	clk      *clock
	js       jetstream.JetStream
	reg      *devices.Registry
	users    *users.Store
	mgr      *alerts.Manager
	settings *settings.Store
	srv      *api.Server
}

func newHarness(t *testing.T, mod func(*api.Options)) *harness {
	t.Helper()
	ns := testenv.NATS(t)
	nc, js := testenv.JetStream(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	clk := &clock{t: time.Now().UTC().Truncate(time.Second)}
	log := zerolog.Nop()
	reg, err := devices.Open(ctx, js, log, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	us, err := users.Open(ctx, js, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	ruleSettings, err := settings.Open(ctx, js, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ruleSettings.Close)
	mgr, err := alerts.NewManager(ctx, alerts.Options{JS: js, NC: nc, Settings: ruleSettings, Clock: clk.now, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	pres, err := devices.NewPresenceTracker(ctx, js, reg, log, devices.PresenceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	auditLog := audit.New(js, clk.now)
	o := api.Options{
		Registry: reg, Readings: noReadings{}, Audit: auditLog, AuditReader: auditLog, Metrics: metrics.New(),
		AdminToken: adminToken, Clock: clk.now, Log: log,
		Users: us, Alerts: mgr, AlertActions: mgr, AlertStream: js, Chains: mgr.Chains(), Settings: ruleSettings, Presence: pres,
	}
	if mod != nil {
		mod(&o)
	}
	srv := api.New(o)
	t.Cleanup(func() { _ = srv.Shutdown(5 * time.Second) })
	return &harness{t: t, clk: clk, js: js, reg: reg, users: us, mgr: mgr, settings: ruleSettings, srv: srv}
}

// call sends a request through Fiber's app.Test and returns the status and
// body; out, when not nil, receives the decoded JSON.
func (h *harness) call(method, path, token string, body any, out any, hdr ...string) (int, http.Header, []byte) {
	h.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req := httptest.NewRequest(method, path, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := h.srv.App().Test(req, 10000)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			h.t.Fatalf("%s %s: decode %q: %v", method, path, b, err)
		}
	}
	return resp.StatusCode, resp.Header, b
}

// expect calls and fails the test unless the status is want.
func (h *harness) expect(want int, method, path, token string, body any, out any, hdr ...string) []byte {
	h.t.Helper()
	got, _, b := h.call(method, path, token, body, out, hdr...)
	if got != want {
		h.t.Fatalf("%s %s: status %d, want %d: %s", method, path, got, want, b)
	}
	return b
}

// errCode returns the error code of an error answer.
func errCode(b []byte) string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(b, &e)
	return e.Error.Code
}

// errField is one field a refusal names (error.fields).
type errField struct {
	Field, Reason string
	Args          []any
}

// errFields is the fields an error body names.
func errFields(t *testing.T, b []byte) []errField {
	t.Helper()
	var e struct {
		Error struct{ Fields []errField }
	}
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("error body %s: %v", b, err)
	}
	return e.Error.Fields
}

// resident creates a resident through the registry.
func (h *harness) resident(id string) {
	h.t.Helper()
	if _, err := h.reg.CreateResident(context.Background(), devices.Resident{ID: id, Name: "Resident " + id, HomeID: "h-" + id}); err != nil {
		h.t.Fatal(err)
	}
}

// user creates a user with role through the API and returns its token;
// a caregiver is assigned residents.
func (h *harness) user(id, role string, residents ...string) string {
	h.t.Helper()
	var out struct {
		ID, Role, Token string
	}
	h.expect(http.StatusCreated, "POST", "/api/v1/users", adminToken, map[string]any{"id": id, "name": "User " + id, "role": role, "password": "pass-" + id + "-long"}, &out)
	if out.Token == "" || out.ID != id || out.Role != role {
		h.t.Fatalf("create user: %+v", out)
	}
	if role == users.RoleCaregiver {
		if residents == nil {
			residents = []string{}
		}
		h.expect(http.StatusOK, "PUT", "/api/v1/users/"+id+"/residents", adminToken, map[string]any{"resident_ids": residents}, nil)
	}
	return out.Token
}

// raise raises an alert for a resident's rule and returns it.
func (h *harness) raise(residentID, rule, severity string) alerts.Alert {
	h.t.Helper()
	if err := h.mgr.Signal(context.Background(), rules.Signal{ResidentID: residentID, HomeID: "h-" + residentID, Rule: rule,
		Severity: severity, Active: true, Metric: "heart_rate", Value: 135, Threshold: 131, Message: "heart rate 135/min", At: h.clk.now()}); err != nil {
		h.t.Fatal(err)
	}
	for _, a := range h.mgr.List(alerts.Filter{ResidentID: residentID}) {
		if a.Rule == rule && a.Status != alerts.StatusResolved {
			return a
		}
	}
	h.t.Fatalf("alert %s/%s not raised", residentID, rule)
	return alerts.Alert{}
}
