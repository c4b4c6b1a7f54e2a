package api

import (
	"context"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/internal/audit"
	"github.com/carehub/carehub/internal/catalog"
)

// AuditReader answers audit trail queries (audit.Log).
type AuditReader interface {
	Query(ctx context.Context, q audit.Query) (audit.Result, error)
}

// Bounds of an audit query: a week by default, a year at most per request.
const (
	defaultAuditWindow = 7 * 24 * time.Hour
	maxAuditWindow     = 366 * 24 * time.Hour
	defaultAuditLimit  = 100
)

// auditTrail: GET /audit?resident_id=&from=&to=&limit= (admins) → who read
// or changed which resident's data (domain.md privacy), oldest first.
// Reading the trail is itself audited.
func (s *Server) auditTrail(c *fiber.Ctx) error {
	if s.o.AuditReader == nil {
		return ErrUnavailable.with("the audit trail is not readable on this instance")
	}
	// Without to: everything up to now, including this very second.
	q := audit.Query{ResidentID: c.Query("resident_id"), To: s.o.Clock().UTC().Add(time.Second), Limit: defaultAuditLimit}
	if q.ResidentID != "" && !catalog.ValidID(q.ResidentID) {
		return invalid("invalid_field", "resident_id is not a valid id")
	}
	var err error
	if v := c.Query("to"); v != "" {
		if q.To, err = time.Parse(time.RFC3339, v); err != nil {
			return invalid("invalid_time", "to must be an RFC 3339 time")
		}
	}
	q.From = q.To.Add(-defaultAuditWindow)
	if v := c.Query("from"); v != "" {
		if q.From, err = time.Parse(time.RFC3339, v); err != nil {
			return invalid("invalid_time", "from must be an RFC 3339 time")
		}
	}
	if !q.From.Before(q.To) || q.To.Sub(q.From) > maxAuditWindow {
		return invalid("invalid_time_range", "from must be before to, at most 366 days apart")
	}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > audit.MaxQueryLimit {
			return invalid("invalid_limit", "limit must be an integer from 1 to "+strconv.Itoa(audit.MaxQueryLimit))
		}
		q.Limit = n
	}
	if err := s.audit(c, q.ResidentID, "audit.read", ""); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 20*time.Second)
	defer cancel()
	res, err := s.o.AuditReader.Query(ctx, q)
	if err != nil {
		s.log.Error().Err(err).Msg("audit query failed")
		return ErrUnavailable.with("the audit trail did not answer; retry later")
	}
	return c.JSON(res)
}
