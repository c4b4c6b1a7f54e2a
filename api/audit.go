package api

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/internal/audit"
	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/query"
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
	ctx, cancel := context.WithTimeout(c.UserContext(), 20*time.Second)
	defer cancel()
	// Through the query layer, as the console's audit page reads it.
	qs, p := s.query(c)
	res, err := qs.AuditTrail(ctx, p, q)
	if errors.Is(err, errAuditFailed) || errors.Is(err, query.ErrNotFound) {
		return queryError(err, "no audit trail")
	}
	if err != nil {
		s.log.Error().Err(err).Msg("audit query failed")
		return ErrUnavailable.with("the audit trail did not answer; retry later")
	}
	return c.JSON(res)
}

// Outcomes an audit entry records (audit.Outcome*).
const (
	OutcomeOK     = audit.OutcomeOK
	OutcomeDenied = audit.OutcomeDenied
	OutcomeError  = audit.OutcomeError
)

// auditOutcome records an access with its outcome: one resident (a single
// id) or the residents a list disclosed (several). Like audit, a failure to
// record refuses the request.
func (s *Server) auditOutcome(c *fiber.Ctx, residents []string, action, reason, outcome string) error {
	p := principal(c)
	e := audit.Entry{At: s.o.Clock().UTC(), Actor: p.ID, Role: p.Role, Source: s.clientIP(c), Action: action, Reason: reason, Outcome: outcome}
	if len(residents) == 1 {
		e.ResidentID = residents[0]
	} else if len(residents) > 1 {
		e.Residents = residents
	}
	if err := s.o.Audit.Record(c.UserContext(), e); err != nil {
		s.log.Error().Err(err).Str("action", action).Msg("audit record failed; request refused")
		return ErrUnavailable.with("the access could not be audited; retry later")
	}
	return nil
}

// AuditUserAction records a user administration action (create, disable,
// delete, role change, password reset, token revocation, assignment) on
// user target by the caller, with its outcome; apiauth's handlers call it.
// A failure to record refuses the request like every audit.
func (s *Server) AuditUserAction(c *fiber.Ctx, action, target, outcome string) error {
	return s.recordEntry(c, audit.Entry{Action: action, Target: target, Outcome: outcome})
}

// auditLogin records a login attempt: the claimed user id (only when it is
// shaped like an id: anything else may be a password typed in the wrong
// field) and whether it succeeded. It is recorded before the answer goes
// out; a failure to record a successful login refuses it.
func (s *Server) auditLogin(c *fiber.Ctx, userID, outcome, reason string) error {
	if !catalog.ValidID(userID) {
		userID = ""
	}
	e := audit.Entry{At: s.o.Clock().UTC(), Actor: userID, Source: s.clientIP(c), Action: "login", Reason: reason, Outcome: outcome, Target: userID}
	if err := s.o.Audit.Record(c.UserContext(), e); err != nil {
		s.log.Error().Err(err).Str("action", "login").Msg("audit record failed")
		return ErrUnavailable.with("the login could not be audited; retry later")
	}
	return nil
}

// recordEntry fills in who, when and from where, and records e.
func (s *Server) recordEntry(c *fiber.Ctx, e audit.Entry) error {
	p := principal(c)
	e.At, e.Actor, e.Role, e.Source = s.o.Clock().UTC(), p.ID, p.Role, c.IP()
	if err := s.o.Audit.Record(c.UserContext(), e); err != nil {
		s.log.Error().Err(err).Str("action", e.Action).Msg("audit record failed; request refused")
		return ErrUnavailable.with("the access could not be audited; retry later")
	}
	return nil
}

// localAudited holds the entry s.audit recorded for this request.
const localAudited = "audited"

// auditFailure records the real outcome of a request that was audited as
// ok before it acted (a change is audited first, so that it cannot happen
// unaudited) and then failed: a second entry with the same who and what,
// outcome denied (4xx) or error (5xx) and the status.
func (s *Server) auditFailure(c *fiber.Ctx, status int) {
	e, ok := c.Locals(localAudited).(audit.Entry)
	if !ok || status < 400 {
		return
	}
	e.At, e.Status, e.Outcome = s.o.Clock().UTC(), status, OutcomeDenied
	if status >= 500 {
		e.Outcome = OutcomeError
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.o.Audit.Record(ctx, e); err != nil {
		s.log.Error().Err(err).Str("action", e.Action).Msg("audit: the failed outcome could not be recorded")
	}
}

// Auditor records accesses to residents' data.
type Auditor interface {
	Record(ctx context.Context, e audit.Entry) error
}

// audit records an access to a resident's data; when that fails the request
// fails too: an unaudited access must not happen.
func (s *Server) audit(c *fiber.Ctx, residentID, action, reason string) error {
	p := principal(c)
	e := audit.Entry{
		At: s.o.Clock().UTC(), Actor: p.ID, Role: p.Role, Source: s.clientIP(c),
		ResidentID: residentID, Action: action, Reason: reason, Outcome: audit.OutcomeOK,
	}
	err := s.o.Audit.Record(c.UserContext(), e)
	if err == nil {
		c.Locals(localAudited, e) // the outcome is corrected if the request fails after this
	}
	if err != nil {
		s.log.Error().Err(err).Str("resident_id", residentID).Str("action", action).Msg("audit record failed; request refused")
		return ErrUnavailable.with("the access could not be audited; retry later")
	}
	return nil
}
