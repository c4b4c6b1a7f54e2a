package api

// Operators' endpoints: /healthz, /readyz and /metrics.

import (
	"context"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/internal/redact"
)

// Check is one readiness probe: nil when the dependency is usable.
type Check func(ctx context.Context) error

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
			// The answer names the check only: errors quote internal
			// addresses (and could quote credentials); the log keeps them.
			s.o.Log.Warn().Err(redact.Err(err)).Str("check", name).Msg("readiness check failed")
			checks[name] = "failed"
			failed = append(failed, name)
		} else {
			checks[name] = "ok"
		}
	}
	body := fiber.Map{"status": "ready", "checks": checks}
	if s.o.AlertLeader != nil {
		body["alert_leader"] = s.o.AlertLeader()
	}
	if len(failed) > 0 {
		body["status"], body["failed"] = "unavailable", failed
		return c.Status(http.StatusServiceUnavailable).JSON(body)
	}
	return c.JSON(body)
}

func (s *Server) metrics(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, "text/plain; version=0.0.4; charset=utf-8")
	s.o.Metrics.WriteText(c.Response().BodyWriter())
	return nil
}
