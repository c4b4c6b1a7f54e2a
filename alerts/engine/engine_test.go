package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/testenv"
)

// fakeEval stands in for alerts/rules' evaluator: heart rate ≥ 131 is a
// critical signal, < 100 clears it; smoke is AllTiers; an offline status is
// device_offline; Tick emits what the test queued.
type fakeEval struct {
	mu       sync.Mutex
	readings int
	queued   []rules.Signal
	restored []byte
}

func (f *fakeEval) Reading(r model.Reading, _ string) []rules.Signal {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.readings++
	hr, ok := r.Values["heart_rate"]
	if !ok {
		return nil
	}
	s := rules.Signal{ResidentID: r.ResidentID, HomeID: r.HomeID, DeviceID: r.DeviceID, Rule: "heart_rate",
		Metric: "heart_rate", Value: hr, Threshold: 131, At: r.TS}
	switch {
	case hr >= 131:
		s.Active, s.Severity = true, rules.SeverityCritical
	case hr < 100:
	default:
		return nil
	}
	return []rules.Signal{s}
}

func (f *fakeEval) Event(e model.Event) []rules.Signal {
	if e.Type != "smoke" {
		return nil
	}
	return []rules.Signal{{ResidentID: e.ResidentID, HomeID: e.HomeID, DeviceID: e.DeviceID, Rule: "smoke",
		Severity: rules.SeverityCritical, Active: true, AllTiers: true, At: e.TS}}
}

func (f *fakeEval) Status(s model.Status) []rules.Signal {
	if s.Online {
		return nil
	}
	return []rules.Signal{{ResidentID: s.ResidentID, HomeID: s.HomeID, DeviceID: s.DeviceID, Rule: "device_offline",
		Severity: rules.SeverityHigh, Active: true, At: s.TS}}
}

func (f *fakeEval) Tick(time.Time) []rules.Signal {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := f.queued
	f.queued = nil
	return q
}

func (f *fakeEval) queue(s rules.Signal) {
	f.mu.Lock()
	f.queued = append(f.queued, s)
	f.mu.Unlock()
}

func (f *fakeEval) Snapshot() ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return json.Marshal(map[string]int{"readings": f.readings})
}

func (f *fakeEval) Restore(b []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.restored = append([]byte(nil), b...)
	return nil
}

func (f *fakeEval) Prune(func(string) bool) int { return 0 }

func (f *fakeEval) restoredBytes() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return string(f.restored)
}

func startEngine(t *testing.T, e *env, clk *testClock, ev Evaluator) (*alerts.Manager, func()) {
	t.Helper()
	m := e.manager(t, alerts.Options{Clock: clk.Now})
	eng, err := New(context.Background(), Options{JS: e.js, Evaluator: ev, Clock: clk.Now, Log: zerolog.Nop()}, m)
	if err != nil {
		t.Fatal(err)
	}
	eng.tickEvery = 20 * time.Millisecond
	return m, runEngine(t, eng, m)
}

// runEngine runs eng and m's delivery loop until the returned stop: it
// ends the engine first, then the manager, as carehub does.
func runEngine(t *testing.T, eng *Engine, m *alerts.Manager) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	mctx, mcancel := context.WithCancel(context.Background())
	mdone := make(chan error, 1)
	go func() { mdone <- m.Run(mctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Engine.Run: %v", err)
		}
		mcancel()
		if err := <-mdone; err != nil {
			t.Errorf("alerts.Manager.Run: %v", err)
		}
	}
}

func publishJSON(t *testing.T, js jetstream.JetStream, subject string, v any) {
	t.Helper()
	b, ok := v.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.Publish(context.Background(), subject, b); err != nil {
		t.Fatal(err)
	}
}

func waitAlert(t *testing.T, m *alerts.Manager, res, rule string, cond func(alerts.Alert) bool) alerts.Alert {
	t.Helper()
	var got alerts.Alert
	testenv.WaitFor(t, 5*time.Second, fmt.Sprintf("%s alert of %s", rule, res), func() bool {
		for _, a := range m.List(alerts.Filter{ResidentID: res}) {
			if a.Rule == rule && cond(a) {
				got = a
				return true
			}
		}
		return false
	})
	return got
}

// TestEngine drives the engine through real JetStream: readings, events and
// status become alerts; the clock escalates them; a malformed message is
// terminated without stopping the engine; messages are acked once stored;
// the evaluator's state is saved at stop and restored by the next engine.
func TestEngine(t *testing.T) {
	e := newEnv(t)
	clk := newClock()
	ev := &fakeEval{}
	m, stop := startEngine(t, e, clk, ev)
	sub := e.subscribe(t, model.SubjectAlertsAll)
	res, dev := testenv.ID("r"), testenv.ID("d")

	publishJSON(t, e.js, model.ReadingSubject(res, dev), model.Reading{ResidentID: res, HomeID: "h1", DeviceID: dev,
		DeviceKind: "wearable", TS: clk.Now(), Values: map[string]float64{"heart_rate": 140}})
	a := waitAlert(t, m, res, "heart_rate", func(a alerts.Alert) bool { return a.Status == alerts.StatusOpen })
	if a.Severity != "critical" || a.Value != 140 || a.DeviceID != dev {
		t.Fatalf("alert from reading: %+v", a)
	}
	testenv.WaitFor(t, 5*time.Second, "the raise on care.alerts.>", func() bool { return sub.count() == 1 })

	clk.Advance(60 * time.Second)
	waitAlert(t, m, res, "heart_rate", func(a alerts.Alert) bool { return a.EscalationLevel == 2 })

	publishJSON(t, e.js, model.StatusSubject(res, dev), model.Status{ResidentID: res, HomeID: "h1", DeviceID: dev, TS: clk.Now(), Online: false})
	waitAlert(t, m, res, "device_offline", func(a alerts.Alert) bool { return a.Severity == "high" })

	publishJSON(t, e.js, model.EventSubject(res, dev), []byte(`{"resident_id":`)) // malformed
	publishJSON(t, e.js, model.EventSubject(res, dev), model.Event{ResidentID: res, HomeID: "h1", DeviceID: dev, TS: clk.Now(), Type: "smoke"})
	if a := waitAlert(t, m, res, "smoke", func(alerts.Alert) bool { return true }); a.EscalationLevel != 5 {
		t.Fatalf("smoke at level %d", a.EscalationLevel)
	}

	ev.queue(rules.Signal{ResidentID: res, HomeID: "h1", Rule: "inactivity", Severity: rules.SeverityInfo, Active: true, Message: "no activity for 8 h"})
	waitAlert(t, m, res, "inactivity", func(alerts.Alert) bool { return true })

	for _, stream := range []string{model.StreamReadings, model.StreamEvents, model.StreamStatus} {
		testenv.WaitFor(t, 5*time.Second, stream+" fully acked", func() bool {
			info, done := testenv.ConsumerDone(context.Background(), e.js, stream, ConsumerName)
			return done && info.NumRedelivered == 0
		})
	}

	stop()
	ev2 := &fakeEval{}
	m2, stop2 := startEngine(t, e, clk, ev2)
	defer stop2()
	if got := ev2.restoredBytes(); got != `{"readings":1}` {
		t.Fatalf("restored %q, want the first evaluator's snapshot", got)
	}
	// The durable consumer resumes: a reading that clears the heart-rate
	// condition reaches the new engine, which leaves the critical alert open.
	publishJSON(t, e.js, model.ReadingSubject(res, dev), model.Reading{ResidentID: res, HomeID: "h1", DeviceID: dev,
		DeviceKind: "wearable", TS: clk.Now(), Values: map[string]float64{"heart_rate": 70}})
	testenv.WaitFor(t, 5*time.Second, "the new engine to read", func() bool {
		ev2.mu.Lock()
		defer ev2.mu.Unlock()
		return ev2.readings == 1
	})
	if a := waitAlert(t, m2, res, "heart_rate", func(alerts.Alert) bool { return true }); a.Status != alerts.StatusOpen {
		t.Fatalf("critical alert auto-cleared: %s", a.Status)
	}
}

// TestEngineLatency measures JetStream publish of a reading → alert at a
// plain NATS subscriber, one resident at a time (contract target p50 < 20 ms).
func TestEngineLatency(t *testing.T) {
	e := newEnv(t)
	clk := newClock()
	_, stop := startEngine(t, e, clk, &fakeEval{})
	defer stop()
	got := make(chan *nats.Msg, 256)
	sub, err := e.nc.ChanSubscribe(model.SubjectAlertsAll, got)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	const n = 100
	lat := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		res := testenv.ID("r")
		b, _ := json.Marshal(model.Reading{ResidentID: res, HomeID: "h1", DeviceID: "d1", DeviceKind: "wearable",
			TS: clk.Now(), Values: map[string]float64{"heart_rate": 150}})
		start := time.Now()
		if _, err := e.js.Publish(context.Background(), model.ReadingSubject(res, "d1"), b); err != nil {
			t.Fatal(err)
		}
		select {
		case msg := <-got:
			if msg.Subject != model.AlertSubject(res, "critical") {
				t.Fatalf("alert on %s", msg.Subject)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no alert for reading %d", i)
		}
		lat = append(lat, time.Since(start))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p50, p99 := lat[n/2], lat[n*99/100]
	t.Logf("reading → alert latency: p50 %s, p99 %s, max %s", p50, p99, lat[n-1])
	if p50 > 20*time.Millisecond {
		t.Fatalf("p50 %s, want < 20 ms", p50)
	}
}
