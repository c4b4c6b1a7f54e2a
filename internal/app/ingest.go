package app

import (
	"context"
	"crypto/tls"

	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/ingest"
	"github.com/carehub/carehub/ingest/decode"
	"github.com/carehub/carehub/ingest/mqttsub"
)

// newIntake builds the intake: it validates devices' messages, resolves
// each device to its resident and stores the messages in JetStream. It
// needs only NATS, the registry and presence, so it exists before any
// broker feeds it.
func (a *App) newIntake(n *natsParts, reg *devices.Registry, pres *devices.PresenceTracker) (*ingest.Intake, error) {
	cfg := a.Config
	return ingest.New(ingest.Options{
		NC: n.nc, EventNC: n.events, Devices: reg, Presence: pres,
		Limits: decode.Limits{MaxPayload: cfg.MaxPayload, MaxFuture: cfg.MaxFuture, MaxAge: cfg.RawRetention, MaxRecords: cfg.MaxRecords}, Clock: a.clock,
		Quota: ingest.Quota{Rate: float64(cfg.DeviceRate), Burst: float64(cfg.DeviceBurst),
			EventRate: float64(cfg.DeviceEventRate), EventBurst: float64(cfg.DeviceEventBurst)},
		// Room for every subscriber connection's in-flight messages, to
		// every broker.
		PublishWindow: ingest.DefaultMaxInFlight * max(cfg.MQTTConnections, 1) * max(len(cfg.MQTTURLs()), 1),
		EventWindow:   ingest.DefaultMaxInFlight * max(len(cfg.MQTTURLs()), 1),
		BatchReadings: cfg.IngestBatch, BatchDelay: cfg.IngestBatchDelay,
		Metrics: a.Metrics, Log: a.Log.With().Str("component", "ingest").Logger(),
	})
}

// newSubscriber builds carehub's MQTT subscriber connections: they log in
// to the broker as carehub's own user, hand devices' messages to the
// intake and acknowledge each once it is stored.
func (a *App) newSubscriber(b *broker, clientTLS *tls.Config, intake *ingest.Intake) (*mqttsub.Subscriber, error) {
	cfg := a.Config
	return mqttsub.New(mqttsub.Options{
		BrokerURL: b.url, BrokerURLs: b.urls, Username: b.user, Password: b.password, ShareGroup: cfg.MQTTShareGroup,
		Connections: cfg.MQTTConnections, InstanceID: cfg.InstanceID, TLS: clientTLS, ReadWait: cfg.MQTTReadWait,
		Intake: intake, Log: a.Log.With().Str("component", "ingest").Logger(),
	})
}

// startSubscriber starts taking devices' messages from the broker. Its stop
// ends the intake's context first: the embedded broker then stops
// acknowledging messages carehub can no longer store.
func (a *App) startSubscriber(intakeCtx context.Context, sub *mqttsub.Subscriber, stopIntake context.CancelFunc) func(context.Context) {
	done := a.goRun("ingest", func() error { return sub.Run(intakeCtx) })
	return func(ctx context.Context) { stopIntake(); waitDone(ctx, done) }
}
