package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/internal/config"
	"github.com/carehub/carehub/internal/kv"
	"github.com/carehub/carehub/internal/natsx"
	"github.com/carehub/carehub/internal/redact"
	"github.com/carehub/carehub/internal/tlsx"
)

// natsParts is what startNATS built.
type natsParts struct {
	server *natsx.Embedded // nil with an external server
	nc     *nats.Conn
	js     jetstream.JetStream
	// events is the connection events are published on: one of their
	// own (issue 9 item 7), so an SOS is not queued behind a telemetry
	// backlog on the socket.
	events  *nats.Conn
	streams natsx.StreamOptions
}

// startNATS starts the embedded NATS server (without CARE_NATS_URL),
// connects carehub to it or to the external one, declares the streams,
// watches the store's fill, and opens events' own connection.
func (a *App) startNATS(ctx context.Context, serverTLS *tls.Config) (_ *natsParts, stop func(context.Context), err error) {
	cfg, log := a.Config, a.Log
	var st stack
	defer st.unwindIf(&err)
	n := &natsParts{}

	url, opts := cfg.NATSURL, []nats.Option(nil)
	if cfg.EmbeddedNATS() {
		maxStore := cfg.NATSMaxStore
		if maxStore == 0 {
			maxStore = cfg.StreamOptions().MinStore()
		}
		ns, err := natsx.StartEmbedded(natsx.EmbeddedOptions{DataDir: cfg.DataDir, Listen: cfg.NATSListen,
			UsersFile: cfg.NATSUsersFile, TLS: serverTLS, EncryptionKey: cfg.NATSEncryptionKey, MaxStore: maxStore,
			Log: log.With().Str("component", "nats").Logger()})
		if err != nil {
			return nil, nil, err
		}
		n.server = ns
		url, opts = ns.ClientURL(), ns.ConnectOptions()
		st.push(func(context.Context) { ns.Shutdown(); ns.WaitForShutdown() })
	} else if opts, err = externalNATSOptions(cfg); err != nil {
		return nil, nil, err
	}

	// Even the embedded server is reached over loopback TCP, not with
	// nats.InProcessServer: its net.Pipe hands every write over to the
	// reading goroutine synchronously, and a reading takes several such
	// hand-overs (publish, PubAck, two deliveries, two acks). make
	// bench-ingest stored 21,000-25,000 msgs/s at 48-55 µs of CPU a message
	// through the pipe, 32,000-33,000 at 34-35 µs over TCP.
	nc, err := natsx.Connect(url, "carehub-"+cfg.InstanceID, log, opts...)
	if err != nil {
		return nil, nil, redact.Err(fmt.Errorf("connect to NATS at %s: %w (is it running? unset CARE_NATS_URL for the embedded one)", url, err))
	}
	n.nc = nc
	st.push(func(context.Context) { _ = nc.Drain(); waitClosed(nc, 10*time.Second) })
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, nil, err
	}
	// Every stream and bucket in CARE_NATS_REPLICAS copies; a changed count
	// is applied to the existing ones here.
	n.js = kv.WithReplicas(js, cfg.NATSReplicas)
	n.streams = cfg.StreamOptions()
	if err := natsx.EnsureStreams(ctx, n.js, n.streams); err != nil {
		return nil, nil, err
	}

	// The store's fill as metrics, and a warning before it is full.
	var storeLimit int64
	if n.server != nil {
		storeLimit = n.server.JetStreamConfig().MaxStore
	}
	storeCtx, storeCancel := context.WithCancel(context.Background())
	sw := &natsx.StoreWatch{JS: n.js, Limit: storeLimit, Metrics: a.Metrics, Log: log.With().Str("component", "jetstream-store").Logger()}
	a.goRun("jetstream-store", func() error { sw.Run(storeCtx); return nil })
	st.push(func(context.Context) { storeCancel() })

	events, err := natsx.Connect(url, "carehub-"+cfg.InstanceID+"-events", log, opts...)
	if err != nil {
		return nil, nil, redact.Err(fmt.Errorf("connect to NATS at %s for events: %w", url, err))
	}
	n.events = events
	st.push(func(context.Context) { _ = events.Drain(); waitClosed(events, 10*time.Second) })
	return n, st.stop, nil
}

func waitClosed(nc *nats.Conn, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for !nc.IsClosed() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	nc.Close()
}

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

// externalNATSOptions log carehub in to an external NATS server
// (CARE_NATS_USERNAME/_PASSWORD or CARE_NATS_CREDS_FILE) and make tls://
// trust CARE_TLS_CA_FILE.
func externalNATSOptions(cfg config.Config) ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case cfg.NATSCredsFile != "":
		opts = append(opts, nats.UserCredentials(cfg.NATSCredsFile))
	case cfg.NATSUsername != "":
		opts = append(opts, nats.UserInfo(cfg.NATSUsername, cfg.NATSPassword))
	}
	if slices.ContainsFunc(cfg.NATSURLs(), func(u string) bool { return strings.HasPrefix(u, "tls://") }) {
		ct, err := cfg.ClientTLS()
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Secure(ct))
	}
	return opts, nil
}
