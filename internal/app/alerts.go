package app

import (
	"context"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/alerts/engine"
	"github.com/carehub/carehub/alerts/rules/eval"
	"github.com/carehub/carehub/alerts/settings"
	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/internal/lease"
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

// openAlertLease is this instance's claim on the alert leader's role
// (startAlertEngine campaigns for it); the Manager asks it whether to
// escalate and to adopt other instances' unsent transitions.
func (a *App) openAlertLease(ctx context.Context, js jetstream.JetStream) (*lease.Lease, error) {
	bucket, err := lease.Open(ctx, js, a.Config.AlertLeaseTTL)
	if err != nil {
		return nil, err
	}
	a.leases = bucket
	return lease.New(bucket, alertLease, a.Config.InstanceID, a.Config.AlertLeaseTTL, a.Log), nil
}

// startAlertEngine campaigns for the alert lease (internal/lease) and,
// while this instance holds it, runs the rules with the residents'
// settings: the engine feeds them readings, events and status from
// JetStream and hands their signals to m, and the rules learn each
// resident's devices from the registry. With several instances on one NATS
// exactly one runs the rules' timers and escalation at a time; the others
// take over when it dies (architecture.md, "Several instances"). A single
// instance wins the lease at once, and Start returns only after its engine
// consumes, so nothing published after Start is missed.
//
// The engine runs on the manager's connection, clock, log, metrics and
// residents gate (o). Its stop ends the term, which saves the rules' state
// and releases the lease.
func (a *App) startAlertEngine(ctx context.Context, l *lease.Lease, o alerts.Options, st *settings.Store, m *alerts.Manager, reg *devices.Registry) (*leaderEngine, func(context.Context), error) {
	le := &leaderEngine{lease: l, started: make(chan struct{}, 1)}
	a.Metrics.GaugeFunc("carehub_alert_leader", "1 while this instance is the alert leader: it runs the alert rules, their timers and escalation.", func() float64 {
		if l.Held() {
			return 1
		}
		return 0
	})
	runCtx, cancel := context.WithCancel(context.Background())
	done := a.goRun("alerts", func() error {
		l.Run(runCtx, func(ctx context.Context) {
			if err := le.term(ctx, a, o, st, m, reg); err != nil && ctx.Err() == nil {
				a.Log.Error().Err(err).Msg("alert engine stopped; the lease is released and campaigned for again")
			}
		})
		return nil
	})
	stop := func(ctx context.Context) { cancel(); waitDone(ctx, done) }
	select {
	case <-l.Decided():
	case <-ctx.Done():
		stop(context.Background())
		return nil, nil, ctx.Err()
	}
	if l.Held() {
		select {
		case <-le.started:
		case <-ctx.Done():
			stop(context.Background())
			return nil, nil, ctx.Err()
		}
	}
	return le, stop, nil
}

// alertLease is the lease key of the alert leader in model.BucketLeases.
const alertLease = "alerts"

// leaderEngine is the alert engine of this instance's current term as the
// alert leader, if it is one.
type leaderEngine struct {
	lease   *lease.Lease
	started chan struct{} // one value per term once its engine consumes

	mu  sync.Mutex
	eng *engine.Engine // nil between terms
}

// term runs one term as the alert leader: a fresh evaluator restored from
// the last snapshot, consuming until ctx ends (the lease lost or carehub
// stopping).
func (le *leaderEngine) term(ctx context.Context, a *App, o alerts.Options, st *settings.Store, m *alerts.Manager, reg *devices.Registry) error {
	evaluator := eval.New(a.Config.Timezone, st)
	eng, err := engine.New(ctx, engine.Options{JS: o.JS, Evaluator: evaluator, Clock: o.Clock, Log: o.Log,
		Metrics: o.Metrics, Residents: o.Residents}, m)
	if err != nil {
		return err
	}
	le.mu.Lock()
	le.eng = eng
	le.mu.Unlock()
	defer func() {
		le.mu.Lock()
		le.eng = nil
		le.mu.Unlock()
	}()
	syncCtx, stopSync := context.WithCancel(ctx)
	synced := make(chan struct{})
	go func() { defer close(synced); engine.SyncDevices(syncCtx, reg, evaluator) }()
	defer func() { stopSync(); <-synced }()
	select {
	case le.started <- struct{}{}:
	default:
	}
	return eng.Run(ctx)
}

// EraseResident forgets a resident's rule state now when this instance is
// the alert leader. Otherwise the leader's engine forgets them at its next
// tick (its gate is the registry, which already marks them erased) and
// saves its snapshot without them within 30 s.
func (le *leaderEngine) EraseResident(ctx context.Context, residentID string) error {
	le.mu.Lock()
	eng := le.eng
	le.mu.Unlock()
	if eng == nil {
		return nil
	}
	return eng.EraseResident(ctx, residentID)
}

// Leads reports whether this instance is the alert leader now.
func (le *leaderEngine) Leads() bool { return le.lease.Held() }
