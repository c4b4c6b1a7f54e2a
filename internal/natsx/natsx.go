// Package natsx connects carehub to NATS: it runs the embedded server when no
// external one is configured, and declares the JetStream streams that carry
// readings, events, device status, alerts, dead letters and the audit trail.
package natsx

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
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
	"github.com/carehub/carehub/internal/redact"
	"github.com/carehub/carehub/internal/tlsx"
)

// OwnUser is the user carehub's own connection to its embedded server
// logs in as; its password is generated once and kept in SecretFile.
const OwnUser = "carehub"

// SecretFile is where, under CARE_DATA_DIR, the embedded server's carehub
// password is kept (mode 0600) so that it survives restarts and local tools
// (carebench, an operator's nats CLI) can read it.
const SecretFile = "nats-carehub.secret"

// EmbeddedOptions configure the in-process NATS server.
type EmbeddedOptions struct {
	DataDir string // JetStream store under DataDir/nats, the secret in DataDir/SecretFile
	Listen  string // host:port; port 0 = any free port
	// UsersFile is an optional nats-server configuration file whose
	// authorization { users: [...] } block adds users such as the phones
	// backend and the 119 bridge (deploy/nats/embedded-users.conf).
	UsersFile string
	// TLS, when set, makes the listener TLS-only.
	TLS *tls.Config
	// EncryptionKey, when set, encrypts JetStream's store at rest (AES-GCM).
	EncryptionKey string
	// MaxStore caps JetStream's file store in bytes (0: the server's
	// default, 75 % of the free disk): past it JetStream refuses writes
	// instead of filling the disk that InfluxDB shares.
	MaxStore int64
	Log      zerolog.Logger
}

// Embedded is a running in-process NATS server and how carehub logs in.
type Embedded struct {
	*server.Server
	Password  string      // OwnUser's password
	clientTLS *tls.Config // pins the server's certificate; nil without TLS
}

// ClientURL is the server's address without credentials: tls:// when the
// listener is TLS.
func (e *Embedded) ClientURL() string {
	u := e.Server.ClientURL() // nats-server names the scheme after its TLS
	if e.clientTLS != nil && strings.HasPrefix(u, "nats://") {
		u = "tls://" + strings.TrimPrefix(u, "nats://")
	}
	return u
}

// ConnectOptions log a nats.go client in as carehub's own user, trusting the
// server's TLS certificate when it has one.
func (e *Embedded) ConnectOptions() []nats.Option {
	opts := []nats.Option{nats.UserInfo(OwnUser, e.Password)}
	if e.clientTLS != nil {
		opts = append(opts, nats.Secure(e.clientTLS.Clone()))
	}
	return opts
}

// StartEmbedded runs an in-process NATS server with JetStream, listening on
// o.Listen so that phone backends and the 119 bridge can subscribe too. It
// always requires a login: carehub's own user with a generated secret, plus
// the users of o.UsersFile; nobody reaches the streams or the KV buckets
// (tokens, users, devices) without one.
func StartEmbedded(o EmbeddedOptions) (*Embedded, error) {
	host, portStr, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return nil, fmt.Errorf("nats listen address %q: %w", o.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("nats listen port %q: %w", portStr, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	password, err := OwnSecret(o.DataDir)
	if err != nil {
		return nil, err
	}
	users := []*server.User{{Username: OwnUser, Password: password}}
	if o.UsersFile != "" {
		extra, err := LoadUsers(o.UsersFile)
		if err != nil {
			return nil, err
		}
		users = append(users, extra...)
	}
	opts := &server.Options{
		ServerName: "carehub-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   filepath.Join(o.DataDir, "nats"),
		NoSigs:     true, // only main handles signals
		NoLog:      true,
		MaxPayload: 8 << 20,
		Users:      users,
	}
	var clientTLS *tls.Config
	if o.TLS != nil {
		opts.TLS, opts.TLSConfig, opts.TLSTimeout = true, o.TLS.Clone(), 2
		if clientTLS, err = tlsx.Pinned(o.TLS); err != nil {
			return nil, err
		}
	}
	if o.EncryptionKey != "" {
		opts.JetStreamKey, opts.JetStreamCipher = o.EncryptionKey, server.AES
	}
	opts.JetStreamMaxStore = o.MaxStore
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("embedded nats did not become ready within 30s")
	}
	e := &Embedded{Server: ns, Password: password, clientTLS: clientTLS}
	o.Log.Info().Str("url", e.ClientURL()).Str("store", opts.StoreDir).Int("users", len(users)).
		Bool("tls", clientTLS != nil).Bool("encrypted", o.EncryptionKey != "").Msg("embedded nats started")
	return e, nil
}

// OwnSecret returns carehub's password for its embedded server, generating
// it on first use. The file is created with mode 0600 and refused when
// others may read it.
func OwnSecret(dataDir string) (string, error) {
	path := filepath.Join(dataDir, SecretFile)
	if b, err := os.ReadFile(path); err == nil {
		fi, err := os.Stat(path)
		if err != nil {
			return "", err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return "", fmt.Errorf("%s is readable by others (mode %04o): chmod 600 it", path, fi.Mode().Perm())
		}
		if s := strings.TrimSpace(string(b)); len(s) >= 16 {
			return s, nil
		}
		return "", fmt.Errorf("%s holds no usable secret: delete it and carehub generates a new one", path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("embedded nats secret: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("CARE_DATA_DIR: %w", err)
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	secret := base64.RawURLEncoding.EncodeToString(b[:])
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("embedded nats secret: %w", err)
	}
	if _, err := f.WriteString(secret + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("embedded nats secret: %w", err)
	}
	return secret, f.Close()
}

// LoadUsers reads the users of a nats-server configuration file: its
// authorization { users: [...] } block, with nats-server's own parser, so
// permissions are written and checked exactly as in deploy/nats/nats.conf
// and $VARIABLE references come from the environment. Anything else in the
// file that grants access (accounts, nkeys, a single user or token) is
// refused rather than silently ignored.
func LoadUsers(path string) ([]*server.User, error) {
	fo, err := server.ProcessConfigFile(path)
	if err != nil {
		return nil, fmt.Errorf("CARE_NATS_USERS_FILE=%s: %w", path, err)
	}
	if len(fo.Accounts) > 0 || len(fo.Nkeys) > 0 || fo.Username != "" || fo.Authorization != "" {
		return nil, fmt.Errorf("CARE_NATS_USERS_FILE=%s: only authorization { users: [...] } is read; remove accounts, nkeys, user/password and token", path)
	}
	for _, u := range fo.Users {
		if u.Username == OwnUser {
			return nil, fmt.Errorf("CARE_NATS_USERS_FILE=%s: user %q is carehub's own; give yours another name", path, OwnUser)
		}
		if u.Password == "" {
			return nil, fmt.Errorf("CARE_NATS_USERS_FILE=%s: user %q has no password", path, u.Username)
		}
	}
	return fo.Users, nil
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
			log.Warn().Err(redact.Err(err)).Msg("nats disconnected")
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info().Str("url", c.ConnectedUrlRedacted()).Msg("nats reconnected")
		}),
	}
	if strings.HasPrefix(url, "nats://") {
		opts = append(opts, nats.SetCustomDialer(coalesce.NATSDialer{}))
	}
	nc, err := nats.Connect(url, append(opts, extra...)...)
	return nc, redact.Err(err)
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
	// The same 2-minute window as the other streams, not longer: the server
	// keeps every id of the window in memory, and an alert storm of 800
	// transitions a second held 2.9 million of them with an hour's window
	// (carehub's heap grew all through make bench-storm, and its collector
	// with it). A transition the outbox re-publishes after a longer NATS
	// outage is a duplicate its consumers absorb: InfluxDB overwrites the
	// same point, a push replaces its notification by tag, the console
	// shows an alert by id.
	alertsCfg := base(model.StreamAlerts, model.SubjectAlertsAll, "alert lifecycle transitions", o.AlertsAge)
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
