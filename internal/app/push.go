package app

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/api"
	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/internal/notify"
	"github.com/carehub/carehub/web/i18n"
)

// startPush builds the phones backend (issue 13) when CARE_WEBPUSH is on
// and runs its dispatcher on CARE_ALERTS; its stop lets the sends in
// flight finish. It returns a nil service (push endpoints answer 404
// push_disabled) when push is off.
func (a *App) startPush(ctx context.Context, js jetstream.JetStream, reg *devices.Registry, mgr *alerts.Manager) (api.PushService, func(context.Context), error) {
	cfg, clock, log := a.Config, a.clock, a.Log.With().Str("component", "webpush").Logger()
	if !cfg.WebPush.Enabled {
		return nil, func(context.Context) {}, nil
	}
	w := cfg.WebPush
	cat, err := i18n.Builtin()
	if err != nil {
		return nil, nil, err
	}
	svc, err := notify.New(ctx, notify.Options{JS: js, PublicURL: cfg.PublicURL, Subject: w.Subject,
		VAPIDPrivateKey: w.VAPIDPrivateKey, VAPIDPublicKey: w.VAPIDPublicKey, AllowedEndpoints: w.AllowedEndpoints,
		TTLCritical: w.TTLCritical, PruneAfter: time.Duration(w.PruneDays) * 24 * time.Hour, WebhookURL: w.WebhookURL, WebhookSecret: w.WebhookSecret,
		Names: func(id string) string { r, _ := reg.Resident(id); return r.Name },
		Current: func(id string) (uint64, bool) {
			al, err := mgr.Get(id)
			return al.Seq, err == nil
		},
		RuleName: cat.RuleName, Clock: clock, Log: log, Metrics: a.Metrics})
	if err != nil {
		return nil, nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := a.goRun("webpush", func() error { return svc.Run(runCtx) })
	return svc, func(ctx context.Context) { cancel(); waitDone(ctx, done) }, nil
}
