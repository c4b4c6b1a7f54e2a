// Package api is carehub's HTTP API (contract §4) on Fiber: health and
// metrics for operators, the registry for administrators, trends for
// coordinators and alerts for care workers. Every access to a resident's
// data is audited.
package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/internal/audit"
	"github.com/carehub/carehub/internal/metrics"
)

// Registry is what the API needs of the device registry.
type Registry interface {
	CreateResident(ctx context.Context, r devices.Resident) (devices.Resident, error)
	Resident(id string) (devices.Resident, bool)
	RegisterDevice(ctx context.Context, id, kind, residentID string) (devices.Device, string, error)
}

// ReadingsQuery asks for one metric of one resident over a time range,
// optionally aggregated into windows of Every with Fn.
type ReadingsQuery struct {
	ResidentID string
	Metric     string
	From, To   time.Time
	Every      time.Duration // 0 = raw points
	Fn         string        // mean, min, max, count or last when Every > 0
}

// Point is one value at one time.
type Point struct {
	T time.Time
	V float64
}

// ReadingsSource answers readings queries (InfluxDB through Flux).
type ReadingsSource interface {
	Readings(ctx context.Context, q ReadingsQuery) ([]Point, error)
}

// Auditor records accesses to residents' data.
type Auditor interface {
	Record(ctx context.Context, e audit.Entry) error
}

// Check is one readiness probe: nil when the dependency is usable.
type Check func(ctx context.Context) error

// Options are the API's dependencies, built by cmd/carehub.
type Options struct {
	Registry   Registry
	Readings   ReadingsSource
	Audit      Auditor
	Metrics    *metrics.Registry
	Ready      map[string]Check // "mqtt", "nats", "influxdb"
	AdminToken string
	Location   *time.Location
	Clock      func() time.Time
	Log        zerolog.Logger
	// MountUI, when set, adds more routes (the alerts and user endpoints of
	// later packages) to the same app under /api/v1.
	Extra func(r fiber.Router)
}

// Server is the Fiber application with its dependencies.
type Server struct {
	o   Options
	app *fiber.App
	log zerolog.Logger

	requests *metrics.CounterVec
	latency  *metrics.HistogramVec
}

// Principal is who made a request.
type Principal struct {
	ID   string
	Role string // admin, coordinator, caregiver
}

const (
	RoleAdmin       = "admin"
	RoleCoordinator = "coordinator"
	RoleCaregiver   = "caregiver"
	localPrincipal  = "principal"
	maxBodyBytes    = 1 << 20
)

// New builds the API.
func New(o Options) *Server {
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Location == nil {
		o.Location = time.UTC
	}
	s := &Server{o: o, log: o.Log}
	s.requests = o.Metrics.Counter("carehub_http_requests_total", "HTTP requests by route and status class.", "route", "status")
	s.latency = o.Metrics.Histogram("carehub_http_request_seconds", "HTTP request latency by route.", metrics.DefBuckets, "route")
	s.app = fiber.New(fiber.Config{
		AppName:               "carehub",
		DisableStartupMessage: true,
		BodyLimit:             maxBodyBytes,
		ErrorHandler:          s.errorHandler,
		ReadTimeout:           30 * time.Second,
		IdleTimeout:           120 * time.Second,
	})
	s.app.Use(s.observe)
	for _, prefix := range []string{"", "/api/v1"} {
		s.app.Get(prefix+"/healthz", s.healthz)
		s.app.Get(prefix+"/readyz", s.readyz)
		s.app.Get(prefix+"/metrics", s.metrics)
	}
	v1 := s.app.Group("/api/v1", s.authenticate)
	v1.Post("/residents", s.requireRole(RoleAdmin, RoleCoordinator), s.createResident)
	v1.Post("/devices", s.requireRole(RoleAdmin, RoleCoordinator), s.createDevice)
	v1.Get("/residents/:id/readings", s.readings)
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
func (s *Server) Shutdown(timeout time.Duration) error { return s.app.ShutdownWithTimeout(timeout) }

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
	route := c.Route().Path
	s.requests.With(route, statusClass(status)).Inc()
	s.latency.With(route).Observe(time.Since(start).Seconds())
	return err
}

func statusClass(code int) string {
	return string(rune('0'+code/100)) + "xx"
}

// authenticate accepts the bootstrap admin token; users' tokens come with
// the identity endpoints.
func (s *Server) authenticate(c *fiber.Ctx) error {
	h := c.Get(fiber.HeaderAuthorization)
	token, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || token == "" {
		return ErrUnauthorized
	}
	if s.o.AdminToken != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.o.AdminToken)) == 1 {
		c.Locals(localPrincipal, Principal{ID: "admin", Role: RoleAdmin})
		return c.Next()
	}
	return ErrUnauthorized
}

func principal(c *fiber.Ctx) Principal {
	p, _ := c.Locals(localPrincipal).(Principal)
	return p
}

func (s *Server) requireRole(roles ...string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		p := principal(c)
		for _, r := range roles {
			if p.Role == r {
				return c.Next()
			}
		}
		return ErrForbidden
	}
}

// audit records an access to a resident's data; when that fails the request
// fails too: an unaudited access must not happen.
func (s *Server) audit(c *fiber.Ctx, residentID, action, reason string) error {
	p := principal(c)
	err := s.o.Audit.Record(c.UserContext(), audit.Entry{
		At: s.o.Clock().UTC(), Actor: p.ID, Role: p.Role, Source: c.IP(),
		ResidentID: residentID, Action: action, Reason: reason,
	})
	if err != nil {
		s.log.Error().Err(err).Str("resident_id", residentID).Str("action", action).Msg("audit record failed; request refused")
		return ErrUnavailable.with("the access could not be audited; retry later")
	}
	return nil
}

// decode parses a JSON body strictly: unknown fields are errors, so a typo
// in a field name is not silently ignored.
func decode(c *fiber.Ctx, v any) error {
	if err := strictUnmarshal(c.Body(), v); err != nil {
		return ErrMalformedJSON.with("the request body is not valid JSON: " + err.Error())
	}
	return nil
}

func (s *Server) healthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

func (s *Server) readyz(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), 3*time.Second)
	defer cancel()
	checks := fiber.Map{}
	failed := []string{}
	for name, check := range s.o.Ready {
		if err := check(ctx); err != nil {
			checks[name] = err.Error()
			failed = append(failed, name)
		} else {
			checks[name] = "ok"
		}
	}
	if len(failed) > 0 {
		return c.Status(http.StatusServiceUnavailable).JSON(fiber.Map{"status": "unavailable", "failed": failed, "checks": checks})
	}
	return c.JSON(fiber.Map{"status": "ready", "checks": checks})
}

func (s *Server) metrics(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, "text/plain; version=0.0.4; charset=utf-8")
	s.o.Metrics.WriteText(c.Response().BodyWriter())
	return nil
}
