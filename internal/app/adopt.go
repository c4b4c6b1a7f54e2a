package app

import (
	"context"
	"crypto/tls"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/ingest"
	"github.com/carehub/carehub/ingest/mqttsub"
	"github.com/carehub/carehub/internal/instances"
	"github.com/carehub/carehub/internal/lease"
)

// startSessionAdoption announces this instance to the others and, while it
// is the alert leader, drains the MQTT sessions of instances that are down
// (package instances: Mosquitto holds a dead instance's share of the
// shared subscription for it). With the embedded broker there is nothing
// to share and it does nothing.
func (a *App) startSessionAdoption(_ context.Context, js jetstream.JetStream, alertLease *lease.Lease, b *broker, clientTLS *tls.Config, intake *ingest.Intake) (func(context.Context), error) {
	if b.embedded != nil {
		return func(context.Context) {}, nil
	}
	cfg := a.Config
	log := a.Log.With().Str("component", "instances").Logger()
	o := instances.Options{Self: cfg.InstanceID, MQTTConnections: cfg.MQTTConnections, TTL: cfg.AlertLeaseTTL,
		Leases: a.leases, Leader: alertLease, Log: log, Metrics: a.Metrics,
		Subscriber: func(id string, connections int) (*mqttsub.Subscriber, error) {
			return mqttsub.New(mqttsub.Options{BrokerURL: b.url, BrokerURLs: b.urls, Username: b.user, Password: b.password,
				ShareGroup: cfg.MQTTShareGroup, Connections: connections, InstanceID: id, TLS: clientTLS, Adopted: true, ReadWait: cfg.MQTTReadWait,
				Intake: intake, Log: a.Log.With().Str("component", "ingest").Str("adopted", id).Logger()})
		}}
	runCtx, cancel := context.WithCancel(context.Background())
	done := a.goRun("instances", func() error { return instances.Run(runCtx, js, o) })
	return func(ctx context.Context) { cancel(); waitDone(ctx, done) }, nil
}
