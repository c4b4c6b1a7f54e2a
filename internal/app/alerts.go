package app

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/alerts/engine"
	"github.com/carehub/carehub/alerts/rules/eval"
	"github.com/carehub/carehub/alerts/settings"
	"github.com/carehub/carehub/devices"
)

// openSettings opens the residents' alert settings (thresholds, snoozes),
// which the rules, the manager and the API read.
func (a *App) openSettings(ctx context.Context, js jetstream.JetStream) (*settings.Store, func(context.Context), error) {
	s, err := settings.Open(ctx, js, a.Log.With().Str("component", "settings").Logger())
	if err != nil {
		return nil, nil, err
	}
	return s, func(context.Context) { s.Close() }, nil
}

// startAlertManager loads the stored alerts and starts delivering their
// transitions (publishing them to CARE_ALERTS, retrying what failed); its
// stop delivers once more what is left.
func (a *App) startAlertManager(ctx context.Context, o alerts.Options) (*alerts.Manager, func(context.Context), error) {
	m, err := alerts.NewManager(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := a.goRun("alert-manager", func() error { return m.Run(runCtx) })
	return m, func(ctx context.Context) { cancel(); waitDone(ctx, done) }, nil
}

// startAlertEngine starts the rules, with the residents' settings: the
// engine feeds them readings, events and status from JetStream and hands
// their signals to m, and the rules learn each resident's devices from the
// registry. It runs on the manager's connection, clock, log, metrics and
// residents gate (o). Its stop saves the rules' state.
func (a *App) startAlertEngine(ctx context.Context, o alerts.Options, st *settings.Store, m *alerts.Manager, reg *devices.Registry) (*engine.Engine, func(context.Context), error) {
	evaluator := eval.New(a.Config.Timezone, st)
	eng, err := engine.New(ctx, engine.Options{JS: o.JS, Evaluator: evaluator, Clock: o.Clock, Log: o.Log,
		Metrics: o.Metrics, Residents: o.Residents}, m)
	if err != nil {
		return nil, nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := a.goRun("alerts", func() error { return eng.Run(runCtx) })
	a.goRun("device-sync", func() error { engine.SyncDevices(runCtx, reg, evaluator); return nil })
	return eng, func(ctx context.Context) { cancel(); waitDone(ctx, done) }, nil
}
