package web_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/alerts/settings"
	"github.com/carehub/carehub/api"
	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/internal/audit"
	"github.com/carehub/carehub/internal/influx"
	"github.com/carehub/carehub/internal/influx/flux"
	"github.com/carehub/carehub/internal/metrics"
	"github.com/carehub/carehub/internal/notify"
	"github.com/carehub/carehub/internal/query"
	"github.com/carehub/carehub/internal/testenv"
	"github.com/carehub/carehub/internal/users"
	"github.com/carehub/carehub/internal/webpush/webpushtest"
	"github.com/carehub/carehub/web"
	"github.com/carehub/carehub/web/admin"
	"github.com/carehub/carehub/web/registry"
)

const adminToken = "admin-test-token-0123456789abcdef"

// recorder keeps every audit entry it passes on to the real audit log, so
// a test can count what one request recorded.
type recorder struct {
	mu   sync.Mutex
	all  []audit.Entry
	next query.Auditor
}

func (r *recorder) Record(ctx context.Context, e audit.Entry) error {
	if err := r.next.Record(ctx, e); err != nil {
		return err
	}
	r.mu.Lock()
	r.all = append(r.all, e)
	r.mu.Unlock()
	return nil
}

func (r *recorder) mark() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.all) }

func (r *recorder) since(n int) []audit.Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]audit.Entry(nil), r.all[n:]...)
}

// seriesAdapter is internal/app's readingsAdapter: the query layer over the
// real InfluxDB client.
type seriesAdapter struct {
	c   *flux.Reader
	loc *time.Location
}

func (s seriesAdapter) Readings(ctx context.Context, q query.ReadingsQuery) ([]query.Point, error) {
	pts, err := s.c.Readings(ctx, flux.ReadingsQuery{ResidentID: q.ResidentID, Metric: q.Metric, From: q.From, To: q.To, Every: q.Every, Fn: q.Fn, Location: s.loc})
	if err != nil {
		return nil, err
	}
	out := make([]query.Point, len(pts))
	for i, p := range pts {
		out[i] = query.Point{T: p.T, V: p.V}
	}
	return out, nil
}

// ReadingsSet is readingsAdapter's too: a resident page's charts in one
// Flux query.
func (s seriesAdapter) ReadingsSet(ctx context.Context, qs []query.ReadingsQuery) ([][]query.Point, error) {
	fq := make([]flux.ReadingsQuery, len(qs))
	for i, q := range qs {
		fq[i] = flux.ReadingsQuery{ResidentID: q.ResidentID, Metric: q.Metric, From: q.From, To: q.To, Every: q.Every, Fn: q.Fn, Location: s.loc}
	}
	sets, err := s.c.ReadingsSet(ctx, fq)
	if err != nil {
		return nil, err
	}
	out := make([][]query.Point, len(sets))
	for i, pts := range sets {
		for _, p := range pts {
			out[i] = append(out[i], query.Point{T: p.T, V: p.V})
		}
	}
	return out, nil
}

// harness is carehub's HTTP side as internal/app wires it: the API and the
// console on one Fiber app, on real NATS (registry, users, alerts, audit)
// and a real influxd.
type harness struct {
	t     *testing.T
	now   time.Time
	seoul *time.Location
	reg   *devices.Registry
	pres  *devices.PresenceTracker
	users *users.Store
	mgr   *alerts.Manager
	in    *influx.Client
	audit *recorder
	srv   *api.Server
	URL   string // set by listen
	// push and fake: the phones backend and a fake push service
	// (newPushHarness only).
	push *notify.Service
	fake *webpushtest.Service
	// back is how far the alert manager's clock runs behind the real one
	// while a test raises an alert in the past (signal).
	back *atomic.Int64
}

func newHarness(t *testing.T) *harness { return buildHarness(t, false) }

// newPushHarness is newHarness with the phones backend (Web Push against
// a fake push service inside the test).
func newPushHarness(t *testing.T) *harness { return buildHarness(t, true) }

func buildHarness(t *testing.T, withPush bool) *harness {
	t.Helper()
	ns := testenv.NATS(t)
	nc, js := testenv.JetStream(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seoul, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	clock := time.Now
	log := zerolog.Nop()
	reg, err := devices.Open(ctx, js, log, clock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	pres, err := devices.NewPresenceTracker(ctx, js, reg, log, devices.PresenceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	us, err := users.Open(ctx, js, clock)
	if err != nil {
		t.Fatal(err)
	}
	ruleSettings, err := settings.Open(ctx, js, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ruleSettings.Close)
	back := new(atomic.Int64)
	mgrClock := func() time.Time { return time.Now().Add(-time.Duration(back.Load())) }
	mgr, err := alerts.NewManager(ctx, alerts.Options{JS: js, NC: nc, Settings: ruleSettings, Clock: mgrClock, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	idb := testenv.SharedInflux(t)
	in, err := influx.Open(ctx, influx.Options{URL: idb.URL, Bucket: testenv.ID("care"), Version: "auto", Log: log})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{next: audit.New(js, clock)}
	queries := flux.New(in)
	trends := flux.NewDailyCache(queries, time.Minute, clock)
	consoleQuery := &query.Service{Registry: reg, Series: seriesAdapter{queries, seoul}, Last: trends, Manager: mgr, Mode: query.ModeFrom(ruleSettings), Presence: pres, Audit: rec, Clock: clock,
		RuleSettings: ruleSettings, Chains: mgr.Chains(), AuditLog: rec.next.(*audit.Log)}
	console, err := web.New(web.Options{Users: us, Location: seoul, Clock: clock, Log: log, Query: consoleQuery})
	if err != nil {
		t.Fatal(err)
	}
	var (
		push *notify.Service
		fake *webpushtest.Service
		opts api.Options
	)
	if withPush {
		fake = webpushtest.NewService(t)
		push, err = notify.New(ctx, notify.Options{JS: js, PublicURL: "http://127.0.0.1", Subject: "mailto:ops@example.org",
			AllowedEndpoints: []string{fake.URL}, Clock: clock, Log: log})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(push.Store.Close)
		opts.Push = push
	}
	opts = api.Options{Push: opts.Push,
		Session: console.Session, Registry: reg, Readings: seriesAdapter{queries, seoul}, Audit: rec, AuditReader: rec.next.(*audit.Log),
		Trends: trends, Metrics: metrics.New(), AdminToken: adminToken, Location: seoul, Clock: clock, Log: log,
		Users: us, Alerts: mgr, AlertStream: js, Chains: mgr.Chains(), Settings: ruleSettings, Heartbeat: time.Second, Presence: pres,
	}
	srv := api.New(opts)
	console.Register(srv.App(), srv.Login)
	if err := admin.Register(srv.App(), console, admin.Options{Query: consoleQuery, Users: us, Location: seoul, Clock: clock}); err != nil {
		t.Fatal(err)
	}
	if err := registry.Register(srv.App(), console, registry.Pages{Query: consoleQuery, Registry: reg}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(5 * time.Second) })
	return &harness{t: t, now: now, seoul: seoul, reg: reg, pres: pres, users: us, mgr: mgr, in: in, audit: rec, srv: srv, push: push, fake: fake, back: back}
}

// listen serves the app on a loopback port (for the browser tests).
func (h *harness) listen() string {
	h.t.Helper()
	port := testenv.FreePort(h.t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	go func() { _ = h.srv.Listen(addr) }()
	h.URL = "http://" + addr
	testenv.WaitFor(h.t, 10*time.Second, "console listening", func() bool {
		r, err := http.Get(h.URL + "/healthz")
		if err != nil {
			return false
		}
		_ = r.Body.Close()
		return r.StatusCode == http.StatusOK
	})
	return h.URL
}

func (h *harness) resident(id, name string) {
	h.t.Helper()
	if _, err := h.reg.CreateResident(context.Background(), devices.Resident{ID: id, Name: name, HomeID: "h-" + id, BirthYear: 1941}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) user(id, name, role string, residents ...string) {
	h.t.Helper()
	ctx := context.Background()
	if _, err := h.users.Create(ctx, users.NewUser{ID: id, Name: name, Role: role, Password: "pass-" + id + "-long"}); err != nil {
		h.t.Fatal(err)
	}
	if role == users.RoleCaregiver {
		if _, err := h.users.SetResidents(ctx, id, residents); err != nil {
			h.t.Fatal(err)
		}
	}
}

// ruleParams are what the rule engine (alerts/rules/eval) puts in a
// signal of each rule the tests raise: the metric, the value that tripped
// it and the limit it crossed (inactivity: hours), or nothing.
var ruleParams = map[string]struct {
	metric           string
	value, threshold float64
}{
	rules.RuleHeartRate:     {"heart_rate", 135, 131},
	rules.RuleSpO2:          {"spo2", 89, 91},
	rules.RuleSystolicBP:    {"systolic_bp", 182, 180},
	rules.RuleBodyTemp:      {"body_temp", 38.6, 38},
	rules.RuleInactivity:    {"", 12.6, 12},
	rules.RuleNEWS2:         {"news2", 7, 7},
	rules.RuleLowBattery:    {"battery_pct", 12, 20},
	rules.RuleSOS:           {},
	rules.RuleFall:          {},
	rules.RuleNightExit:     {},
	rules.RuleSmoke:         {},
	rules.RuleWaterLeak:     {},
	rules.RuleCannotMonitor: {},
}

// raise raises an alert of a rule through the real manager, with the
// parameters the rule engine would give it; message is the engine's
// stored English text.
func (h *harness) raise(residentID, rule, severity, message string, at time.Time) alerts.Alert {
	h.t.Helper()
	p, ok := ruleParams[rule]
	if !ok {
		h.t.Fatalf("raise: no parameters for rule %q (see ruleParams)", rule)
	}
	h.signal(rules.Signal{ResidentID: residentID, HomeID: "h-" + residentID, Rule: rule,
		Severity: severity, Active: true, Metric: p.metric, Value: p.value, Threshold: p.threshold, Message: message, At: at})
	for _, a := range h.mgr.List(alerts.Filter{ResidentID: residentID}) {
		if a.Rule == rule && a.Status != alerts.StatusResolved {
			return a
		}
	}
	h.t.Fatalf("alert %s/%s not raised", residentID, rule)
	return alerts.Alert{}
}

// signal hands the manager a rule's signal as if it arrived at s.At: the
// manager stamps alerts with its own clock, which runs that far behind
// meanwhile, so an alert raised 40 minutes ago says so.
func (h *harness) signal(s rules.Signal) {
	h.t.Helper()
	h.back.Store(int64(max(time.Since(s.At), 0)))
	defer h.back.Store(0)
	if err := h.mgr.Signal(context.Background(), s); err != nil {
		h.t.Fatal(err)
	}
}

// writeWeek writes a week of hourly heart rate, SpO2 and steps for a
// resident, with a 10-hour hole two days ago (a gap the charts must show).
func (h *harness) writeWeek(rid string) {
	h.t.Helper()
	var b strings.Builder
	start := h.now.Add(-7 * 24 * time.Hour).Truncate(time.Hour)
	holeFrom, holeTo := h.now.Add(-52*time.Hour), h.now.Add(-42*time.Hour)
	for at := start; at.Before(h.now); at = at.Add(5 * time.Minute) {
		if at.After(holeFrom) && at.Before(holeTo) {
			continue
		}
		hour := at.In(h.seoul).Hour()
		hr := 68 + float64((hour*7)%13)
		if hour >= 13 && hour <= 15 {
			hr += 30 // afternoon walk, into NEWS2 territory
		}
		spo2 := 96 - float64(hour%4)
		fmt.Fprintf(&b, "readings,resident_id=%s,home_id=h-%s,device_id=w-%s,device_kind=wearable heart_rate=%g,spo2=%g,steps=%d %d\n",
			rid, rid, rid, hr, spo2, hour*120, at.UnixMilli())
	}
	if err := h.in.WriteLines(context.Background(), []byte(b.String())); err != nil {
		h.t.Fatal(err)
	}
}

// client is one browser's cookie jar over app.Test.
type client struct {
	h       *harness
	cookies map[string]string
}

func (h *harness) client() *client { return &client{h: h, cookies: map[string]string{}} }

func (c *client) do(method, path string, form url.Values, hdr ...string) (*http.Response, string) {
	c.h.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
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
	for _, ck := range resp.Cookies() {
		if ck.MaxAge < 0 || ck.Value == "" {
			delete(c.cookies, ck.Name)
		} else {
			c.cookies[ck.Name] = ck.Value
		}
	}
	return resp, string(b)
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf returns the CSRF token in a page's form.
func csrf(t *testing.T, page string) string {
	t.Helper()
	m := csrfInput.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF field in page: %.300s", page)
	}
	return m[1]
}

// login signs in through the login form.
func (c *client) login(id string) {
	c.h.t.Helper()
	_, page := c.do("GET", "/login", nil)
	resp, body := c.do("POST", "/login", url.Values{"csrf": {csrf(c.h.t, page)}, "user": {id}, "password": {"pass-" + id + "-long"}})
	if resp.StatusCode != http.StatusSeeOther || c.cookies["carehub_session"] == "" {
		c.h.t.Fatalf("login %s: status %d: %.300s", id, resp.StatusCode, body)
	}
}
