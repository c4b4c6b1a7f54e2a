package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/alerts/rules/eval"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/testenv"
)

// TestEngineStaleEvent: the engine gives the evaluator each event's arrival
// time, so an SOS stamped 10 minutes before it reached carehub raises
// nothing, while a fresh press behind it on the same stream does, once
// (issue 9 item 11). The rules evaluator is the real one.
func TestEngineStaleEvent(t *testing.T) {
	e := newEnv(t)
	clk := newClock()
	ev := eval.New(time.UTC, staticSettings{})
	m, stop := startEngine(t, e, clk, ev)
	defer stop()
	res, dev := testenv.ID("r"), testenv.ID("d")
	sos := func(ts time.Time) model.Event {
		return model.Event{ResidentID: res, HomeID: "h1", DeviceID: dev, DeviceKind: "sos", TS: ts, Type: "sos"}
	}
	publishJSON(t, e.js, model.EventSubject(res, dev), sos(clk.Now().Add(-10*time.Minute)))
	publishJSON(t, e.js, model.EventSubject(res, dev), sos(clk.Now()))
	// The button's cancel behind them: once the alert is cleared, all
	// three events have been through the evaluator, in order.
	cancel := sos(clk.Now().Add(5 * time.Second))
	cancel.Type = "sos_cancel"
	publishJSON(t, e.js, model.EventSubject(res, dev), cancel)
	a := waitAlert(t, m, res, "sos", func(a alerts.Alert) bool { return a.Status != alerts.StatusOpen })
	if a.Occurrences != 1 {
		t.Fatalf("SOS alert %+v: want one occurrence, the fresh press's", a)
	}
}

type staticSettings struct{}

func (staticSettings) Settings(string) rules.Settings { return rules.DefaultSettings() }

// TestSnapshotNotOverwrittenByADeposedEngine: two engines on one bucket, as
// an instance that lost the alert lease and the one that took it: once the
// new one has saved the rules' state, the old one's save fails with
// ErrSnapshotTaken and leaves the new state in place.
func TestSnapshotNotOverwrittenByADeposedEngine(t *testing.T) {
	e := newEnv(t)
	clk := newClock()
	m := e.manager(t, alerts.Options{Clock: clk.Now})
	open := func() *Engine {
		eng, err := New(context.Background(), Options{JS: e.js, Evaluator: eval.New(time.UTC, settingsDefaults{}), Clock: clk.Now, Log: zerolog.Nop()}, m)
		if err != nil {
			t.Fatal(err)
		}
		return eng
	}
	old := open()
	if err := old.snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	successor := open() // restores what old saved
	if err := successor.snapshot(context.Background()); err != nil {
		t.Fatalf("the successor's save: %v", err)
	}
	entry, err := successor.kv.Get(context.Background(), snapshotKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.snapshot(context.Background()); !errors.Is(err, ErrSnapshotTaken) {
		t.Fatalf("the deposed engine's save: %v, want ErrSnapshotTaken", err)
	}
	after, err := successor.kv.Get(context.Background(), snapshotKey)
	if err != nil {
		t.Fatal(err)
	}
	if after.Revision() != entry.Revision() {
		t.Fatalf("the snapshot was overwritten (revision %d → %d)", entry.Revision(), after.Revision())
	}
	if err := successor.snapshot(context.Background()); err != nil {
		t.Fatalf("the successor's next save: %v", err)
	}
}
