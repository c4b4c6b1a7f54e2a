package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/testenv"
	"github.com/carehub/carehub/writer"
)

// testClock is the injected clock the tests move by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *testClock {
	return &testClock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// lineStore is a writer.Store that keeps the lines InfluxDB would get.
type lineStore struct {
	mu    sync.Mutex
	lines []string
}

func (p *lineStore) WriteLines(_ context.Context, b []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lines = append(p.lines, strings.Split(strings.TrimSpace(string(b)), "\n")...)
	return nil
}

func (p *lineStore) Lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// startWriter runs the InfluxDB writer (package writer) on e's streams
// into store until the test ends: alert points reach InfluxDB the way
// they do in carehub, from CARE_ALERTS.
func (e *env) startWriter(t *testing.T, store writer.Store) {
	t.Helper()
	w, err := writer.New(writer.Options{JS: e.js, Store: store, BatchSize: 100, BatchInterval: 20 * time.Millisecond, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("writer: %v", err)
		}
	})
}

// writerSettled reports whether the writer acked every message of CARE_ALERTS.
func (e *env) writerSettled(t *testing.T) bool {
	t.Helper()
	_, done := testenv.ConsumerDone(t.Context(), e.js, model.StreamAlerts, writer.DefaultDurable)
	return done
}

// fakeSettings suppresses whatever its map says, by resident.
type fakeSettings struct {
	mu  sync.Mutex
	sup map[string]*Suppression
}

func (s *fakeSettings) Suppression(_ context.Context, residentID, _ string, _ time.Time) (*Suppression, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sup[residentID], nil
}

func (s *fakeSettings) set(residentID string, sup *Suppression) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sup == nil {
		s.sup = map[string]*Suppression{}
	}
	s.sup[residentID] = sup
}

// failingJS is a JetStream whose publishes fail while fail is set: a NATS
// outage as the Manager sees it, or a crash between store and publish.
type failingJS struct {
	jetstream.JetStream
	mu   sync.Mutex
	fail bool
}

func (f *failingJS) PublishMsg(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	f.mu.Lock()
	fail := f.fail
	f.mu.Unlock()
	if fail {
		return nil, errors.New("nats: publish failed (test)")
	}
	return f.JetStream.PublishMsg(ctx, m, opts...)
}

// env is one real NATS server with carehub's streams.
type env struct {
	ns *server.Server
	nc *nats.Conn
	js jetstream.JetStream
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return envOn(t, testenv.NATS(t))
}

func envOn(t *testing.T, ns *server.Server) *env {
	t.Helper()
	nc, js := testenv.JetStream(t, ns)
	return &env{ns: ns, nc: nc, js: js}
}

func (e *env) manager(t *testing.T, o Options) *Manager {
	t.Helper()
	if o.JS == nil {
		o.JS = e.js
	}
	o.NC = e.nc
	o.Log = zerolog.Nop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := NewManager(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// collector gathers what a plain nats.go subscriber receives.
type collector struct {
	mu   sync.Mutex
	msgs []*nats.Msg
}

func (e *env) subscribe(t *testing.T, subject string) *collector {
	t.Helper()
	c := &collector{}
	sub, err := e.nc.Subscribe(subject, func(m *nats.Msg) {
		c.mu.Lock()
		c.msgs = append(c.msgs, m)
		c.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return c
}

func (c *collector) all() []*nats.Msg {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*nats.Msg(nil), c.msgs...)
}

func (c *collector) count() int { return len(c.all()) }

// ids returns the Nats-Msg-Id of every message received.
func (c *collector) ids() []string {
	var out []string
	for _, m := range c.all() {
		out = append(out, m.Header.Get(jetstream.MsgIDHeader))
	}
	return out
}

func (c *collector) alerts(t *testing.T) []Alert {
	t.Helper()
	var out []Alert
	for _, m := range c.all() {
		var a Alert
		if err := json.Unmarshal(m.Data, &a); err != nil {
			t.Fatalf("alert JSON: %v", err)
		}
		out = append(out, a)
	}
	return out
}

func sig(resident, rule, severity string) rules.Signal {
	return rules.Signal{ResidentID: resident, HomeID: "h1", DeviceID: "d1", Rule: rule, Severity: severity,
		Active: true, Metric: "heart_rate", Value: 135, Threshold: 131, Message: "heart rate 135 /min for 5 min"}
}

func clearSig(resident, rule string) rules.Signal {
	return rules.Signal{ResidentID: resident, Rule: rule}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// openAlert returns the one alert of a resident, failing otherwise.
func onlyAlert(t *testing.T, m *Manager, resident string) Alert {
	t.Helper()
	as := m.List(Filter{ResidentID: resident})
	if len(as) != 1 {
		t.Fatalf("resident %s has %d alerts, want 1: %+v", resident, len(as), as)
	}
	return as[0]
}
