package api

import (
	"context"
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/internal/audit"
	"github.com/carehub/carehub/internal/query"
)

// The JSON read handlers answer through the query layer (internal/query),
// the same code the console's pages use: one scope rule and one audit
// entry per read, not two copies. This file adapts it to Fiber: the
// request's principal, its audit entries and its errors.

// newQueryService builds the query layer over the server's sources.
func (s *Server) newQueryService() query.Service {
	q := query.Service{
		Registry: s.o.Registry, Series: s.o.Readings, Last: s.o.Trends, Audit: s.o.Audit, Clock: s.o.Clock,
		Mode: func(rid string, now time.Time) string {
			if m := s.activeMode(rid, now); m != nil {
				return m.Mode
			}
			return ""
		},
	}
	if s.o.Alerts != nil {
		q.Manager = s.o.Alerts
	}
	if s.o.Settings != nil {
		q.RuleSettings = s.o.Settings
	}
	if s.o.Chains != nil {
		q.Chains = s.o.Chains
	}
	if s.o.AuditReader != nil {
		q.AuditLog = s.o.AuditReader
	}
	if s.o.Baselines != nil {
		q.Drift = driftSource{s}
	}
	return q
}

// DriftSource answers the overview's worsening baselines for the query
// layer, so that the console's overview shows them as GET /overview does.
func (s *Server) DriftSource() query.DriftSource {
	if s.o.Baselines == nil {
		return nil
	}
	return driftSource{s}
}

type driftSource struct{ s *Server }

func (d driftSource) Drift(ctx context.Context, now time.Time) (map[string][]query.Drift, error) {
	drift, err := d.s.drift(ctx, d.s.o.Baselines, now)
	out := make(map[string][]query.Drift, len(drift))
	for rid, ds := range drift {
		for _, x := range ds {
			out[rid] = append(out[rid], query.Drift(x))
		}
	}
	return out, err
}

// query returns the query layer for one request: its audit entries are the
// request's (a failed request corrects an entry's outcome, as s.audit's),
// and the principal carries the client address.
func (s *Server) query(c *fiber.Ctx) (*query.Service, query.Principal) {
	q := s.q
	q.Audit = requestAuditor{s: s, c: c}
	p := principal(c)
	return &q, query.Principal{ID: p.ID, Role: p.Role, Residents: p.Residents, Source: s.clientIP(c)}
}

// queryPrincipal is the caller as the query layer sees them.
func queryPrincipal(p Principal) query.Principal {
	return query.Principal{ID: p.ID, Role: p.Role, Residents: p.Residents}
}

// errAuditFailed marks a query refused because its access could not be
// audited.
var errAuditFailed = errors.New("audit record failed")

type requestAuditor struct {
	s *Server
	c *fiber.Ctx
}

func (a requestAuditor) Record(ctx context.Context, e audit.Entry) error {
	if err := a.s.o.Audit.Record(ctx, e); err != nil {
		a.s.log.Error().Err(err).Str("resident_id", e.ResidentID).Str("action", e.Action).Msg("audit record failed; request refused")
		return errors.Join(errAuditFailed, err)
	}
	if e.ResidentID != "" {
		a.c.Locals(localAudited, e) // the outcome is corrected if the request fails after this
	}
	return nil
}

// queryError answers a query layer error: ErrNotFound as a 404 saying
// notFound, a failed audit as 503; anything else is returned as it is for
// the handler to answer.
func queryError(err error, notFound string) error {
	switch {
	case errors.Is(err, errAuditFailed):
		return ErrUnavailable.with("the access could not be audited; retry later")
	case errors.Is(err, query.ErrNotFound):
		return ErrNotFound.with(notFound)
	}
	return err
}
