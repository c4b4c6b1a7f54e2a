// Package config is carehub's one typed configuration, read from CARE_*
// environment variables (contract §5). Secrets may come from files through
// the _FILE variants, as container secrets are mounted. Validate fails fast
// at start with a message that says how to fix the setting.
package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/carehub/carehub/internal/natsx"
	"github.com/carehub/carehub/internal/redact"
	"github.com/carehub/carehub/internal/tlsx"
)

// Defaults. The embedded broker and NATS listen on ports next to, not on, the
// standard 1883 and 4222, so carehub starts on a machine that already runs
// Mosquitto and nats-server. Everything listens on loopback unless told
// otherwise: a health-data service should be exposed on purpose.
const (
	DefaultHTTPAddr        = "127.0.0.1:8780"
	DefaultMQTTListen      = "127.0.0.1:18830"
	DefaultNATSListen      = "127.0.0.1:14222"
	DefaultInfluxURL       = "http://127.0.0.1:8086"
	DefaultInfluxBucket    = "care"
	DefaultInfluxOrg       = "carehub"
	DefaultDataDir         = "./data"
	DefaultTimezone        = "Asia/Seoul"
	DefaultShareGroup      = "carehub"
	DefaultMQTTConnections = 2
	// DefaultRawRetention is how long raw readings are kept (domain.md: raw
	// readings e.g. 90 days). Older timestamps are rejected at ingest.
	DefaultRawRetention = 90 * 24 * time.Hour
	// DefaultMaxFuture is how far ahead of carehub's clock a device's
	// timestamp may be (contract §1: 5 minutes).
	DefaultMaxFuture = 5 * time.Minute
	// DefaultMQTTMaxConnections caps the embedded broker's connections:
	// far above a district's fleet, far below what exhausts memory.
	DefaultMQTTMaxConnections = 10000
	// DefaultMQTTMaxConnectionsPerAddr caps one source address's
	// connections: a gateway or NAT holds tens of devices, not hundreds.
	DefaultMQTTMaxConnectionsPerAddr = 256
	// DefaultMaxPayload is the largest message accepted (contract §1: 64 KiB).
	DefaultMaxPayload = 64 << 10
	// DefaultMemoryLimit keeps carehub under 200 MB of RSS through
	// make bench-ingest (600,000 messages: 176 MB with it, 288 MB without)
	// at no measurable cost; at 128 MiB the collector cost 30 % more CPU.
	DefaultMemoryLimit = 160 << 20
	// DefaultBatchSize and DefaultBatchInterval bound an InfluxDB write: a
	// batch goes when it is full or when the oldest point waited this long.
	// 5,000 points keep a request near 1 MB, InfluxDB's sweet spot. At an
	// even load the interval is most of a reading's lag: 100 ms gave a p99
	// of 149 ms against 295 ms at 200 ms, for no CPU a message that showed
	// (docs/performance.md, "The writer's flush interval").
	DefaultBatchSize     = 5000
	DefaultBatchInterval = 100 * time.Millisecond
	// DefaultAlertLeaseTTL: a dead alert leader is replaced within 10 to
	// 14 s, while a NATS leader election (about 2 s) does not depose it.
	DefaultAlertLeaseTTL = 10 * time.Second
	// DefaultIngestBatchDelay: a cross-device batch of readings waits this
	// long for more after its first. At an even 10,000 msgs/s, 40 ms cost
	// 13 % less CPU than 10 ms (0.52 against 0.60 cores: a JetStream
	// message holds 75 readings, not 19) for 10 ms more lag p50 and the
	// same p99, which the writer's flush interval sets; a burst fills its
	// batches before the delay either way (docs/performance.md, "Batch
	// delay at a steady load"). Events (SOS, falls) are never batched.
	DefaultIngestBatchDelay = 40 * time.Millisecond
	// DefaultMQTTReadWait: a telemetry subscriber connection that finds
	// nothing to read waits this long first, so that at a steady rate one
	// read brings several messages: at an even 10,000 msgs/s 5 ms cost
	// about 15 % less CPU (0.47-0.48 against 0.56-0.61 cores) for no lag
	// p50 or p99 beyond the runs' noise, which the batch delay and the
	// writer's flush set (docs/performance.md, "Reading in batches at a
	// steady rate"). Events (SOS, falls) have a connection that never waits.
	DefaultMQTTReadWait = 5 * time.Millisecond
	// DefaultBufferAge covers a long weekend of InfluxDB being down.
	DefaultBufferAge = 7 * 24 * time.Hour
	// DefaultAuditRetention is the legal minimum for the access trail.
	DefaultAuditRetention = 2 * 365 * 24 * time.Hour
	// DefaultIngestBatch is the most readings the intake puts into one
	// JetStream message of a partition (CARE_INGEST_BATCH; issue 14 item 2,
	// docs/performance.md).
	DefaultIngestBatch = 256
	// DefaultMaxRecords is the most records one telemetry message may hold
	// (docs/device-protocol.md): a device a minute apart catching up on
	// 16 hours, or one sending 4 metrics a minute as SenML on 4 hours.
	DefaultMaxRecords = 1000
	// DefaultDeviceRate and DefaultDeviceBurst are each device's telemetry
	// telemetry quota in records: a sustained 20 a
	// second with a burst of 2,000, two full catch-up arrays back to back.
	DefaultDeviceRate  = 20
	DefaultDeviceBurst = 2000
	// DefaultDeviceEventRate and DefaultDeviceEventBurst are each device's
	// quota of everyday events (door, motion, bed, ...) and status reports. Alarms (sos, fall,
	// smoke, gas, co and their cancels) are never rate-limited.
	DefaultDeviceEventRate  = 2
	DefaultDeviceEventBurst = 60
)

// Config is everything carehub needs to start.
type Config struct {
	HTTPAddr string

	// MQTTURL is the external broker, or a comma-separated list of
	// brokers devices are partitioned across (see MQTTURLs); empty =
	// embedded.
	MQTTURL         string
	MQTTUsername    string
	MQTTPassword    string
	MQTTListen      string // embedded broker's listener
	MQTTShareGroup  string // $share/{group}/... so instances split the load
	MQTTConnections int    // subscriber connections per instance
	MQTTReadWait    time.Duration
	// MQTTProvision is how an external broker learns device credentials:
	// "none" (the operator adds them) or "dynsec" (Mosquitto's
	// dynamic-security plugin, driven by carehub).
	MQTTProvision string
	// MQTTDynsecUsername and MQTTDynsecPassword are the control login for
	// the dynamic-security plugin (CARE_MQTT_PROVISION=dynsec): a user with
	// the plugin's admin role, kept apart from the ingest login
	// (CARE_MQTT_USERNAME), which only reads devices' topics.
	MQTTDynsecUsername string
	MQTTDynsecPassword string
	InstanceID         string // stable per instance: names its persistent MQTT sessions

	NATSURL    string // external NATS; empty = embedded
	NATSListen string // embedded NATS listener
	// NATSUsername/NATSPassword or NATSCredsFile log carehub in to an
	// external NATS server.
	NATSUsername  string
	NATSPassword  string
	NATSCredsFile string
	// NATSUsersFile adds users (phones backend, 119 bridge) to the embedded
	// server: a nats-server file with authorization { users: [...] }.
	NATSUsersFile string
	// NATSEncryptionKey encrypts the embedded server's JetStream store at
	// rest; empty = not encrypted.
	NATSEncryptionKey string

	// TLSCertFile and TLSKeyFile are the server certificate of the HTTP
	// API, the embedded NATS server and the embedded MQTT broker's TLS
	// listener; TLSCAFile is the CA carehub trusts for its outgoing tls://
	// and https:// connections (besides the system's).
	TLSCertFile string
	TLSKeyFile  string
	TLSCAFile   string
	// MQTTTLSListen is the embedded broker's TLS listener (e.g. :8883);
	// empty = none.
	MQTTTLSListen string
	// AllowPlaintext permits listeners on non-loopback addresses without
	// TLS: only for a network the operator secures otherwise.
	AllowPlaintext bool
	// PprofAddr serves Go's profiles; loopback only, empty = off.
	PprofAddr string

	InfluxURL     string
	InfluxToken   string
	InfluxOrg     string
	InfluxBucket  string
	InfluxVersion string // auto, 1 or 2

	AdminToken string
	DataDir    string
	Timezone   *time.Location

	LogFormat string // auto, json or console
	LogLevel  string

	// TrustedProxies are reverse proxies whose X-Forwarded-For names the
	// client: the login rate limit and the audit trail use that address.
	TrustedProxies []string

	// MaxStreamsPerUser bounds one user's open alert streams
	// (CARE_MAX_STREAMS_PER_USER): one leaked token cannot take every slot.
	MaxStreamsPerUser int

	RawRetention  time.Duration
	MaxFuture     time.Duration
	MaxPayload    int
	BatchSize     int
	BatchInterval time.Duration

	// BufferAge is how long readings, events and status stay in JetStream:
	// the longest InfluxDB outage carehub rides out without losing data.
	BufferAge time.Duration
	// AuditRetention is how long CARE_AUDIT keeps the access trail (PIPA,
	// domain.md: at least 2 years).
	AuditRetention time.Duration

	// MemoryLimit is the Go runtime's soft memory limit in bytes (0 = none).
	// The embedded NATS server keeps every JetStream block written in the
	// last 10 s in memory, so under a sustained load the heap grows with the
	// rate; the limit makes the collector work before the process outgrows
	// a small machine, instead of letting the heap double.
	MemoryLimit int64
	// AdaptiveProcs runs the Go runtime on one processor while carehub's
	// load fits well within one core, and on all of them once it grows
	// (internal/procs): 12-17 % less CPU at a steady load, for an SOS
	// p99 two to three times as long (still tens of ms), so it is off
	// unless asked for. Never when GOMAXPROCS is set.
	AdaptiveProcs bool

	// Query cost limits of the InfluxDB-backed API endpoints (apidata):
	// QueryRate queries per user and minute with bursts of QueryBurst,
	// MaxQueries at once on the instance, MaxExports exports at once.
	QueryRate, QueryBurst, MaxQueries, MaxExports int
	// MaxRecords is the most records a telemetry message may hold; a
	// larger array is rejected whole (too_many_records).
	MaxRecords int
	// IngestBatch, when > 0, batches the readings of many device messages
	// into one JetStream message per partition, flushed at IngestBatch
	// readings or IngestBatchDelay after the first (ingest.Options).
	IngestBatch      int
	IngestBatchDelay time.Duration
	// DeviceRate and DeviceBurst are each device's telemetry quota in
	// records per second and bucket size; DeviceEventRate and
	// DeviceEventBurst its quota of everyday events. Past them messages
	// are rejected (rate_limited); alarms never are.
	DeviceRate, DeviceBurst           int
	DeviceEventRate, DeviceEventBurst int
	// StreamMaxBytes overrides the size of named streams
	// (natsx.DefaultStreamMaxBytes for the others).
	StreamMaxBytes map[string]int64
	// NATSMaxStore caps the embedded NATS server's JetStream store; 0
	// means the streams' sizes plus room for the key-value buckets.
	NATSMaxStore int64
	// NATSReplicas is how many copies JetStream keeps of every stream and
	// key-value bucket carehub creates (CARE_NATS_REPLICAS): 1, or 3 on a
	// NATS cluster of three or more servers.
	NATSReplicas int
	// AlertLeaseTTL is how long the alert leader's lease outlives its last
	// renewal (CARE_ALERT_LEASE_TTL): with several instances, another one
	// takes the alert engine and escalation over within this and a third
	// of it after the leader dies.
	AlertLeaseTTL time.Duration
	// MQTTMaxConnections and MQTTMaxConnectionsPerAddr cap the embedded
	// broker's connections, logged in or not, in total and from one
	// source address (a home gateway or a care home's NAT is one address).
	MQTTMaxConnections        int
	MQTTMaxConnectionsPerAddr int

	// PublicURL is the https origin care workers' phones use
	// (CARE_PUBLIC_URL); WebPush configures notifications to them
	// (webpush.go).
	PublicURL string
	WebPush   WebPush
}

// StreamOptions returns the streams' sizes and ages from the configuration.
func (c Config) StreamOptions() natsx.StreamOptions {
	o := natsx.DefaultStreamOptions
	o.BufferAge, o.AuditAge = c.BufferAge, c.AuditRetention
	o.MaxBytes = c.StreamMaxBytes
	o.Replicas = max(c.NATSReplicas, 1)
	return o
}

// Embedded reports whether carehub runs its own MQTT broker.
func (c Config) EmbeddedMQTT() bool { return c.MQTTURL == "" }

// EmbeddedNATS reports whether carehub runs its own NATS server.
func (c Config) EmbeddedNATS() bool { return c.NATSURL == "" }

// MQTTURLs are the brokers of CARE_MQTT_URL, a comma-separated list:
// carehub subscribes to each, so devices may connect to any of them. Keep
// their order when adding one (add it at the end): a broker's position
// names carehub's persistent sessions on it.
func (c Config) MQTTURLs() []string {
	var out []string
	for _, u := range strings.Split(c.MQTTURL, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// NATSURLs are the servers of CARE_NATS_URL, a comma-separated list.
func (c Config) NATSURLs() []string {
	var out []string
	for _, u := range strings.Split(c.NATSURL, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// TLS reports whether carehub serves TLS (CARE_TLS_CERT_FILE and _KEY_FILE).
func (c Config) TLS() bool { return c.TLSCertFile != "" && c.TLSKeyFile != "" }

// ServerTLS loads the server certificate; nil when TLS is not configured.
func (c Config) ServerTLS() (*tls.Config, error) {
	if !c.TLS() {
		return nil, nil
	}
	return tlsx.Server(c.TLSCertFile, c.TLSKeyFile)
}

// ClientTLS is the configuration of carehub's outgoing TLS connections:
// the system's CAs plus CARE_TLS_CA_FILE.
func (c Config) ClientTLS() (*tls.Config, error) { return tlsx.Client(c.TLSCAFile) }

// IsLoopback reports whether a listen address (host:port) binds loopback
// only: 127.0.0.0/8, ::1 or localhost. An empty host binds every interface.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// DefaultMaxStreamsPerUser: a phone and a desktop, with room for a
// reconnect racing a stream that has not noticed its client left.
const DefaultMaxStreamsPerUser = 4

// Load reads the configuration through getenv (os.Getenv in main, a map in
// tests) and validates it. The error lists every problem at once.
func Load(getenv func(string) string) (Config, error) {
	p := parser{getenv: getenv}
	host, _ := os.Hostname()
	c := Config{
		HTTPAddr:          p.str("CARE_HTTP_ADDR", DefaultHTTPAddr),
		MQTTURL:           p.str("CARE_MQTT_URL", ""),
		MQTTUsername:      p.str("CARE_MQTT_USERNAME", ""),
		MQTTPassword:      p.secret("CARE_MQTT_PASSWORD"),
		MQTTListen:        p.str("CARE_MQTT_LISTEN", DefaultMQTTListen),
		MQTTShareGroup:    p.str("CARE_MQTT_SHARE_GROUP", DefaultShareGroup),
		MQTTConnections:   p.int("CARE_MQTT_CONNECTIONS", DefaultMQTTConnections),
		MQTTReadWait:      p.duration("CARE_MQTT_READ_WAIT", DefaultMQTTReadWait),
		MQTTProvision:     p.str("CARE_MQTT_PROVISION", "none"),
		InstanceID:        p.str("CARE_INSTANCE_ID", sanitize(host)),
		NATSURL:           p.str("CARE_NATS_URL", ""),
		NATSListen:        p.str("CARE_NATS_LISTEN", DefaultNATSListen),
		NATSUsername:      p.str("CARE_NATS_USERNAME", ""),
		NATSPassword:      p.secret("CARE_NATS_PASSWORD"),
		NATSCredsFile:     p.str("CARE_NATS_CREDS_FILE", ""),
		NATSUsersFile:     p.str("CARE_NATS_USERS_FILE", ""),
		NATSEncryptionKey: p.secret("CARE_NATS_ENCRYPTION_KEY"),
		TLSCertFile:       p.str("CARE_TLS_CERT_FILE", ""),
		TLSKeyFile:        p.str("CARE_TLS_KEY_FILE", ""),
		TLSCAFile:         p.str("CARE_TLS_CA_FILE", ""),
		MQTTTLSListen:     p.str("CARE_MQTT_TLS_LISTEN", ""),
		AllowPlaintext:    p.bool("CARE_ALLOW_PLAINTEXT"),
		PprofAddr:         p.str("CARE_PPROF_ADDR", ""),
		InfluxURL:         p.str("CARE_INFLUX_URL", DefaultInfluxURL),
		InfluxToken:       p.secret("CARE_INFLUX_TOKEN"),
		InfluxOrg:         p.str("CARE_INFLUX_ORG", DefaultInfluxOrg),
		InfluxBucket:      p.str("CARE_INFLUX_BUCKET", DefaultInfluxBucket),
		InfluxVersion:     p.str("CARE_INFLUX_VERSION", "auto"),
		AdminToken:        p.secret("CARE_ADMIN_TOKEN"),
		DataDir:           p.str("CARE_DATA_DIR", DefaultDataDir),
		LogFormat:         p.str("CARE_LOG_FORMAT", "auto"),
		LogLevel:          p.str("CARE_LOG_LEVEL", "info"),
		RawRetention:      p.duration("CARE_RAW_RETENTION", DefaultRawRetention),
		MaxFuture:         p.duration("CARE_MAX_FUTURE", DefaultMaxFuture),
		MaxPayload:        p.int("CARE_MAX_PAYLOAD", DefaultMaxPayload),
		BatchSize:         p.int("CARE_BATCH_SIZE", DefaultBatchSize),
		BatchInterval:     p.duration("CARE_BATCH_INTERVAL", DefaultBatchInterval),
		AlertLeaseTTL:     p.duration("CARE_ALERT_LEASE_TTL", DefaultAlertLeaseTTL),
		BufferAge:         p.duration("CARE_BUFFER_AGE", DefaultBufferAge),
		AuditRetention:    p.duration("CARE_AUDIT_RETENTION", DefaultAuditRetention),
		MemoryLimit:       p.size("CARE_MEMORY_LIMIT", DefaultMemoryLimit),
		AdaptiveProcs:     p.bool("CARE_ADAPTIVE_PROCS"),
		QueryRate:         p.int("CARE_QUERY_RATE", 300),
		QueryBurst:        p.int("CARE_QUERY_BURST", 60),
		MaxQueries:        p.int("CARE_MAX_QUERIES", 8),
		MaxExports:        p.int("CARE_MAX_EXPORTS", 2),
	}
	c.MaxRecords = p.int("CARE_MAX_RECORDS", DefaultMaxRecords)
	c.IngestBatch = p.int("CARE_INGEST_BATCH", DefaultIngestBatch)
	c.IngestBatchDelay = p.duration("CARE_INGEST_BATCH_DELAY", DefaultIngestBatchDelay)
	c.DeviceRate = p.int("CARE_DEVICE_RATE", DefaultDeviceRate)
	c.DeviceBurst = p.int("CARE_DEVICE_BURST", DefaultDeviceBurst)
	c.DeviceEventRate = p.int("CARE_DEVICE_EVENT_RATE", DefaultDeviceEventRate)
	c.DeviceEventBurst = p.int("CARE_DEVICE_EVENT_BURST", DefaultDeviceEventBurst)
	c.StreamMaxBytes = p.streamSizes("CARE_STREAM_MAX_BYTES")
	c.NATSMaxStore = p.size("CARE_NATS_MAX_STORE", 0)
	c.NATSReplicas = p.int("CARE_NATS_REPLICAS", 1)
	c.MQTTDynsecUsername = p.str("CARE_MQTT_DYNSEC_USERNAME", "")
	c.MQTTDynsecPassword = p.secret("CARE_MQTT_DYNSEC_PASSWORD")
	c.MQTTMaxConnections = p.int("CARE_MQTT_MAX_CONNECTIONS", DefaultMQTTMaxConnections)
	c.MQTTMaxConnectionsPerAddr = p.int("CARE_MQTT_MAX_CONNECTIONS_PER_ADDR", DefaultMQTTMaxConnectionsPerAddr)
	c.MaxStreamsPerUser = p.int("CARE_MAX_STREAMS_PER_USER", DefaultMaxStreamsPerUser)
	for _, tp := range strings.Split(p.str("CARE_TRUSTED_PROXIES", ""), ",") {
		if tp = strings.TrimSpace(tp); tp != "" {
			c.TrustedProxies = append(c.TrustedProxies, tp)
		}
	}
	if c.InstanceID == "" {
		c.InstanceID = "carehub"
	}
	tz := p.str("CARE_TIMEZONE", DefaultTimezone)
	loc, err := time.LoadLocation(tz)
	if err != nil {
		p.fail("CARE_TIMEZONE=%q is not a time zone: use an IANA name such as Asia/Seoul", tz)
	}
	c.Timezone = loc
	p.loadWebPush(&c)
	p.errs = append(p.errs, c.validate()...)
	p.errs = append(p.errs, c.validateWebPush()...)
	if len(p.errs) > 0 {
		return c, errors.Join(p.errs...)
	}
	return c, nil
}

func (c Config) validate() []error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	for name, addr := range map[string]string{"CARE_HTTP_ADDR": c.HTTPAddr, "CARE_MQTT_LISTEN": c.MQTTListen, "CARE_NATS_LISTEN": c.NATSListen} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			fail("%s=%q is not host:port: write it like 127.0.0.1:8780 or :8780", name, addr)
		}
	}
	// Several brokers are a comma-separated list; carehub subscribes to
	// each of them.
	seen := map[string]bool{}
	for _, raw := range c.MQTTURLs() {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "tcp" && u.Scheme != "mqtt" && u.Scheme != "ssl" && u.Scheme != "tls" && u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
			fail("CARE_MQTT_URL=%q is not a broker URL: write it like tcp://127.0.0.1:1883, several brokers as a comma-separated list of them (or leave it unset for the embedded broker)", redact.URL(raw))
			continue
		}
		if seen[u.Host] {
			fail("CARE_MQTT_URL names the broker %s twice: carehub's connections to it would take over each other's sessions", u.Host)
		}
		seen[u.Host] = true
	}
	if c.MQTTURL != "" && len(c.MQTTURLs()) == 0 {
		fail("CARE_MQTT_URL=%q names no broker: write it like tcp://127.0.0.1:1883 (or leave it unset for the embedded broker)", c.MQTTURL)
	}
	// A cluster is a comma-separated list; carehub connects to any of its
	// servers and moves to another when one goes away.
	for _, u := range c.NATSURLs() {
		if !strings.HasPrefix(u, "nats://") && !strings.HasPrefix(u, "tls://") {
			fail("CARE_NATS_URL=%q is not a NATS URL: write it like nats://127.0.0.1:4222, a cluster as a comma-separated list of them (or leave it unset for the embedded server)", redact.URL(u))
		}
	}
	if u, err := url.Parse(c.InfluxURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fail("CARE_INFLUX_URL=%q is not an HTTP URL: write it like http://127.0.0.1:8086", c.InfluxURL)
	}
	if c.InfluxBucket == "" {
		fail("CARE_INFLUX_BUCKET is empty: name the bucket (InfluxDB 2.x) or database (1.8), e.g. care")
	}
	switch c.InfluxVersion {
	case "auto", "1", "2":
	default:
		fail("CARE_INFLUX_VERSION=%q: use auto, 1 (InfluxDB 1.8+) or 2 (InfluxDB 2.x)", c.InfluxVersion)
	}
	switch c.LogFormat {
	case "auto", "json", "console":
	default:
		fail("CARE_LOG_FORMAT=%q: use auto, json or console", c.LogFormat)
	}
	switch c.LogLevel {
	case "trace", "debug", "info", "warn", "error":
	default:
		fail("CARE_LOG_LEVEL=%q: use debug, info, warn or error", c.LogLevel)
	}
	if c.MQTTShareGroup == "" || strings.ContainsAny(c.MQTTShareGroup, "/+#") {
		fail("CARE_MQTT_SHARE_GROUP=%q: use a plain name without / + #", c.MQTTShareGroup)
	}
	if c.IngestBatch < 0 || c.IngestBatch > 10000 || c.IngestBatchDelay <= 0 || c.IngestBatchDelay > time.Second {
		fail("CARE_INGEST_BATCH=%d, CARE_INGEST_BATCH_DELAY=%s: use 0 (off) to 10000 readings and a delay above 0 and at most 1s", c.IngestBatch, c.IngestBatchDelay)
	}
	if c.MQTTConnections < 1 || c.MQTTConnections > 64 {
		fail("CARE_MQTT_CONNECTIONS=%d: use 1 to 64", c.MQTTConnections)
	}
	if c.MQTTReadWait < 0 || c.MQTTReadWait > 50*time.Millisecond {
		fail("CARE_MQTT_READ_WAIT=%s: use 0 (off) to 50ms", c.MQTTReadWait)
	}
	if c.RawRetention < time.Hour {
		fail("CARE_RAW_RETENTION=%s is too short: use at least 1h (e.g. 90d)", c.RawRetention)
	}
	if c.BufferAge < time.Hour {
		fail("CARE_BUFFER_AGE=%s is too short: it is the longest InfluxDB outage carehub survives; use at least 1h (e.g. 7d)", c.BufferAge)
	}
	if c.AuditRetention < DefaultAuditRetention {
		fail("CARE_AUDIT_RETENTION=%s: the access trail must be kept at least 2 years (730d)", c.AuditRetention)
	}
	for _, l := range []struct {
		name string
		v    int
	}{{"CARE_QUERY_RATE", c.QueryRate}, {"CARE_QUERY_BURST", c.QueryBurst}, {"CARE_MAX_QUERIES", c.MaxQueries}, {"CARE_MAX_EXPORTS", c.MaxExports}} {
		if l.v < 1 || l.v > 1_000_000 {
			fail("%s=%d: use a whole number from 1 to 1000000 (query rate per user and minute, burst, queries or exports at once)", l.name, l.v)
		}
	}
	if c.MaxFuture < 0 {
		fail("CARE_MAX_FUTURE must not be negative")
	}
	switch {
	case c.MQTTProvision != "none" && c.MQTTProvision != "dynsec":
		fail("CARE_MQTT_PROVISION=%q: use none, or dynsec for Mosquitto's dynamic-security plugin", c.MQTTProvision)
	case c.MQTTProvision == "dynsec" && (c.MQTTURL == "" || c.MQTTUsername == "" || c.MQTTPassword == ""):
		fail("CARE_MQTT_PROVISION=dynsec drives an external Mosquitto: set CARE_MQTT_URL, and CARE_MQTT_USERNAME/_PASSWORD to carehub's ingest user (carehub creates it if the broker does not have it)")
	case c.MQTTProvision == "dynsec" && (c.MQTTDynsecUsername == "" || c.MQTTDynsecPassword == ""):
		fail("CARE_MQTT_PROVISION=dynsec needs the plugin's control login: set CARE_MQTT_DYNSEC_USERNAME and CARE_MQTT_DYNSEC_PASSWORD (or _FILE) to a user with the plugin's admin role")
	case c.MQTTProvision == "dynsec" && c.MQTTDynsecUsername == c.MQTTUsername:
		fail("CARE_MQTT_DYNSEC_USERNAME=%q is also CARE_MQTT_USERNAME: the control login (admin role) and the ingest login must be different users", c.MQTTDynsecUsername)
	case c.MQTTProvision != "dynsec" && c.MQTTDynsecUsername != "":
		fail("CARE_MQTT_DYNSEC_USERNAME is set but CARE_MQTT_PROVISION is not dynsec: unset it, or set CARE_MQTT_PROVISION=dynsec")
	}
	if c.MQTTMaxConnections < 1 {
		fail("CARE_MQTT_MAX_CONNECTIONS=%d: use at least 1 (the default is %d)", c.MQTTMaxConnections, DefaultMQTTMaxConnections)
	}
	if c.MQTTMaxConnectionsPerAddr < 1 || c.MQTTMaxConnectionsPerAddr > c.MQTTMaxConnections {
		fail("CARE_MQTT_MAX_CONNECTIONS_PER_ADDR=%d: use 1 to CARE_MQTT_MAX_CONNECTIONS (%d); raise it for many devices behind one NAT", c.MQTTMaxConnectionsPerAddr, c.MQTTMaxConnections)
	}
	if c.MemoryLimit != 0 && c.MemoryLimit < 64<<20 {
		fail("CARE_MEMORY_LIMIT=%d bytes: below 64MiB the collector would run all the time; give 64MiB or more, or 0 for none", c.MemoryLimit)
	}
	if c.MaxPayload < 1024 || c.MaxPayload > 16<<20 {
		fail("CARE_MAX_PAYLOAD=%d: use 1024 to 16777216 bytes", c.MaxPayload)
	}
	if c.MaxStreamsPerUser < 1 || c.MaxStreamsPerUser > 256 {
		fail("CARE_MAX_STREAMS_PER_USER=%d: use 1 to 256 alert streams per user", c.MaxStreamsPerUser)
	}
	if c.BatchSize < 1 || c.BatchSize > 100000 {
		fail("CARE_BATCH_SIZE=%d: use 1 to 100000 points", c.BatchSize)
	}
	if c.AlertLeaseTTL < time.Second || c.AlertLeaseTTL > 5*time.Minute {
		fail("CARE_ALERT_LEASE_TTL=%s: use 1s to 5m", c.AlertLeaseTTL)
	}
	if c.BatchInterval < time.Millisecond || c.BatchInterval > time.Minute {
		fail("CARE_BATCH_INTERVAL=%s: use 1ms to 1m", c.BatchInterval)
	}
	for _, tp := range c.TrustedProxies {
		if net.ParseIP(tp) == nil {
			if _, _, err := net.ParseCIDR(tp); err != nil {
				fail("CARE_TRUSTED_PROXIES: %q is neither an IP address nor a CIDR range, e.g. 10.0.0.5,10.1.0.0/16", tp)
			}
		}
	}
	errs = append(errs, c.validateTransport()...)
	if c.MaxRecords < 1 || c.MaxRecords > 100000 {
		fail("CARE_MAX_RECORDS=%d: use 1 to 100000 records per telemetry message (default %d)", c.MaxRecords, DefaultMaxRecords)
	}
	if c.DeviceRate < 1 || c.DeviceBurst < 1 || c.DeviceBurst < c.MaxRecords {
		fail("CARE_DEVICE_RATE=%d, CARE_DEVICE_BURST=%d: use at least 1 record/s and a burst of at least CARE_MAX_RECORDS (%d), or a device's full catch-up array never passes", c.DeviceRate, c.DeviceBurst, c.MaxRecords)
	}
	if c.DeviceEventRate < 1 || c.DeviceEventBurst < 1 {
		fail("CARE_DEVICE_EVENT_RATE=%d, CARE_DEVICE_EVENT_BURST=%d: use at least 1 event/s and a burst of at least 1", c.DeviceEventRate, c.DeviceEventBurst)
	}
	if !c.EmbeddedNATS() && c.NATSMaxStore != 0 {
		fail("CARE_NATS_MAX_STORE limits the embedded NATS server only: with CARE_NATS_URL set, size the external server's max_file_store (deploy/nats/nats.conf) and unset it")
	}
	if c.EmbeddedNATS() && c.NATSMaxStore != 0 {
		if need := c.StreamOptions().MinStore(); c.NATSMaxStore < need {
			fail("CARE_NATS_MAX_STORE=%d bytes is smaller than the streams' sizes plus room for the key-value buckets (%d bytes = %dMiB): raise it, or lower CARE_STREAM_MAX_BYTES", c.NATSMaxStore, need, need>>20)
		}
	}
	switch {
	case c.NATSReplicas != 1 && c.NATSReplicas != 3:
		fail("CARE_NATS_REPLICAS=%d: carehub keeps 1 copy of each stream and bucket, or 3 on a NATS cluster of three or more servers", c.NATSReplicas)
	case c.NATSReplicas == 3 && c.EmbeddedNATS():
		fail("CARE_NATS_REPLICAS=3 needs a NATS cluster: the embedded NATS is one server; set CARE_NATS_URL to the cluster's servers (comma-separated), or use 1")
	}
	if c.AdminToken != "" && len(c.AdminToken) < 16 {
		fail("CARE_ADMIN_TOKEN is shorter than 16 characters: use a long random string (or leave it unset and carehub prints a generated one)")
	}
	return errs
}

// validateTransport checks the TLS files, the NATS credentials and that no
// listener is reachable from the network in plaintext: health data and
// every credential would cross it readable.
func (c Config) validateTransport() []error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	switch {
	case (c.TLSCertFile == "") != (c.TLSKeyFile == ""):
		fail("CARE_TLS_CERT_FILE and CARE_TLS_KEY_FILE go together: set both (PEM certificate chain and its key) or neither")
	case c.TLS():
		if _, err := c.ServerTLS(); err != nil {
			fail("CARE_TLS_CERT_FILE/CARE_TLS_KEY_FILE: %v: point them at a readable PEM certificate and its matching key", err)
		}
	}
	if c.TLSCAFile != "" {
		if _, err := c.ClientTLS(); err != nil {
			fail("CARE_TLS_CA_FILE: %v: point it at a PEM file with the CA certificate(s) to trust", err)
		}
	}
	if c.MQTTTLSListen != "" {
		if _, _, err := net.SplitHostPort(c.MQTTTLSListen); err != nil {
			fail("CARE_MQTT_TLS_LISTEN=%q is not host:port: write it like :8883", c.MQTTTLSListen)
		} else if !c.TLS() {
			fail("CARE_MQTT_TLS_LISTEN needs a certificate: set CARE_TLS_CERT_FILE and CARE_TLS_KEY_FILE")
		}
		if !c.EmbeddedMQTT() {
			fail("CARE_MQTT_TLS_LISTEN is the embedded broker's listener: unset it with CARE_MQTT_URL (configure TLS on the external broker)")
		}
	}
	if c.NATSCredsFile != "" && (c.NATSUsername != "" || c.NATSPassword != "") {
		fail("CARE_NATS_CREDS_FILE and CARE_NATS_USERNAME/_PASSWORD are two ways to log in: keep one")
	}
	if c.NATSPassword != "" && c.NATSUsername == "" {
		fail("CARE_NATS_PASSWORD is set without CARE_NATS_USERNAME: set the user it belongs to")
	}
	if c.NATSCredsFile != "" {
		if _, err := os.Stat(c.NATSCredsFile); err != nil {
			fail("CARE_NATS_CREDS_FILE=%q cannot be read (%v): point it at the user's .creds file", c.NATSCredsFile, err)
		}
	}
	if c.EmbeddedNATS() && (c.NATSUsername != "" || c.NATSPassword != "" || c.NATSCredsFile != "") {
		fail("CARE_NATS_USERNAME/_PASSWORD/_CREDS_FILE log in to an external NATS: set CARE_NATS_URL too, or unset them (the embedded server generates carehub's own secret)")
	}
	if !c.EmbeddedNATS() && (c.NATSUsersFile != "" || c.NATSEncryptionKey != "") {
		fail("CARE_NATS_USERS_FILE and CARE_NATS_ENCRYPTION_KEY configure the embedded server: with CARE_NATS_URL set them in the external server's nats.conf")
	}
	if c.NATSUsersFile != "" {
		if _, err := os.Stat(c.NATSUsersFile); err != nil {
			fail("CARE_NATS_USERS_FILE=%q cannot be read (%v): point it at a file like deploy/nats/embedded-users.conf", c.NATSUsersFile, err)
		}
	}
	if c.NATSEncryptionKey != "" && len(c.NATSEncryptionKey) < 32 {
		fail("CARE_NATS_ENCRYPTION_KEY is shorter than 32 characters: use a long random key, e.g. openssl rand -hex 32 > key; keep it safe, the store cannot be read without it")
	}
	if c.PprofAddr != "" && !IsLoopback(c.PprofAddr) {
		fail("CARE_PPROF_ADDR=%q is not a loopback address: profiles reveal memory contents; use 127.0.0.1:6060 and an SSH tunnel", c.PprofAddr)
	}
	if c.AllowPlaintext {
		return errs
	}
	plain := func(name, addr, fix string) {
		if _, _, err := net.SplitHostPort(addr); err == nil && !IsLoopback(addr) {
			fail("%s=%q listens beyond loopback without TLS: %s, or set CARE_ALLOW_PLAINTEXT=true if the network is secured otherwise", name, addr, fix)
		}
	}
	if !c.TLS() {
		plain("CARE_HTTP_ADDR", c.HTTPAddr, "set CARE_TLS_CERT_FILE and CARE_TLS_KEY_FILE, bind 127.0.0.1 behind a TLS proxy")
		if c.EmbeddedNATS() {
			plain("CARE_NATS_LISTEN", c.NATSListen, "set CARE_TLS_CERT_FILE and CARE_TLS_KEY_FILE, bind 127.0.0.1")
		}
	}
	if c.EmbeddedMQTT() {
		plain("CARE_MQTT_LISTEN", c.MQTTListen, "bind it to 127.0.0.1 and give devices CARE_MQTT_TLS_LISTEN (e.g. :8883) with CARE_TLS_CERT_FILE")
	}
	return errs
}
