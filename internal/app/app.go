// Package app is carehub's composition root: it builds every component from
// the configuration, starts them in dependency order and stops them in
// reverse. cmd/carehub calls it; integration tests run it in-process.
package app

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/api"
	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/ingest"
	"github.com/carehub/carehub/internal/audit"
	"github.com/carehub/carehub/internal/config"
	"github.com/carehub/carehub/internal/dynsec"
	"github.com/carehub/carehub/internal/influx"
	"github.com/carehub/carehub/internal/metrics"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/mqttbroker"
	"github.com/carehub/carehub/internal/natsx"
	"github.com/carehub/carehub/internal/query"
	"github.com/carehub/carehub/internal/redact"
	"github.com/carehub/carehub/internal/tlsx"
	"github.com/carehub/carehub/internal/users"
	"github.com/carehub/carehub/web"
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
	Pipeline *ingest.Pipeline
	Alerts   *alerts.Manager
	Settings *alerts.SettingsStore
	API      *api.Server

	natsServer *natsx.Embedded
	broker     *mqttbroker.Broker
	mqttURL    string
	httpAddr   string

	// stops run in reverse order of start-up.
	mu    sync.Mutex
	stops []func(ctx context.Context)
	errs  chan error
}

// MQTTURL is where devices connect (the embedded broker's real address, or
// the external broker).
func (a *App) MQTTURL() string { return a.mqttURL }

// MQTTTLSAddr is the embedded broker's TLS listener address ("" without
// one, or with an external broker).
func (a *App) MQTTTLSAddr() string {
	if a.broker == nil {
		return ""
	}
	return a.broker.TLSAddr()
}

// HTTPAddr is the API's real listen address.
func (a *App) HTTPAddr() string { return a.httpAddr }

// NATSURL is the NATS server's client URL, without credentials: the
// embedded server requires NATSOptions to log in.
func (a *App) NATSURL() string {
	if a.natsServer != nil {
		return a.natsServer.ClientURL()
	}
	return redact.URL(a.Config.NATSURL)
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

// Start builds and starts carehub. On error everything started so far is
// stopped again. stdout receives the one-time generated admin token.
func Start(ctx context.Context, cfg config.Config, log zerolog.Logger, stdout io.Writer, opts ...Option) (_ *App, err error) {
	so := startOptions{clock: time.Now}
	for _, o := range opts {
		o(&so)
	}
	a := &App{Config: cfg, Log: log, Metrics: metrics.New(), errs: make(chan error, 8)}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	clock := so.clock

	if cfg.AdminToken == "" {
		cfg.AdminToken = randomSecret()
		a.Config.AdminToken = cfg.AdminToken
		fmt.Fprintf(stdout, "CARE_ADMIN_TOKEN was not set; this run's admin token is:\n  %s\n", cfg.AdminToken)
	}

	// NATS first: the registry, streams and alert state live there.
	serverTLS, err := cfg.ServerTLS()
	if err != nil {
		return nil, err
	}
	// clientTLS trusts CARE_TLS_CA_FILE for outgoing tls://, ssl:// and
	// https:// connections; nil leaves each client's default (system CAs).
	var clientTLS *tls.Config
	if cfg.TLSCAFile != "" {
		if clientTLS, err = cfg.ClientTLS(); err != nil {
			return nil, err
		}
	}
	natsURL, natsOpts := cfg.NATSURL, []nats.Option(nil)
	if cfg.EmbeddedNATS() {
		maxStore := cfg.NATSMaxStore
		if maxStore == 0 {
			maxStore = cfg.StreamOptions().MinStore()
		}
		ns, err := natsx.StartEmbedded(natsx.EmbeddedOptions{DataDir: cfg.DataDir, Listen: cfg.NATSListen,
			UsersFile: cfg.NATSUsersFile, TLS: serverTLS, EncryptionKey: cfg.NATSEncryptionKey, MaxStore: maxStore,
			Log: log.With().Str("component", "nats").Logger()})
		if err != nil {
			return nil, err
		}
		a.natsServer = ns
		natsURL, natsOpts = ns.ClientURL(), ns.ConnectOptions()
		a.onStop(func(context.Context) { ns.Shutdown(); ns.WaitForShutdown() })
	} else {
		if natsOpts, err = externalNATSOptions(cfg); err != nil {
			return nil, err
		}
	}
	// Even the embedded server is reached over loopback TCP, not with
	// nats.InProcessServer: its net.Pipe hands every write over to the
	// reading goroutine synchronously, and a reading takes several such
	// hand-overs (publish, PubAck, two deliveries, two acks). make
	// bench-ingest stored 21,000-25,000 msgs/s at 48-55 µs of CPU a message
	// through the pipe, 32,000-33,000 at 34-35 µs over TCP.
	nc, err := natsx.Connect(natsURL, "carehub-"+cfg.InstanceID, log, natsOpts...)
	if err != nil {
		return nil, redact.Err(fmt.Errorf("connect to NATS at %s: %w (is it running? unset CARE_NATS_URL for the embedded one)", natsURL, err))
	}
	a.NC = nc
	a.onStop(func(context.Context) { _ = nc.Drain(); waitClosed(nc, 10*time.Second) })
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	a.JS = js
	streams := natsx.DefaultStreamOptions
	streams.BufferAge, streams.AuditAge = cfg.BufferAge, cfg.AuditRetention
	streams.MaxBytes = cfg.StreamMaxBytes
	if err := natsx.EnsureStreams(ctx, js, streams); err != nil {
		return nil, err
	}
	// The store's fill as metrics, and a warning before it is full.
	var storeLimit int64
	if a.natsServer != nil {
		storeLimit = a.natsServer.JetStreamConfig().MaxStore
	}
	storeCtx, storeCancel := context.WithCancel(context.Background())
	sw := &natsx.StoreWatch{JS: js, Limit: storeLimit, Metrics: a.Metrics, Log: log.With().Str("component", "jetstream-store").Logger()}
	a.goRun("jetstream-store", func() error { sw.Run(storeCtx); return nil })
	a.onStop(func(context.Context) { storeCancel() })
	// Events get a NATS connection of their own (issue 9 item 7): an SOS
	// is not queued behind a telemetry backlog on the socket.
	eventNC, err := natsx.Connect(natsURL, "carehub-"+cfg.InstanceID+"-events", log, natsOpts...)
	if err != nil {
		return nil, redact.Err(fmt.Errorf("connect to NATS at %s for events: %w", natsURL, err))
	}
	a.onStop(func(context.Context) { _ = eventNC.Drain(); waitClosed(eventNC, 10*time.Second) })

	reg, err := devices.Open(ctx, js, log.With().Str("component", "registry").Logger(), clock)
	if err != nil {
		return nil, err
	}
	a.Registry = reg
	a.onStop(func(context.Context) { reg.Close() })

	pres, err := devices.NewPresenceTracker(ctx, js, reg, log, devices.PresenceOptions{})
	if err != nil {
		return nil, err
	}
	a.Presence = pres
	presCtx, presCancel := context.WithCancel(context.Background())
	a.goRun("presence", func() error { pres.Run(presCtx); return nil })
	a.onStop(func(ctx context.Context) { presCancel(); _ = pres.Close(ctx) })

	in, err := influx.Open(ctx, influx.Options{URL: cfg.InfluxURL, Token: cfg.InfluxToken, Org: cfg.InfluxOrg,
		Bucket: cfg.InfluxBucket, Version: cfg.InfluxVersion, RawRetention: cfg.RawRetention, TLS: clientTLS,
		Log: log.With().Str("component", "influx").Logger()})
	if err != nil {
		return nil, err
	}
	a.Influx = in
	a.onStop(func(context.Context) { in.Close() })

	// The writer drains JetStream into InfluxDB. It stops after the intake,
	// so what the intake confirmed is written before carehub exits.
	writer, err := ingest.NewWriter(ingest.WriterOptions{JS: js, Store: in, BatchSize: cfg.BatchSize,
		BatchInterval: cfg.BatchInterval, Erased: reg.Erased, Metrics: a.Metrics, Log: log.With().Str("component", "writer").Logger()})
	if err != nil {
		return nil, err
	}
	writerCtx, writerCancel := context.WithCancel(context.Background())
	writerDone := a.goRun("writer", func() error { return writer.Run(writerCtx) })
	a.onStop(func(ctx context.Context) { writerCancel(); waitDone(ctx, writerDone) })

	// The alert engine is another durable consumer of the same streams.
	settings, err := alerts.OpenSettingsStore(ctx, js, log.With().Str("component", "settings").Logger())
	if err != nil {
		return nil, err
	}
	a.Settings = settings
	a.onStop(func(context.Context) { settings.Close() })
	evaluator := rules.NewEvaluator(cfg.Timezone, settings)
	alertOpts := alerts.Options{JS: js, NC: nc, Points: in, Evaluator: evaluator, Settings: settings, Clock: clock,
		Log: log.With().Str("component", "alerts").Logger(), Metrics: a.Metrics, Residents: reg}
	mgr, err := alerts.NewManager(ctx, alertOpts)
	if err != nil {
		return nil, err
	}
	a.Alerts = mgr
	engine, err := alerts.NewEngine(ctx, alertOpts, mgr)
	if err != nil {
		return nil, err
	}
	alertsCtx, alertsCancel := context.WithCancel(context.Background())
	alertsDone := a.goRun("alerts", func() error { return engine.Run(alertsCtx) })
	a.onStop(func(ctx context.Context) { alertsCancel(); waitDone(ctx, alertsDone) })
	a.goRun("device-sync", func() error { syncDevices(alertsCtx, reg, evaluator); return nil })

	// MQTT last: from here on devices' messages flow.
	svcUser, svcPass := cfg.MQTTUsername, cfg.MQTTPassword
	var pipeline *ingest.Pipeline
	pipelineReady := make(chan struct{}) // closed once pipeline is set
	// The intake's context ends first on shutdown: the embedded broker
	// then stops acknowledging devices' messages it can no longer store.
	intakeCtx, intakeCancel := context.WithCancel(context.Background())
	a.onStop(func(context.Context) { intakeCancel() }) // if start-up fails before the intake runs
	a.mqttURL = cfg.MQTTURL
	if cfg.MQTTProvision == "dynsec" {
		// Devices' credentials reach the external Mosquitto as they are
		// issued; carehub's own user gets the service role first, so that
		// ingest may subscribe.
		ds, err := dynsec.Dial(ctx, dynsec.Options{BrokerURL: cfg.MQTTURL, Username: cfg.MQTTDynsecUsername, Password: cfg.MQTTDynsecPassword,
			ServiceUser: svcUser, ServicePassword: svcPass,
			ClientID: cfg.InstanceID + "-dynsec", ShareGroup: cfg.MQTTShareGroup, TLS: clientTLS, Log: log.With().Str("component", "dynsec").Logger()})
		if err != nil {
			return nil, err
		}
		a.onStop(func(context.Context) { ds.Close() })
		if err := ds.EnsureService(ctx); err != nil {
			return nil, err
		}
		reg.MirrorAccounts(ds)
		if err := reg.SyncDisabled(ctx); err != nil {
			log.Warn().Err(err).Msg("disabled devices not all disabled at the broker; the next start tries again")
		}
	}
	if cfg.EmbeddedMQTT() {
		if svcUser == "" {
			svcUser, svcPass = "carehub-"+cfg.InstanceID, randomSecret()
		}
		var tlsConf *tls.Config
		if cfg.MQTTTLSListen != "" {
			cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
			if err != nil {
				return nil, fmt.Errorf("mqtt tls: %w", err)
			}
			tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		}
		refused := a.Metrics.Counter("carehub_mqtt_refused_total", "Connections the embedded MQTT broker refused or closed before a device login, by reason.", "reason")
		b, err := mqttbroker.Start(mqttbroker.Options{
			Listen: cfg.MQTTListen, DataDir: cfg.DataDir, ServiceUser: svcUser, ServicePassword: svcPass,
			Authenticator: reg,
			OnDenied: func(clientID, topic, reason string) {
				if pipeline != nil {
					pipeline.Reject(clientID, topic, "mqtt", reason, brokerDenialDetail(reason, topic, cfg.MaxPayload))
				}
			},
			OnRefused:  func(reason string) { refused.With(reason).Inc() },
			MaxPayload: cfg.MaxPayload, MaxConnections: cfg.MQTTMaxConnections, MaxConnectionsPerAddr: cfg.MQTTMaxConnectionsPerAddr,
			TLSListen: cfg.MQTTTLSListen, TLSConfig: tlsConf,
			// In-process, a device's message is stored before the broker
			// acknowledges it (ingest.Pipeline.Ingest).
			Intake: func(topic string, payload []byte, contentType string) error {
				select {
				case <-pipelineReady:
				case <-intakeCtx.Done():
					return intakeCtx.Err()
				}
				return pipeline.Ingest(intakeCtx, topic, payload, contentType)
			},
			Log: log.With().Str("component", "mqtt-broker").Logger(),
		})
		if err != nil {
			return nil, err
		}
		a.broker = b
		a.mqttURL = "tcp://" + b.Addr()
		a.onStop(func(context.Context) { _ = b.Close() })
	}
	reg.ReserveIDs(reservedDeviceIDs(svcUser, cfg.MQTTDynsecUsername))
	pipeline, err = ingest.NewPipeline(ingest.PipelineOptions{
		BrokerURL: a.mqttURL, Username: svcUser, Password: svcPass, ShareGroup: cfg.MQTTShareGroup,
		Connections: cfg.MQTTConnections, InstanceID: cfg.InstanceID, TLS: clientTLS, NC: nc, EventNC: eventNC, Devices: reg, Presence: pres,
		Limits: ingest.Limits{MaxPayload: cfg.MaxPayload, MaxFuture: cfg.MaxFuture, MaxAge: cfg.RawRetention, MaxRecords: cfg.MaxRecords}, Clock: clock,
		Quota: ingest.Quota{Rate: float64(cfg.DeviceRate), Burst: float64(cfg.DeviceBurst),
			EventRate: float64(cfg.DeviceEventRate), EventBurst: float64(cfg.DeviceEventBurst)},
		Metrics: a.Metrics, Log: log.With().Str("component", "ingest").Logger(),
	})
	if err != nil {
		return nil, err
	}
	a.Pipeline = pipeline
	close(pipelineReady)

	// The API starts before the intake so /readyz can say what is missing.
	userStore, err := users.Open(ctx, js, clock)
	if err != nil {
		return nil, err
	}
	auditLog := audit.New(js, clock)
	// Erasure closes an erased device's session on the embedded broker;
	// with an external one it cannot, and ingest rejects the device's
	// messages as from an unknown device (contract §1). With
	// CARE_MQTT_PROVISION=dynsec the broker disconnects it when the
	// registry disables it.
	var kicker api.DeviceKicker
	if a.broker != nil {
		kicker = a.broker
	}
	trends := influx.NewDailyCache(in, baselineCacheTTL, clock)
	console, err := web.New(web.Options{Users: userStore, Location: cfg.Timezone, Clock: clock, Log: log.With().Str("component", "web").Logger(),
		Query: &query.Service{Registry: reg, Series: readingsAdapter{in, cfg.Timezone}, Last: trends, Manager: mgr, Mode: query.ModeFrom(settings), Audit: auditLog, Clock: clock}})
	if err != nil {
		return nil, err
	}
	a.API = api.New(api.Options{
		Session:  console.Session,
		Registry: reg, Readings: readingsAdapter{in, cfg.Timezone}, Audit: auditLog, AuditReader: auditLog, Trends: trends, Export: in, Metrics: a.Metrics,
		AdminToken: cfg.AdminToken, Location: cfg.Timezone, Clock: clock, TrustedProxies: cfg.TrustedProxies, MaxStreamsPerUser: cfg.MaxStreamsPerUser,
		QueryRate: cfg.QueryRate, QueryBurst: cfg.QueryBurst, MaxQueries: cfg.MaxQueries, MaxExports: cfg.MaxExports,
		Users: userStore, Alerts: mgr, AlertStream: js, Chains: mgr.Chains(), Settings: settings, Presence: pres,
		Erasure: api.Erasure{Tombstone: erasureMarker{reg, writer}, Engine: engine, Series: in, Alerts: mgr, Settings: settings, Chains: mgr.Chains(), Presence: pres, Broker: kicker, Streams: js, Retention: streams},
		Log:     log.With().Str("component", "api").Logger(),
		Ready: map[string]api.Check{
			"mqtt": func(context.Context) error { return pipeline.Ready() },
			"nats": func(ctx context.Context) error {
				if !nc.IsConnected() {
					return errors.New("not connected")
				}
				_, err := js.Stream(ctx, model.StreamReadings)
				return err
			},
			"influxdb": func(ctx context.Context) error { return in.Ping(ctx) },
		},
	})
	console.Register(a.API.App(), a.API.Login)
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on CARE_HTTP_ADDR=%s: %w", cfg.HTTPAddr, err)
	}
	a.httpAddr = ln.Addr().String()
	if serverTLS != nil {
		ln = tls.NewListener(ln, serverTLS)
	}
	a.goRun("http", func() error { return a.API.App().Listener(ln) })
	a.onStop(func(context.Context) { _ = a.API.Shutdown(10 * time.Second) })
	warmCtx, warmCancel := context.WithCancel(context.Background())
	warmDone := a.goRun("baselines", func() error { a.API.WarmBaselines(warmCtx, baselineWarmEvery); return nil })
	a.onStop(func(ctx context.Context) { warmCancel(); waitDone(ctx, warmDone) })

	intakeDone := a.goRun("ingest", func() error { return pipeline.Run(intakeCtx) })
	a.onStop(func(ctx context.Context) { intakeCancel(); waitDone(ctx, intakeDone) })

	log.Info().Str("http", a.httpAddr).Bool("https", serverTLS != nil).Str("mqtt", redact.URL(a.mqttURL)).Str("nats", a.NATSURL()).
		Str("influxdb", redact.URL(cfg.InfluxURL)).Str("bucket", in.Bucket()).Msg("carehub started")
	return a, nil
}

// Wait blocks until ctx ends or a component fails, then stops everything in
// reverse order of start-up: intake first, then the writer drains, then the
// API, InfluxDB, the registry and NATS.
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

// Close stops everything in reverse order of start-up, within 30 s.
func (a *App) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a.mu.Lock()
	stops := a.stops
	a.stops = nil
	a.mu.Unlock()
	for i := len(stops) - 1; i >= 0; i-- {
		stops[i](ctx)
	}
}

func (a *App) onStop(f func(ctx context.Context)) {
	a.mu.Lock()
	a.stops = append(a.stops, f)
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

// reservedDeviceIDs is the registry's test for device ids that name one of
// carehub's own broker logins or client ids: the ingest (service) user, the
// dynsec control user, and the client ids instances derive from
// CARE_INSTANCE_ID ({instance}-ingest-{n}, {instance}-dynsec). The derived
// ids are reserved for every instance, not only this one, because instances
// share the broker and the registry. A device registered with one could
// log in as carehub, or take over its session (the broker closes the older
// connection of a client id).
func reservedDeviceIDs(users ...string) func(id string) bool {
	return func(id string) bool {
		for _, u := range users {
			if u != "" && id == u {
				return true
			}
		}
		if strings.HasSuffix(id, "-dynsec") {
			return true
		}
		if i := strings.LastIndex(id, "-ingest-"); i >= 0 {
			n := id[i+len("-ingest-"):]
			return n != "" && strings.Trim(n, "0123456789") == ""
		}
		return false
	}
}

// brokerDenialDetail explains, for the device maker, what the embedded
// broker refused.
func brokerDenialDetail(reason, topic string, maxPayload int) string {
	switch reason {
	case mqttbroker.ReasonUnknownDevice:
		return "login refused: the device id is not registered (POST /api/v1/devices)"
	case mqttbroker.ReasonDisabledDevice:
		return "login refused: the device is disabled"
	case mqttbroker.ReasonAuthFailed:
		return "login refused: wrong password for this device id"
	case mqttbroker.ReasonTooLarge:
		return fmt.Sprintf("payload larger than %d bytes (CARE_MAX_PAYLOAD) on %s: dropped", maxPayload, topic)
	case mqttbroker.ReasonLoginThrottled:
		return "login refused without a password check: too many failed logins of this id from this address, or from this address, in the last minute"
	case mqttbroker.ReasonAuthBusy:
		return "login refused: too many password checks waiting; the device should retry with backoff"
	case mqttbroker.ReasonSubscribeNotAllowed:
		return "subscribe to " + topic + " refused: a device reads only care/v1/dev/{its id}/config"
	case mqttbroker.ReasonWillNotAllowed:
		return "Last Will on " + topic + " refused: it must be the device's own status topic"
	}
	return "publish to " + topic + " refused: a device publishes only under care/v1/dev/{its id}/"
}

// erasureMarker marks a resident erased in the registry, then waits for
// this instance's InfluxDB writes in progress: each checks the marks after
// it began, so once they are done nothing of the resident is written
// behind the erasure's back. Other instances' writers see the mark through
// their registry watcher within milliseconds.
type erasureMarker struct {
	reg    *devices.Registry
	writer *ingest.Writer
}

func (m erasureMarker) MarkErased(ctx context.Context, residentID string) error {
	if err := m.reg.MarkErased(ctx, residentID); err != nil {
		return err
	}
	return m.writer.Fence(ctx)
}

// syncDevices tells the rules which devices each resident has, so a device
// that never reported still counts for "device offline" and "cannot
// monitor". The registry changes rarely; a 30 s refresh is plenty.
func syncDevices(ctx context.Context, reg *devices.Registry, ev *rules.Evaluator) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		byResident := map[string][]rules.DeviceInfo{}
		for _, d := range reg.Devices(func(d devices.Device) bool { return !d.Disabled }) {
			byResident[d.ResidentID] = append(byResident[d.ResidentID], rules.DeviceInfo{ID: d.ID, Kind: d.Kind, HomeID: d.HomeID})
		}
		for _, r := range reg.Residents() {
			ev.SetDevices(r.ID, byResident[r.ID])
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func waitDone(ctx context.Context, done <-chan struct{}) {
	select {
	case <-done:
	case <-ctx.Done():
	}
}

func waitClosed(nc *nats.Conn, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for !nc.IsClosed() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	nc.Close()
}

// externalNATSOptions log carehub in to an external NATS server
// (CARE_NATS_USERNAME/_PASSWORD or CARE_NATS_CREDS_FILE) and make tls://
// trust CARE_TLS_CA_FILE.
// NATSClient says how a separate carehub command (`carehub audit verify`)
// reaches the NATS that a running carehub with this configuration uses:
// the external server with CARE_NATS_* credentials, or the embedded one at
// CARE_NATS_LISTEN as carehub's own user, with the secret from
// CARE_DATA_DIR and the certificate pinned when it serves TLS.
func NATSClient(cfg config.Config) (url string, opts []nats.Option, err error) {
	if !cfg.EmbeddedNATS() {
		opts, err = externalNATSOptions(cfg)
		return cfg.NATSURL, opts, err
	}
	secret, err := natsx.OwnSecret(cfg.DataDir)
	if err != nil {
		return "", nil, err
	}
	url, opts = "nats://"+cfg.NATSListen, []nats.Option{nats.UserInfo(natsx.OwnUser, secret)}
	serverTLS, err := cfg.ServerTLS()
	if err != nil || serverTLS == nil {
		return url, opts, err
	}
	pinned, err := tlsx.Pinned(serverTLS)
	if err != nil {
		return "", nil, err
	}
	return "tls://" + cfg.NATSListen, append(opts, nats.Secure(pinned)), nil
}

func externalNATSOptions(cfg config.Config) ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case cfg.NATSCredsFile != "":
		opts = append(opts, nats.UserCredentials(cfg.NATSCredsFile))
	case cfg.NATSUsername != "":
		opts = append(opts, nats.UserInfo(cfg.NATSUsername, cfg.NATSPassword))
	}
	if strings.HasPrefix(cfg.NATSURL, "tls://") {
		ct, err := cfg.ClientTLS()
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Secure(ct))
	}
	return opts, nil
}

func randomSecret() string {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // the system's randomness source is broken: nothing is safe
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// The overview's baselines are kept fresh for 10 minutes and asked again
// every 5, so a coordinator's overview never waits for them.
const (
	baselineCacheTTL  = 10 * time.Minute
	baselineWarmEvery = 5 * time.Minute
)

// readingsAdapter answers the API's readings queries with Flux; whole-day
// windows are calendar days in the program time zone.
type readingsAdapter struct {
	c   *influx.Client
	loc *time.Location
}

func (r readingsAdapter) Readings(ctx context.Context, q api.ReadingsQuery) ([]api.Point, error) {
	pts, err := r.c.Readings(ctx, influx.ReadingsQuery{ResidentID: q.ResidentID, Metric: q.Metric,
		From: q.From, To: q.To, Every: q.Every, Fn: q.Fn, Location: r.loc})
	if err != nil {
		return nil, err
	}
	out := make([]api.Point, len(pts))
	for i, p := range pts {
		out[i] = api.Point{T: p.T, V: p.V}
	}
	return out, nil
}
