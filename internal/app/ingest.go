package app

import (
	"context"
	"crypto/tls"

	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/ingest"
)

// newPipeline builds ingest: it subscribes to the broker as carehub's own
// user, validates devices' messages and stores them in JetStream.
func (a *App) newPipeline(b *broker, clientTLS *tls.Config, n *natsParts, reg *devices.Registry, pres *devices.PresenceTracker) (*ingest.Pipeline, error) {
	cfg := a.Config
	return ingest.NewPipeline(ingest.PipelineOptions{
		BrokerURL: b.url, Username: b.user, Password: b.password, ShareGroup: cfg.MQTTShareGroup,
		Connections: cfg.MQTTConnections, InstanceID: cfg.InstanceID, TLS: clientTLS, NC: n.nc, EventNC: n.events, Devices: reg, Presence: pres,
		Limits: ingest.Limits{MaxPayload: cfg.MaxPayload, MaxFuture: cfg.MaxFuture, MaxAge: cfg.RawRetention, MaxRecords: cfg.MaxRecords}, Clock: a.clock,
		Quota: ingest.Quota{Rate: float64(cfg.DeviceRate), Burst: float64(cfg.DeviceBurst),
			EventRate: float64(cfg.DeviceEventRate), EventBurst: float64(cfg.DeviceEventBurst)},
		Metrics: a.Metrics, Log: a.Log.With().Str("component", "ingest").Logger(),
	})
}

// startIntake starts taking devices' messages from the broker. Its stop
// ends the intake's context first: the embedded broker then stops
// acknowledging messages carehub can no longer store.
func (a *App) startIntake(p *ingest.Pipeline, intake *intakeLatch) func(context.Context) {
	done := a.goRun("ingest", func() error { return p.Run(intake.ctx) })
	return func(ctx context.Context) { intake.cancel(); waitDone(ctx, done) }
}

// intakeLatch hands the embedded broker's messages to the ingest pipeline,
// which is built after the broker because it subscribes to the broker's
// address. Until the pipeline is there a message waits; once the intake's
// context ends it is refused.
type intakeLatch struct {
	ctx      context.Context
	cancel   context.CancelFunc
	ready    chan struct{} // closed once pipeline is set
	pipeline *ingest.Pipeline
}

func newIntakeLatch() *intakeLatch {
	ctx, cancel := context.WithCancel(context.Background())
	return &intakeLatch{ctx: ctx, cancel: cancel, ready: make(chan struct{})}
}

// open lets messages through to p.
func (l *intakeLatch) open(p *ingest.Pipeline) {
	l.pipeline = p
	close(l.ready)
}

// stop ends the intake's context.
func (l *intakeLatch) stop(context.Context) { l.cancel() }

// ingest is the embedded broker's Options.Intake.
func (l *intakeLatch) ingest(topic string, payload []byte, contentType string) error {
	select {
	case <-l.ready:
	case <-l.ctx.Done():
		return l.ctx.Err()
	}
	return l.pipeline.Ingest(l.ctx, topic, payload, contentType)
}

// reject reports a message or login the embedded broker refused; before the
// pipeline is there the report is dropped.
func (l *intakeLatch) reject(deviceID, topic, kind, reason, detail string) {
	select {
	case <-l.ready:
		l.pipeline.Reject(deviceID, topic, kind, reason, detail)
	default:
	}
}
