package engine

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/alerts/rules/eval"
	"github.com/carehub/carehub/internal/metrics"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/testenv"
)

// gateSet is an alerts.ResidentGate over a set the test changes (the
// registry in carehub).
type gateSet struct {
	mu  sync.Mutex
	ids map[string]bool
}

func newGate(ids ...string) *gateSet {
	g := &gateSet{ids: map[string]bool{}}
	for _, id := range ids {
		g.ids[id] = true
	}
	return g
}

func (g *gateSet) Monitored(id string) bool { g.mu.Lock(); defer g.mu.Unlock(); return g.ids[id] }
func (g *gateSet) remove(id string)         { g.mu.Lock(); delete(g.ids, id); g.mu.Unlock() }

type settingsDefaults struct{}

func (settingsDefaults) Settings(string) rules.Settings { return rules.DefaultSettings() }

// startGatedEngine runs an engine with the real rule evaluator behind gate.
func startGatedEngine(t *testing.T, e *env, clk *testClock, gate alerts.ResidentGate) (*Engine, *alerts.Manager, *metrics.Registry) {
	t.Helper()
	reg := metrics.New()
	o := alerts.Options{Clock: clk.Now, Residents: gate, Metrics: reg}
	m := e.manager(t, o)
	eng, err := New(context.Background(), Options{JS: e.js, Evaluator: eval.New(time.UTC, settingsDefaults{}),
		Clock: clk.Now, Log: zerolog.Nop(), Residents: gate, Metrics: reg}, m)
	if err != nil {
		t.Fatal(err)
	}
	eng.tickEvery = 20 * time.Millisecond
	t.Cleanup(runEngine(t, eng, m))
	return eng, m, reg
}

func waitAcked(t *testing.T, e *env, streams ...string) {
	t.Helper()
	for _, stream := range streams {
		testenv.WaitFor(t, 5*time.Second, stream+" fully acked", func() bool {
			_, done := testenv.ConsumerDone(context.Background(), e.js, stream, ConsumerName)
			return done
		})
	}
}

// TestEngineDropsForgedSubject: a message whose body names another
// resident or device than its subject is acked, counted and evaluated for
// nobody: an SOS forged on r1's subject with r2 in the body raises nothing
// for r2 (and nothing for r1 from the body's data), while a genuine SOS
// still raises.
func TestEngineDropsForgedSubject(t *testing.T) {
	e := newEnv(t)
	clk := newClock()
	r1, r2, r3, d1, d3 := testenv.ID("r"), testenv.ID("r"), testenv.ID("r"), testenv.ID("d"), testenv.ID("d")
	eng, m, _ := startGatedEngine(t, e, clk, newGate(r1, r2, r3))

	publishJSON(t, e.js, model.EventSubject(r1, d1), model.Event{ResidentID: r2, HomeID: "h1", DeviceID: d1, DeviceKind: "sos", TS: clk.Now(), Type: "sos"})
	publishJSON(t, e.js, model.EventSubject(r1, d1), model.Event{ResidentID: r1, HomeID: "h1", DeviceID: "d-other", DeviceKind: "sos", TS: clk.Now(), Type: "sos"})
	publishJSON(t, e.js, model.ReadingSubject(r1, d1), model.Reading{ResidentID: r2, HomeID: "h1", DeviceID: d1, DeviceKind: "wearable",
		TS: clk.Now(), Values: map[string]float64{"spo2": 80}})
	publishJSON(t, e.js, model.StatusSubject(r1, d1), model.Status{ResidentID: r2, HomeID: "h1", DeviceID: d1, TS: clk.Now(), Online: false})
	// The genuine SOS after them is the sync point: the consumer is ordered.
	publishJSON(t, e.js, model.EventSubject(r3, d3), model.Event{ResidentID: r3, HomeID: "h1", DeviceID: d3, DeviceKind: "sos", TS: clk.Now(), Type: "sos"})
	waitAlert(t, m, r3, "sos", func(alerts.Alert) bool { return true })
	waitAcked(t, e, model.StreamEvents, model.StreamReadings, model.StreamStatus)
	clk.Advance(2 * time.Minute)
	eng.tick(context.Background())

	for _, r := range []string{r1, r2} {
		if got := m.List(alerts.Filter{ResidentID: r}); len(got) != 0 {
			t.Errorf("alerts for %s from forged messages: %+v", r, got)
		}
	}
	if got := eng.dropped.With(model.StreamEvents, DropSubjectMismatch).Value(); got != 2 {
		t.Errorf("events dropped as subject_mismatch = %v, want 2", got)
	}
	if got := eng.dropped.With(model.StreamReadings, DropSubjectMismatch).Value(); got != 1 {
		t.Errorf("readings dropped as subject_mismatch = %v, want 1", got)
	}
	if got := eng.dropped.With(model.StreamStatus, DropSubjectMismatch).Value(); got != 1 {
		t.Errorf("status dropped as subject_mismatch = %v, want 1", got)
	}
}

// TestEngineErasedResident: once a resident is no longer monitored (erased,
// or gone from the registry) their state is forgotten, their messages are
// dropped and the clock raises nothing for them (no device offline, no
// cannot-monitor, no inactivity); EraseResident saves a snapshot without
// them. Another resident's rules go on.
func TestEngineErasedResident(t *testing.T) {
	e := newEnv(t)
	clk := newClock()
	gone, kept, dg, dk := testenv.ID("r"), testenv.ID("r"), testenv.ID("d"), testenv.ID("d")
	gate := newGate(gone, kept)
	eng, m, _ := startGatedEngine(t, e, clk, gate)
	for _, p := range []struct{ r, d string }{{gone, dg}, {kept, dk}} {
		publishJSON(t, e.js, model.ReadingSubject(p.r, p.d), model.Reading{ResidentID: p.r, HomeID: "h1", DeviceID: p.d, DeviceKind: "motion",
			TS: clk.Now(), Values: map[string]float64{"motion": 1}})
	}
	waitAcked(t, e, model.StreamReadings)
	if err := eng.snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	snap := func() string {
		entry, err := eng.kv.Get(context.Background(), snapshotKey)
		if err != nil {
			t.Fatal(err)
		}
		return string(entry.Value())
	}
	if !strings.Contains(snap(), gone) {
		t.Fatalf("the snapshot before erasure lacks %s: %s", gone, snap())
	}

	gate.remove(gone)
	if err := eng.EraseResident(context.Background(), gone); err != nil {
		t.Fatal(err)
	}
	if s := snap(); strings.Contains(s, gone) || !strings.Contains(s, kept) {
		t.Fatalf("snapshot after erasure: %s", s)
	}
	// A reading published before the erasure and consumed after it.
	publishJSON(t, e.js, model.ReadingSubject(gone, dg), model.Reading{ResidentID: gone, HomeID: "h1", DeviceID: dg, DeviceKind: "motion",
		TS: clk.Now(), Values: map[string]float64{"motion": 1}})
	publishJSON(t, e.js, model.EventSubject(gone, dg), model.Event{ResidentID: gone, HomeID: "h1", DeviceID: dg, DeviceKind: "motion", TS: clk.Now(), Type: "fall"})
	waitAcked(t, e, model.StreamReadings, model.StreamEvents)
	if got := eng.dropped.With(model.StreamReadings, DropUnknownResident).Value(); got != 1 {
		t.Errorf("readings dropped as unknown_resident = %v, want 1", got)
	}

	clk.Advance(25 * time.Hour) // past inactivity, device offline, cannot monitor
	waitAlert(t, m, kept, rules.RuleInactivity, func(alerts.Alert) bool { return true })
	waitAlert(t, m, kept, rules.RuleDeviceOffline, func(alerts.Alert) bool { return true })
	eng.tick(context.Background())
	if got := m.List(alerts.Filter{ResidentID: gone}); len(got) != 0 {
		t.Fatalf("alerts for the erased resident: %+v", got)
	}
	if err := eng.snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := snap(); strings.Contains(s, gone) {
		t.Fatalf("the erased resident is back in the snapshot: %s", s)
	}
}
