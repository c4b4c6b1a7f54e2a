// Package natsx connects carehub to NATS: it runs the embedded server when no
// external one is configured, and declares the JetStream streams that carry
// readings, events, device status, alerts, dead letters and the audit trail.
package natsx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/coalesce"
	"github.com/carehub/carehub/internal/model"
)

// StartEmbedded runs an in-process NATS server with JetStream, its data under
// dataDir/nats, listening on listen (host:port) so that phone backends and the
// 119 bridge can subscribe too. maxStore caps JetStream's file store in bytes
// (0: the server's default, 75 % of the free disk): past it JetStream
// refuses writes instead of filling the disk that InfluxDB shares.
func StartEmbedded(dataDir, listen string, maxStore int64, log zerolog.Logger) (*server.Server, error) {
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("nats listen address %q: %w", listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("nats listen port %q: %w", portStr, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName: "carehub-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   filepath.Join(dataDir, "nats"),
		NoSigs:     true, // only main handles signals
		NoLog:      true,
		MaxPayload: 8 << 20,
	}
	opts.JetStreamMaxStore = maxStore
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("embedded nats did not become ready within 30s")
	}
	log.Info().Str("url", ns.ClientURL()).Str("store", opts.StoreDir).Msg("embedded nats started")
	return ns, nil
}

// Connect dials NATS with reconnects that never give up: a care service must
// come back by itself after the server restarts. Over plain nats:// its
// small writes (a reading is a publish and two acks) are coalesced:
// docs/performance.md; tls:// keeps nats.go's own dialer.
func Connect(url, name string, log zerolog.Logger, extra ...nats.Option) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectBufSize(64 << 20),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn().Err(err).Msg("nats disconnected")
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info().Str("url", c.ConnectedUrlRedacted()).Msg("nats reconnected")
		}),
	}
	if strings.HasPrefix(url, "nats://") {
		opts = append(opts, nats.SetCustomDialer(coalesce.NATSDialer{}))
	}
	return nats.Connect(url, append(opts, extra...)...)
}

// StreamOptions sizes the streams.
type StreamOptions struct {
	// BufferAge is how long readings, events and status stay in JetStream: the
	// longest InfluxDB outage carehub rides out without losing data.
	BufferAge time.Duration
	// AlertsAge is how long alert transitions stay for phones to catch up.
	AlertsAge time.Duration
	// AuditAge is how long the audit trail is kept (PIPA: at least 2 years).
	AuditAge time.Duration
	Replicas int
	// MaxBytes caps each stream's size by stream name; a stream not named
	// gets DefaultStreamMaxBytes. A stream past its size drops its oldest
	// messages (CARE_AUDIT refuses new ones instead: see StreamConfigs).
	MaxBytes map[string]int64
}

// DefaultStreamMaxBytes are the stream sizes used unless configured
// otherwise (CARE_STREAM_MAX_BYTES). Readings are the bulk: 8 GiB hold
// about 32 million readings of ~250 bytes, 7 days of some 500 devices
// sending one every 10 s; size them to the fleet. Their sum, with room for
// the key-value buckets, is StreamOptions.MinStore.
var DefaultStreamMaxBytes = map[string]int64{
	model.StreamReadings:   8 << 30,
	model.StreamEvents:     1 << 30,
	model.StreamStatus:     1 << 30,
	model.StreamAlerts:     1 << 30,
	model.StreamEscalation: 256 << 20,
	model.StreamDeadLetter: 1 << 30,
	model.StreamAudit:      4 << 30,
}

// kvHeadroom is the store left beside the streams for carehub's key-value
// buckets (registry, users, tokens, alert state) and the JetStream metadata.
const kvHeadroom = 4 << 30

// MaxBytesFor returns the configured or default size of a stream.
func (o StreamOptions) MaxBytesFor(stream string) int64 {
	if n, ok := o.MaxBytes[stream]; ok && n > 0 {
		return n
	}
	return DefaultStreamMaxBytes[stream]
}

// MinStore is the smallest JetStream store that holds every stream at its
// size plus the key-value buckets: JetStream reserves each stream's
// MaxBytes when the stream is created and refuses a stream that does not
// fit.
func (o StreamOptions) MinStore() int64 {
	var sum int64 = kvHeadroom
	for _, name := range StreamNames {
		sum += o.MaxBytesFor(name)
	}
	return sum
}

// StreamNames lists every stream carehub creates.
var StreamNames = []string{model.StreamReadings, model.StreamEvents, model.StreamStatus, model.StreamAlerts,
	model.StreamEscalation, model.StreamDeadLetter, model.StreamAudit}

// DefaultStreamOptions are the sizes used unless configured otherwise.
var DefaultStreamOptions = StreamOptions{
	BufferAge: 7 * 24 * time.Hour,
	AlertsAge: 90 * 24 * time.Hour,
	AuditAge:  2 * 365 * 24 * time.Hour,
	Replicas:  1,
}

// StreamConfigs returns the configuration of every carehub stream.
func StreamConfigs(o StreamOptions) []jetstream.StreamConfig {
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	base := func(name, subject, desc string, age time.Duration) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name:        name,
			Description: desc,
			Subjects:    []string{subject},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			MaxAge:      age,
			MaxBytes:    o.MaxBytesFor(name),
			Replicas:    o.Replicas,
			Discard:     jetstream.DiscardOld,
			// A short window: readings are idempotent in InfluxDB and carry no
			// message id; events and alerts do, and repeat within seconds.
			Duplicates: 2 * time.Minute,
		}
	}
	audit := base(model.StreamAudit, model.SubjectAuditAll, "who read or changed which resident's data (append-only)", o.AuditAge)
	audit.DenyDelete = true
	audit.DenyPurge = true
	// A full audit trail refuses new entries rather than losing old ones:
	// the access trail must be kept (PIPA), and the store metric warns
	// long before (WatchStore).
	audit.Discard = jetstream.DiscardNew
	// Alert transitions may be re-published from the outbox after a long
	// NATS outage: a longer window keeps the stream free of duplicates.
	alertsCfg := base(model.StreamAlerts, model.SubjectAlertsAll, "alert lifecycle transitions", o.AlertsAge)
	alertsCfg.Duplicates = time.Hour
	// care.readings.> covers the batches on care.readings.batch.{resident}
	// (model.ReadingBatchSubject): a second, overlapping subject would only
	// be refused by the server.
	readings := base(model.StreamReadings, model.SubjectReadingsAll, "normalized device readings, single and batched", o.BufferAge)
	return []jetstream.StreamConfig{
		readings,
		base(model.StreamEvents, model.SubjectEventsAll, "device events", o.BufferAge),
		base(model.StreamStatus, model.SubjectStatusAll, "device presence and health", o.BufferAge),
		alertsCfg,
		// The 119 bridge may be down when an alert reaches the emergency
		// tier: the stream keeps the call for it to catch up.
		base(model.StreamEscalation, model.SubjectEscalationAll, "alerts handed to the emergency (119) bridge", o.AlertsAge),
		base(model.StreamDeadLetter, model.SubjectDeadLetterAll, "points InfluxDB refused, with the reason", o.BufferAge),
		audit,
	}
}

// EnsureStreams creates the streams, or updates them to the configuration.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, o StreamOptions) error {
	for _, cfg := range StreamConfigs(o) {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("stream %s: %w", cfg.Name, err)
		}
	}
	return nil
}
