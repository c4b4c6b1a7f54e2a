package app

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/devices"
)

// openSettings opens the residents' alert settings (thresholds, snoozes),
// which the rules, the manager and the API read.
func (a *App) openSettings(ctx context.Context, js jetstream.JetStream) (*alerts.SettingsStore, func(context.Context), error) {
	s, err := alerts.OpenSettingsStore(ctx, js, a.Log.With().Str("component", "settings").Logger())
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
// registry. Its stop saves the rules' state.
func (a *App) startAlertEngine(ctx context.Context, o alerts.Options, settings *alerts.SettingsStore, m *alerts.Manager, reg *devices.Registry) (*alerts.Engine, func(context.Context), error) {
	evaluator := rules.NewEvaluator(a.Config.Timezone, settings)
	o.Evaluator = evaluator
	engine, err := alerts.NewEngine(ctx, o, m)
	if err != nil {
		return nil, nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := a.goRun("alerts", func() error { return engine.Run(runCtx) })
	a.goRun("device-sync", func() error { alerts.SyncDevices(runCtx, reg, evaluator); return nil })
	return engine, func(ctx context.Context) { cancel(); waitDone(ctx, done) }, nil
}
