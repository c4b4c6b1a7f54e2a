// Package api is carehub's HTTP API (contract §4) on Fiber: health and
// metrics for operators, the registry for administrators, trends for
// coordinators and alerts for care workers. Every access to a resident's
// data is audited.
package api

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/metrics"
	"github.com/carehub/carehub/internal/query"
)

// Options are the API's dependencies, built by cmd/carehub.
type Options struct {
	Registry Registry
	Readings ReadingsSource
	Audit    Auditor
	Metrics  *metrics.Registry
	Ready    map[string]Check // "mqtt", "nats", "influxdb"
	// AlertLeader, when set, says whether this instance is the alert
	// leader (it runs the rules' timers and escalation); /readyz reports
	// it as "alert_leader". Either answer is ready.
	AlertLeader func() bool
	AdminToken  string
	Location    *time.Location
	Clock       func() time.Time
	Log         zerolog.Logger
	// Trends answers latest values, daily summaries and the overview
	// (flux.Reader); nil disables them.
	Trends TrendsSource
	// Baselines answers the overview's worsening baselines and is what
	// WarmBaselines warms (flux.DailyCache); nil leaves them out.
	Baselines BaselineSource
	// DayActivity answers a day summary's activity, night and steps
	// figures (flux.Reader); nil leaves them out.
	DayActivity DayActivitySource
	// AlertContext answers the readings around an alert (flux.Reader);
	// nil answers the latest values instead (through Trends).
	AlertContext AlertContextSource
	// Export reads a resident's readings for export (flux.Reader).
	Export ExportSource
	// AuditReader answers GET /audit (audit.Log); nil disables it.
	AuditReader AuditReader
	// Users holds API users and their tokens (internal/users.Store); nil
	// means only the bootstrap admin token works.
	Users UserStore
	// Alerts is the alert lifecycle (alerts.Manager); nil disables /alerts.
	Alerts AlertService
	// AlertActions comments, assigns and snoozes alerts (alerts.Manager);
	// nil answers those endpoints 503.
	AlertActions AlertActions
	// AlertStream is where GET /alerts/stream reads CARE_ALERTS; nil
	// disables the stream.
	AlertStream jetstream.JetStream
	// Chains stores escalation chains (alerts.Manager.Chains()).
	Chains ChainStore
	// Settings stores per-resident rule settings (settings.Store in alerts/settings).
	Settings SettingsStore
	// Presence answers device health (devices.PresenceTracker).
	Presence PresenceSource
	// Heartbeat is the SSE keep-alive period (default 15 s).
	Heartbeat time.Duration
	// MaxStreams bounds concurrent SSE clients (default 256).
	MaxStreams int
	// MaxStreamsPerUser bounds one user's concurrent SSE clients (default 4,
	// CARE_MAX_STREAMS_PER_USER).
	MaxStreamsPerUser int
	// StreamRecheck is how often an open stream re-checks its token, user
	// and assignment (default 30 s).
	StreamRecheck time.Duration
	// StreamWriteTimeout bounds each write to a stream's client (default
	// 10 s): a client that stops reading is dropped after it.
	StreamWriteTimeout time.Duration
	// Erasure erases a resident for DELETE /residents/{id}
	// (erasure.Eraser); nil answers 503.
	Erasure ResidentEraser
	// Extra, when set, adds more routes to the same app under /api/v1.
	Extra func(r fiber.Router)
	// Push is the phones backend (notify.Service); nil: push endpoints
	// answer 404 push_disabled (push.go).
	Push PushService
	// MaxExports bounds the exports running at once (default 2); more
	// answer 429 export_busy.
	MaxExports int
	// QueryRate (per user and minute, default 300), QueryBurst (default
	// 60) and MaxQueries (at once on the instance, default 8) bound the
	// InfluxDB-backed endpoints; beyond, 429 rate_limited.
	QueryRate, QueryBurst, MaxQueries int
	// TrustedProxies are the reverse proxies (IPs or CIDRs) whose
	// X-Forwarded-For gives the client address (CARE_TRUSTED_PROXIES).
	TrustedProxies []string
	// Session, when set, authenticates a request without a bearer token
	// from the console's session cookie (web.Console.Session): the user
	// token it holds, or false. It refuses unsafe methods without the
	// session's CSRF token.
	Session func(c *fiber.Ctx) (token string, ok bool)
}

// Server is the Fiber application with its dependencies.
type Server struct {
	o   Options
	q   query.Service // the query layer over o's sources (query.go)
	app *fiber.App
	log zerolog.Logger

	requests *metrics.CounterVec
	latency  *metrics.HistogramVec
	logins   *loginLimiter
	proxies  []netip.Prefix // CARE_TRUSTED_PROXIES
	streams  chan struct{}  // one slot per open SSE client
	open     openStreams    // open SSE clients by user, to end them
	exports  chan struct{}  // one slot per running export
	queries  *queryLimiter  // InfluxDB-backed endpoints
	// ctx ends at Shutdown, which ends the open SSE streams.
	ctx  context.Context
	stop context.CancelFunc
}

const (
	RoleAdmin       = "admin"
	RoleCoordinator = "coordinator"
	RoleCaregiver   = "caregiver"
	localPrincipal  = "principal"
	// BootstrapAdminID is who the CARE_ADMIN_TOKEN acts as in the audit
	// trail and on alerts. User ids match ^[a-z0-9][a-z0-9_-]{0,63}$, so
	// the leading "@" keeps any user from being mistaken for it.
	BootstrapAdminID = catalog.BootstrapAdminID
	maxBodyBytes     = 1 << 20
)

// New builds the API.
func New(o Options) *Server {
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Location == nil {
		o.Location = time.UTC
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = defaultHeartbeat
	}
	if o.MaxStreams <= 0 {
		o.MaxStreams = defaultMaxStreams
	}
	if o.MaxStreamsPerUser <= 0 {
		o.MaxStreamsPerUser = defaultMaxStreamsPerUser
	}
	if o.StreamRecheck <= 0 {
		o.StreamRecheck = defaultStreamRecheck
	}
	if o.StreamWriteTimeout <= 0 {
		o.StreamWriteTimeout = defaultStreamWriteTimeout
	}
	s := &Server{o: o, log: o.Log, logins: newLoginLimiter(o.Clock), streams: make(chan struct{}, o.MaxStreams)}
	if o.MaxExports <= 0 {
		o.MaxExports = defaultMaxExports
	}
	s.o = o
	s.q = s.newQueryService()
	s.exports = make(chan struct{}, o.MaxExports)
	s.queries = newQueryLimiter(o.Clock, o.QueryRate, o.QueryBurst, o.MaxQueries)
	s.ctx, s.stop = context.WithCancel(context.Background())
	s.requests = o.Metrics.Counter("carehub_http_requests_total", "HTTP requests by route and status class.", "route", "status")
	s.latency = o.Metrics.Histogram("carehub_http_request_seconds", "HTTP request latency by route.", metrics.DefBuckets, "route")
	fc := fiber.Config{
		AppName:               "carehub",
		DisableStartupMessage: true,
		BodyLimit:             maxBodyBytes,
		ErrorHandler:          s.errorHandler,
		ReadTimeout:           30 * time.Second,
		IdleTimeout:           120 * time.Second,
	}
	// Behind a reverse proxy the client's address is in X-Forwarded-For;
	// clientIP believes it only from TrustedProxies and only its rightmost
	// untrusted entry, so the login limit and the audit trail see the real
	// source. Fiber's own ProxyHeader would return the raw header.
	s.proxies = parseTrustedProxies(o.TrustedProxies)
	s.app = fiber.New(fc)
	s.app.Use(s.observe)
	s.app.Use(securityHeaders)
	for _, prefix := range []string{"", "/api/v1"} {
		s.app.Get(prefix+"/healthz", s.healthz)
		s.app.Get(prefix+"/readyz", s.readyz)
		s.app.Get(prefix+"/metrics", s.metrics)
	}
	s.app.Get("/api/v1/openapi.json", s.openapi)
	s.app.Post("/api/v1/auth/login", s.login)
	s.pushPublicRoutes()
	v1 := s.app.Group("/api/v1", s.authenticate)
	s.routes(v1)
	s.pushRoutes(v1)
	if o.Extra != nil {
		o.Extra(v1)
	}
	return s
}

// App returns the Fiber app (for app.Test in tests and for Listen).
func (s *Server) App() *fiber.App { return s.app }

// Listen serves on addr until Shutdown.
func (s *Server) Listen(addr string) error { return s.app.Listen(addr) }

// Shutdown stops accepting requests and waits for those in progress.
// Open alert streams end first, or they would hold the shutdown for its
// whole timeout.
func (s *Server) Shutdown(timeout time.Duration) error {
	s.stop()
	return s.app.ShutdownWithTimeout(timeout)
}

func (s *Server) observe(c *fiber.Ctx) error {
	start := time.Now()
	err := c.Next()
	status := c.Response().StatusCode()
	if err != nil {
		var ae *Error
		var fe *fiber.Error
		switch {
		case errors.As(err, &ae):
			status = ae.Status
		case errors.As(err, &fe):
			status = fe.Code
		default:
			status = http.StatusInternalServerError
		}
	}
	s.auditFailure(c, status)
	route := c.Route().Path
	s.requests.With(route, statusClass(status)).Inc()
	s.latency.With(route).Observe(time.Since(start).Seconds())
	return err
}

// securityHeaders marks every answer: no MIME sniffing, no referrer, and no
// caching of anything under /api/v1, where answers carry personal data (a
// shared care-home PC's browser cache must not keep a resident's readings).
func securityHeaders(c *fiber.Ctx) error {
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	if strings.HasPrefix(c.Path(), "/api/v1/") {
		c.Set(fiber.HeaderCacheControl, "no-store")
	}
	return c.Next()
}

func statusClass(code int) string {
	return string(rune('0'+code/100)) + "xx"
}

// routes declares every authenticated /api/v1 endpoint. The role checks
// here are the coarse ones; which residents a caregiver sees is checked
// per resident (canSee), and anything else answers 404 (contract §4).
func (s *Server) routes(v1 fiber.Router) {
	staff := s.requireRole(RoleAdmin, RoleCoordinator)
	admin := s.requireRole(RoleAdmin)
	query := s.influxQuery // rate and concurrency of InfluxDB-backed reads (querycost.go)

	v1.Post("/residents", staff, s.createResident)
	v1.Get("/residents", s.listResidents)
	v1.Get("/residents/:id", s.getResident)
	v1.Patch("/residents/:id", staff, s.patchResident)
	v1.Delete("/residents/:id", admin, s.eraseResident)
	v1.Put("/residents/:id/consent", staff, s.putConsent)
	v1.Post("/homes", staff, s.createHome)
	v1.Get("/homes", s.listHomes)
	v1.Get("/homes/:id", s.getHome)
	v1.Get("/residents/:id/readings", query, s.readings)
	v1.Get("/residents/:id/latest", query, s.latest)
	v1.Get("/residents/:id/summary", query, s.daySummary)
	v1.Get("/residents/:id/export", query, s.export)
	v1.Get("/overview", query, s.overview)
	v1.Get("/residents/:id/devices", s.residentDevices)
	v1.Get("/residents/:id/status", s.getStatus)
	v1.Put("/residents/:id/status", s.putStatus)
	v1.Get("/residents/:id/settings", s.getSettings)
	v1.Put("/residents/:id/settings", staff, s.putSettings)
	v1.Get("/residents/:id/escalation", s.getChain)
	v1.Put("/residents/:id/escalation", staff, s.putChain)

	v1.Post("/devices", staff, s.createDevice)
	v1.Get("/devices", staff, s.listDevices)
	v1.Post("/devices/:id/disable", staff, s.disableDevice(true))
	v1.Post("/devices/:id/enable", staff, s.disableDevice(false))
	v1.Post("/devices/:id/rotate-credentials", staff, s.rotateCredentials)

	v1.Get("/alerts", s.listAlerts)
	v1.Get("/alerts/stream", s.alertStream)
	v1.Get("/alerts/stats", staff, query, s.alertStats) // before /alerts/:id, which would take "stats" as an id
	v1.Get("/alerts/:id", s.getAlert)
	v1.Post("/alerts/:id/ack", s.ackAlert)
	v1.Post("/alerts/:id/resolve", s.resolveAlert)
	v1.Post("/alerts/:id/comment", s.commentAlert)
	v1.Post("/alerts/:id/assign", s.assignAlert)
	v1.Post("/alerts/:id/snooze", s.snoozeAlert)

	v1.Post("/users", admin, s.createUser)
	v1.Get("/users", staff, s.listUsers)
	v1.Get("/users/:id", admin, s.getUser)
	v1.Put("/users/:id/residents", staff, s.setUserResidents)
	v1.Post("/users/:id/revoke-tokens", admin, s.revokeUserTokens)
	v1.Post("/users/:id/disable", admin, s.userAdmin("user.disable", s.disableUser))
	v1.Post("/users/:id/enable", admin, s.userAdmin("user.enable", s.enableUser))
	v1.Put("/users/:id/role", admin, s.userAdmin("user.role", s.setUserRole))
	v1.Post("/users/:id/password", admin, s.userAdmin("user.password_reset", s.resetUserPassword))
	v1.Delete("/users/:id", admin, s.userAdmin("user.delete", s.deleteUser))
	v1.Post("/auth/logout", s.logout)
	v1.Get("/auth/me", s.me)

	v1.Get("/audit", admin, s.auditTrail)
}
