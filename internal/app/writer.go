package app

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/internal/influx"
	"github.com/carehub/carehub/writer"
)

// startWriter starts draining JetStream into InfluxDB in batches; its stop
// waits for the last batch to be written.
func (a *App) startWriter(js jetstream.JetStream, in *influx.Client, reg *devices.Registry) (*writer.Writer, func(context.Context), error) {
	cfg := a.Config
	w, err := writer.New(writer.Options{JS: js, Store: in, BatchSize: cfg.BatchSize,
		BatchInterval: cfg.BatchInterval, Erased: reg.Erased, Metrics: a.Metrics, Log: a.Log.With().Str("component", "writer").Logger()})
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := a.goRun("writer", func() error { return w.Run(ctx) })
	return w, func(ctx context.Context) { cancel(); waitDone(ctx, done) }, nil
}
