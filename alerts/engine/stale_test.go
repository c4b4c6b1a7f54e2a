package engine

import (
	"testing"
	"time"

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
