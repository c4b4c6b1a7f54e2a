package app

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/devices"
)

// startRegistry opens the registry of homes, residents and devices, and
// follows its changes in KV until stopped.
func (a *App) startRegistry(ctx context.Context, js jetstream.JetStream) (*devices.Registry, func(context.Context), error) {
	reg, err := devices.Open(ctx, js, a.Log.With().Str("component", "registry").Logger(), a.clock)
	if err != nil {
		return nil, nil, err
	}
	return reg, func(context.Context) { reg.Close() }, nil
}

// startPresence starts tracking which devices are online, from their
// status messages and the messages ingest confirms.
func (a *App) startPresence(ctx context.Context, js jetstream.JetStream, reg *devices.Registry) (*devices.PresenceTracker, func(context.Context), error) {
	pres, err := devices.NewPresenceTracker(ctx, js, reg, a.Log, devices.PresenceOptions{})
	if err != nil {
		return nil, nil, err
	}
	presCtx, presCancel := context.WithCancel(context.Background())
	a.goRun("presence", func() error { pres.Run(presCtx); return nil })
	return pres, func(ctx context.Context) { presCancel(); _ = pres.Close(ctx) }, nil
}
