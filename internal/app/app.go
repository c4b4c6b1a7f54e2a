// Package app is carehub's composition root: it builds every component from
// the configuration, starts them in dependency order and stops them in
// reverse. cmd/carehub calls it; integration tests run it in-process.
//
// Start is the table of contents; each component's start function lives in
// the file named after it (nats.go, registry.go, influx.go, writer.go,
// alerts.go, mqtt.go, api.go) and returns what it built and its stop.
package app

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/alerts/settings"
	"github.com/carehub/carehub/api"
	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/ingest"
	"github.com/carehub/carehub/internal/config"
	"github.com/carehub/carehub/internal/influx"
	"github.com/carehub/carehub/internal/metrics"
	"github.com/carehub/carehub/internal/natsx"
	"github.com/carehub/carehub/internal/redact"
)

// App is a running carehub.
type App struct {
	Config   config.Config
	Log      zerolog.Logger
	Metrics  *metrics.Registry
	NC       *nats.Conn
	JS       jetstream.JetStream
	Registry *devices.Registry
	Presence *devices.PresenceTracker
	Influx   *influx.Client
	Intake   *ingest.Intake
	Alerts   *alerts.Manager
	Settings *settings.Store
	API      *api.Server

	clock      func() time.Time
	natsServer *natsx.Embedded
	broker     *broker
	httpAddr   string
	leases     jetstream.KeyValue // model.BucketLeases

	// stops run in reverse order of start-up.
	mu    sync.Mutex
	stops stack
	errs  chan error
}

// MQTTURL is where devices connect (the embedded broker's real address, or
// the external broker).
func (a *App) MQTTURL() string {
	if a.broker == nil {
		return a.Config.MQTTURL
	}
	return a.broker.url
}

// MQTTTLSAddr is the embedded broker's TLS listener address ("" without
// one, or with an external broker).
func (a *App) MQTTTLSAddr() string {
	if a.broker == nil || a.broker.embedded == nil {
		return ""
	}
	return a.broker.embedded.TLSAddr()
}

// HTTPAddr is the API's real listen address.
func (a *App) HTTPAddr() string { return a.httpAddr }

// NATSURL is the NATS server's client URL, without credentials: the
// embedded server requires NATSOptions to log in.
func (a *App) NATSURL() string {
	if a.natsServer != nil {
		return a.natsServer.ClientURL()
	}
	urls := a.Config.NATSURLs()
	for i, u := range urls {
		urls[i] = redact.URL(u)
	}
	return strings.Join(urls, ",")
}

// NATSOptions log a nats.go client in to the embedded server as carehub's
// own user (tests and local tools); nil with an external server.
func (a *App) NATSOptions() []nats.Option {
	if a.natsServer != nil {
		return a.natsServer.ConnectOptions()
	}
	return nil
}

// Option changes how Start builds carehub; tests use them.
type Option func(*startOptions)

type startOptions struct{ clock func() time.Time }

// WithClock makes the alert engine, escalation and the API tell time by
// clock: tests move it instead of waiting minutes or hours.
func WithClock(clock func() time.Time) Option { return func(o *startOptions) { o.clock = clock } }

// Start builds and starts carehub, one component after the other in
// dependency order; Close stops them in reverse. On error everything
// started so far is stopped again. stdout receives the one-time generated
// admin token.
func Start(ctx context.Context, cfg config.Config, log zerolog.Logger, stdout io.Writer, opts ...Option) (_ *App, err error) {
	so := startOptions{clock: time.Now}
	for _, o := range opts {
		o(&so)
	}
	a := &App{Config: cfg, Log: log, Metrics: metrics.New(), clock: so.clock, errs: make(chan error, 8)}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	if cfg.AdminToken == "" {
		a.Config.AdminToken = randomSecret()
		fmt.Fprintf(stdout, "CARE_ADMIN_TOKEN was not set; this run's admin token is:\n  %s\n", a.Config.AdminToken)
	}
	serverTLS, clientTLS, err := tlsConfigs(cfg)
	if err != nil {
		return nil, err
	}

	// NATS first: the registry, streams and alert state live there.
	n, stop, err := a.startNATS(ctx, serverTLS)
	if err != nil {
		return nil, err
	}
	a.onStop(stop)
	a.natsServer, a.NC, a.JS = n.server, n.nc, n.js

	if a.Registry, stop, err = a.startRegistry(ctx, n.js); err != nil {
		return nil, err
	}
	a.onStop(stop)
	if a.Presence, stop, err = a.startPresence(ctx, n.js, a.Registry); err != nil {
		return nil, err
	}
	a.onStop(stop)

	if a.Influx, stop, err = a.startInflux(ctx, clientTLS); err != nil {
		return nil, err
	}
	a.onStop(stop)

	// The writer drains JetStream into InfluxDB. It stops after the intake,
	// so what the intake confirmed is written before carehub exits.
	writer, stop, err := a.startWriter(n.js, a.Influx, a.Registry)
	if err != nil {
		return nil, err
	}
	a.onStop(stop)

	// The alert engine is another durable consumer of the same streams; it
	// hands its signals to the manager, which owns alerts and delivers
	// their transitions. Of several instances only the alert leader (the
	// holder of the lease) runs the engine and escalates; every instance's
	// manager serves reads and people's actions. The engine stops first,
	// so the manager delivers what the engine raised last.
	if a.Settings, stop, err = a.openSettings(ctx, n.js); err != nil {
		return nil, err
	}
	a.onStop(stop)
	alertLease, err := a.openAlertLease(ctx, n.js)
	if err != nil {
		return nil, err
	}
	alertOpts := alerts.Options{JS: n.js, NC: n.nc, Settings: a.Settings, Clock: a.clock,
		Log: log.With().Str("component", "alerts").Logger(), Metrics: a.Metrics, Residents: a.Registry, Leads: alertLease.Held}
	if a.Alerts, stop, err = a.startAlertManager(ctx, alertOpts); err != nil {
		return nil, err
	}
	a.onStop(stop)
	engine, stop, err := a.startAlertEngine(ctx, alertLease, alertOpts, a.Settings, a.Alerts, a.Registry)
	if err != nil {
		return nil, err
	}
	a.onStop(stop)

	// MQTT last: from here on devices' messages flow. The intake exists
	// before any broker feeds it; its context ends first on shutdown, so
	// the embedded broker stops acknowledging devices' messages carehub can
	// no longer store.
	if a.Intake, err = a.newIntake(n, a.Registry, a.Presence); err != nil {
		return nil, err
	}
	intakeCtx, stopIntake := context.WithCancel(context.Background())
	a.onStop(func(context.Context) { stopIntake() }) // if start-up fails before the subscriber runs
	if a.broker, stop, err = a.startMQTT(ctx, intakeCtx, clientTLS, a.Registry, a.Intake); err != nil {
		return nil, err
	}
	a.onStop(stop)
	sub, err := a.newSubscriber(a.broker, clientTLS, a.Intake)
	if err != nil {
		return nil, err
	}

	// Care workers' phones: pushes follow every alert transition.
	push, stop, err := a.startPush(ctx, n.js, a.Registry, a.Alerts)
	if err != nil {
		return nil, err
	}
	a.onStop(stop)

	// The API starts before the subscriber so /readyz can say what is missing.
	if a.API, a.httpAddr, stop, err = a.startAPI(ctx, serverTLS, apiParts{nats: n, registry: a.Registry, presence: a.Presence,
		influx: a.Influx, writer: writer, alerts: a.Alerts, settings: a.Settings, engine: engine, broker: a.broker, subscriber: sub, push: push}); err != nil {
		return nil, err
	}
	a.onStop(stop)

	a.onStop(a.startSubscriber(intakeCtx, sub, stopIntake))
	// With several instances on shared brokers, the alert leader drains
	// the MQTT sessions of those that are down (adopt.go).
	if stop, err = a.startSessionAdoption(ctx, n.js, alertLease, a.broker, clientTLS, a.Intake); err != nil {
		return nil, err
	}
	a.onStop(stop)

	log.Info().Str("http", a.httpAddr).Bool("https", serverTLS != nil).Str("mqtt", redact.URL(a.MQTTURL())).Str("nats", a.NATSURL()).
		Str("influxdb", redact.URL(cfg.InfluxURL)).Str("bucket", a.Influx.Bucket()).Msg("carehub started")
	return a, nil
}

// Wait blocks until ctx ends or a component fails, then stops everything in
// reverse order of start-up: intake first, then the API, the alert engine
// and manager, the writer drains, then InfluxDB, the registry and NATS.
func (a *App) Wait(ctx context.Context) error {
	var err error
	select {
	case <-ctx.Done():
	case err = <-a.errs:
		a.Log.Error().Err(redact.Err(err)).Msg("component failed; shutting down")
	}
	a.Close()
	return err
}

// stopTimeout bounds a shutdown: Close's, or a failed start function's.
const stopTimeout = 30 * time.Second

// Close stops everything in reverse order of start-up, within 30 s.
func (a *App) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	a.mu.Lock()
	stops := a.stops
	a.stops = nil
	a.mu.Unlock()
	stops.stop(ctx)
}

func (a *App) onStop(f func(ctx context.Context)) {
	a.mu.Lock()
	a.stops.push(f)
	a.mu.Unlock()
}

// goRun runs a component; its unexpected end is reported to Wait.
func (a *App) goRun(name string, f func() error) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := f(); err != nil {
			select {
			case a.errs <- fmt.Errorf("%s: %w", name, err):
			default:
			}
		}
	}()
	return done
}

// stack holds stops, to be run last first. A start function collects its
// parts' stops on one and returns stack.stop as the component's stop.
type stack []func(ctx context.Context)

func (s *stack) push(f func(ctx context.Context)) { *s = append(*s, f) }

// stop runs the stops in reverse order of push.
func (s stack) stop(ctx context.Context) {
	for i := len(s) - 1; i >= 0; i-- {
		s[i](ctx)
	}
}

// unwindIf stops what was pushed when *err is set: a start function that
// fails leaves nothing of its component running. Defer it.
func (s *stack) unwindIf(err *error) {
	if *err == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	s.stop(ctx)
}

func waitDone(ctx context.Context, done <-chan struct{}) {
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// tlsConfigs are carehub's own server TLS (nil without CARE_TLS_CERT_FILE)
// and, for outgoing tls://, ssl:// and https:// connections, a client
// configuration trusting CARE_TLS_CA_FILE; nil leaves each client's default
// (system CAs).
func tlsConfigs(cfg config.Config) (server, client *tls.Config, err error) {
	if server, err = cfg.ServerTLS(); err != nil {
		return nil, nil, err
	}
	if cfg.TLSCAFile != "" {
		if client, err = cfg.ClientTLS(); err != nil {
			return nil, nil, err
		}
	}
	return server, client, nil
}

// randomSecret is a fresh 192-bit secret: the admin token or the embedded
// broker's service password when none is configured.
func randomSecret() string {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // the system's randomness source is broken: nothing is safe
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}
