// Package config is carehub's one typed configuration, read from CARE_*
// environment variables (contract §5). Secrets may come from files through
// the _FILE variants, as container secrets are mounted. Validate fails fast
// at start with a message that says how to fix the setting.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
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
	// DefaultMaxPayload is the largest message accepted (contract §1: 64 KiB).
	DefaultMaxPayload = 64 << 10
	// DefaultMemoryLimit keeps carehub under 200 MB of RSS through
	// make bench-ingest (600,000 messages: 176 MB with it, 288 MB without)
	// at no measurable cost; at 128 MiB the collector cost 30 % more CPU.
	DefaultMemoryLimit = 160 << 20
	// DefaultBatchSize and DefaultBatchInterval bound an InfluxDB write: a
	// batch goes when it is full or when the oldest point waited this long.
	// 5,000 points keep a request near 1 MB, InfluxDB's sweet spot.
	DefaultBatchSize     = 5000
	DefaultBatchInterval = 200 * time.Millisecond
	// DefaultBufferAge covers a long weekend of InfluxDB being down.
	DefaultBufferAge = 7 * 24 * time.Hour
	// DefaultAuditRetention is the legal minimum for the access trail.
	DefaultAuditRetention = 2 * 365 * 24 * time.Hour
)

// Config is everything carehub needs to start.
type Config struct {
	HTTPAddr string

	MQTTURL         string // external broker; empty = embedded
	MQTTUsername    string
	MQTTPassword    string
	MQTTListen      string // embedded broker's listener
	MQTTShareGroup  string // $share/{group}/... so instances split the load
	MQTTConnections int    // subscriber connections per instance
	// MQTTProvision is how an external broker learns device credentials:
	// "none" (the operator adds them) or "dynsec" (Mosquitto's
	// dynamic-security plugin, driven by carehub).
	MQTTProvision string
	InstanceID    string // stable per instance: names its persistent MQTT sessions

	NATSURL    string // external NATS; empty = embedded
	NATSListen string // embedded NATS listener

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
}

// Embedded reports whether carehub runs its own MQTT broker.
func (c Config) EmbeddedMQTT() bool { return c.MQTTURL == "" }

// EmbeddedNATS reports whether carehub runs its own NATS server.
func (c Config) EmbeddedNATS() bool { return c.NATSURL == "" }

// DefaultMaxStreamsPerUser: a phone and a desktop, with room for a
// reconnect racing a stream that has not noticed its client left.
const DefaultMaxStreamsPerUser = 4

// Load reads the configuration through getenv (os.Getenv in main, a map in
// tests) and validates it. The error lists every problem at once.
func Load(getenv func(string) string) (Config, error) {
	p := parser{getenv: getenv}
	host, _ := os.Hostname()
	c := Config{
		HTTPAddr:        p.str("CARE_HTTP_ADDR", DefaultHTTPAddr),
		MQTTURL:         p.str("CARE_MQTT_URL", ""),
		MQTTUsername:    p.str("CARE_MQTT_USERNAME", ""),
		MQTTPassword:    p.secret("CARE_MQTT_PASSWORD"),
		MQTTListen:      p.str("CARE_MQTT_LISTEN", DefaultMQTTListen),
		MQTTShareGroup:  p.str("CARE_MQTT_SHARE_GROUP", DefaultShareGroup),
		MQTTConnections: p.int("CARE_MQTT_CONNECTIONS", DefaultMQTTConnections),
		MQTTProvision:   p.str("CARE_MQTT_PROVISION", "none"),
		InstanceID:      p.str("CARE_INSTANCE_ID", sanitize(host)),
		NATSURL:         p.str("CARE_NATS_URL", ""),
		NATSListen:      p.str("CARE_NATS_LISTEN", DefaultNATSListen),
		InfluxURL:       p.str("CARE_INFLUX_URL", DefaultInfluxURL),
		InfluxToken:     p.secret("CARE_INFLUX_TOKEN"),
		InfluxOrg:       p.str("CARE_INFLUX_ORG", DefaultInfluxOrg),
		InfluxBucket:    p.str("CARE_INFLUX_BUCKET", DefaultInfluxBucket),
		InfluxVersion:   p.str("CARE_INFLUX_VERSION", "auto"),
		AdminToken:      p.secret("CARE_ADMIN_TOKEN"),
		DataDir:         p.str("CARE_DATA_DIR", DefaultDataDir),
		LogFormat:       p.str("CARE_LOG_FORMAT", "auto"),
		LogLevel:        p.str("CARE_LOG_LEVEL", "info"),
		RawRetention:    p.duration("CARE_RAW_RETENTION", DefaultRawRetention),
		MaxFuture:       p.duration("CARE_MAX_FUTURE", DefaultMaxFuture),
		MaxPayload:      p.int("CARE_MAX_PAYLOAD", DefaultMaxPayload),
		BatchSize:       p.int("CARE_BATCH_SIZE", DefaultBatchSize),
		BatchInterval:   p.duration("CARE_BATCH_INTERVAL", DefaultBatchInterval),
		BufferAge:       p.duration("CARE_BUFFER_AGE", DefaultBufferAge),
		AuditRetention:  p.duration("CARE_AUDIT_RETENTION", DefaultAuditRetention),
		MemoryLimit:     p.size("CARE_MEMORY_LIMIT", DefaultMemoryLimit),
	}
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
	p.errs = append(p.errs, c.validate()...)
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
	if c.MQTTURL != "" {
		u, err := url.Parse(c.MQTTURL)
		if err != nil || (u.Scheme != "tcp" && u.Scheme != "mqtt" && u.Scheme != "ssl" && u.Scheme != "tls" && u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
			fail("CARE_MQTT_URL=%q is not a broker URL: write it like tcp://127.0.0.1:1883 (or leave it unset for the embedded broker)", c.MQTTURL)
		}
	}
	if c.NATSURL != "" && !strings.HasPrefix(c.NATSURL, "nats://") && !strings.HasPrefix(c.NATSURL, "tls://") {
		fail("CARE_NATS_URL=%q is not a NATS URL: write it like nats://127.0.0.1:4222 (or leave it unset for the embedded server)", c.NATSURL)
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
	if c.MQTTConnections < 1 || c.MQTTConnections > 64 {
		fail("CARE_MQTT_CONNECTIONS=%d: use 1 to 64", c.MQTTConnections)
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
	if c.MaxFuture < 0 {
		fail("CARE_MAX_FUTURE must not be negative")
	}
	switch {
	case c.MQTTProvision != "none" && c.MQTTProvision != "dynsec":
		fail("CARE_MQTT_PROVISION=%q: use none, or dynsec for Mosquitto's dynamic-security plugin", c.MQTTProvision)
	case c.MQTTProvision == "dynsec" && (c.MQTTURL == "" || c.MQTTUsername == ""):
		fail("CARE_MQTT_PROVISION=dynsec drives an external Mosquitto: set CARE_MQTT_URL, and CARE_MQTT_USERNAME/_PASSWORD to a user with the plugin's admin role")
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
	if c.AdminToken != "" && len(c.AdminToken) < 16 {
		fail("CARE_ADMIN_TOKEN is shorter than 16 characters: use a long random string (or leave it unset and carehub prints a generated one)")
	}
	return errs
}

type parser struct {
	getenv func(string) string
	errs   []error
}

func (p *parser) fail(format string, a ...any) { p.errs = append(p.errs, fmt.Errorf(format, a...)) }

func (p *parser) str(name, def string) string {
	if v := strings.TrimSpace(p.getenv(name)); v != "" {
		return v
	}
	return def
}

// secret reads NAME, or the file named by NAME_FILE; setting both is an error
// because one of them would be silently ignored.
func (p *parser) secret(name string) string {
	v, file := p.getenv(name), p.getenv(name+"_FILE")
	if v != "" && file != "" {
		p.fail("both %s and %s_FILE are set: keep one", name, name)
		return ""
	}
	if file == "" {
		return v
	}
	b, err := os.ReadFile(file)
	if err != nil {
		p.fail("%s_FILE=%q cannot be read (%v): point it at a readable file holding the secret", name, file, err)
		return ""
	}
	return strings.TrimSpace(string(b))
}

func (p *parser) int(name string, def int) int {
	v := p.getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		p.fail("%s=%q is not a whole number", name, v)
		return def
	}
	return n
}

// size reads a byte count: a whole number with an optional KiB, MiB or GiB
// suffix (as Go's GOMEMLIMIT is written), or 0 / off for none.
func (p *parser) size(name string, def int64) int64 {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return def
	}
	if v == "off" {
		return 0
	}
	n, err := ParseSize(v)
	if err != nil {
		p.fail("%s=%q is not a size: write it like 160MiB, 1GiB or 0 (none)", name, v)
		return def
	}
	return n
}

// ParseSize parses a byte count with an optional KiB, MiB or GiB suffix.
func ParseSize(s string) (int64, error) {
	unit := int64(1)
	for _, u := range []struct {
		suffix string
		n      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			s, unit = n, u.n
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 || n > (1<<62)/unit {
		return 0, fmt.Errorf("size %q: want a whole number of bytes, KiB, MiB or GiB", s)
	}
	return n * unit, nil
}

func (p *parser) duration(name string, def time.Duration) time.Duration {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return def
	}
	d, err := ParseDuration(v)
	if err != nil {
		p.fail("%s=%q is not a duration: write it like 90d, 12h, 250ms", name, v)
		return def
	}
	return d
}

// ParseDuration is time.ParseDuration that also takes whole days ("90d") and
// weeks ("2w"), as retention periods are usually written.
func ParseDuration(s string) (time.Duration, error) {
	for suffix, unit := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			if k, err := strconv.Atoi(n); err == nil && k >= 0 {
				return time.Duration(k) * unit, nil
			}
		}
	}
	return time.ParseDuration(s)
}

// sanitize turns a host name into an MQTT client id fragment.
func sanitize(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' {
			b.WriteRune(r)
		}
	}
	return b.String()
}
