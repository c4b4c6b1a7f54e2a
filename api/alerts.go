package api

import (
	"context"
	"encoding/base64"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/internal/query"
	"github.com/carehub/carehub/internal/users"
)

// AlertService is what the API needs of alerts.Manager.
type AlertService interface {
	Get(id string) (alerts.Alert, error)
	List(f alerts.Filter) []alerts.Alert
	Acknowledge(ctx context.Context, id, by, note string) (alerts.Alert, error)
	Resolve(ctx context.Context, id, by, outcome, note string) (alerts.Alert, error)
}

// Page sizes of list endpoints: a default that suits a phone screen and a
// maximum that bounds one answer.
const (
	defaultPageSize = 50
	maxPageSize     = 500
)

// maxNoteBytes bounds a care worker's note on an alert transition.
const maxNoteBytes = 4000

func (s *Server) needAlerts() error {
	if s.o.Alerts == nil {
		return ErrUnavailable.with("alerts are not running on this instance")
	}
	return nil
}

// alertError maps the Manager's typed errors to the catalogue.
func alertError(err error, invalidCode string) error {
	switch {
	case errors.Is(err, alerts.ErrNotFound):
		return ErrNotFound.with("no such alert")
	case errors.Is(err, alerts.ErrConflict):
		return ErrConflict.with(err.Error())
	case errors.Is(err, alerts.ErrInvalid):
		return invalid(invalidCode, err.Error())
	}
	return err
}

// pageLimit parses ?limit= (1..maxPageSize, default defaultPageSize).
func pageLimit(c *fiber.Ctx) (int, error) {
	v := c.Query("limit")
	if v == "" {
		return defaultPageSize, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxPageSize {
		return 0, invalid("invalid_limit", "limit must be an integer from 1 to "+strconv.Itoa(maxPageSize))
	}
	return n, nil
}

// alertCursor is the position after the last alert of a page, in List's
// order (raised_at descending, then id descending). It is opaque to clients.
type alertCursor struct {
	raised time.Time
	id     string
}

func (k alertCursor) encode() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(k.raised.UnixNano(), 10) + ":" + k.id))
}

func parseAlertCursor(v string) (alertCursor, error) {
	bad := badRequest("invalid_cursor", "cursor is not one this API returned; start again without it")
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return alertCursor{}, bad
	}
	ns, id, ok := strings.Cut(string(b), ":")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !ok || err != nil || id == "" {
		return alertCursor{}, bad
	}
	return alertCursor{raised: time.Unix(0, n).UTC(), id: id}, nil
}

type alertsPage struct {
	Alerts     []alerts.Alert `json:"alerts"`
	NextCursor string         `json:"next_cursor,omitempty"`
}

// listAlerts: GET /alerts?resident_id=&status=&severity=&limit=&cursor=
// → {"alerts": [...], "next_cursor"?}, newest first (contract §4), only
// the caller's residents.
func (s *Server) listAlerts(c *fiber.Ctx) error {
	if err := s.needAlerts(); err != nil {
		return err
	}
	f := alerts.Filter{ResidentID: c.Query("resident_id"), Status: c.Query("status"), Severity: c.Query("severity"), Limit: math.MaxInt32}
	switch f.Status {
	case "", alerts.StatusOpen, alerts.StatusAcknowledged, alerts.StatusResolved:
	default:
		return invalid("invalid_status", "status must be one of open, acknowledged, resolved")
	}
	if f.Severity != "" && !alerts.ValidSeverity(f.Severity) {
		return invalid("invalid_severity", "severity must be one of info, warning, high, critical")
	}
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	aq := query.AlertsQuery{Filter: f, Limit: limit}
	if v := c.Query("cursor"); v != "" {
		k, err := parseAlertCursor(v)
		if err != nil {
			return err
		}
		aq.After = &query.AlertCursor{RaisedAt: k.raised, ID: k.id}
	}
	q, p := s.query(c)
	list, next, err := q.AlertsPage(c.UserContext(), p, aq)
	if err != nil {
		return queryError(err, "no resident "+truncate(f.ResidentID, 64))
	}
	out := alertsPage{Alerts: list}
	if next != nil {
		out.NextCursor = alertCursor{raised: next.RaisedAt, id: next.ID}.encode()
	}
	return c.JSON(out)
}

// getAlert: GET /alerts/{id} → the alert with the readings around it
// (issue 4): its fields at the top level and "context", the alert's metric
// from 30 min before it was raised to 30 min after (or now), or, for an
// alert without a metric, the latest value of each metric. When InfluxDB
// fails the answer is still 200, with context null and context_error.
func (s *Server) getAlert(c *fiber.Ctx) error {
	if err := s.needAlerts(); err != nil {
		return err
	}
	q, p := s.query(c)
	a, err := q.Alert(c.UserContext(), p, c.Params("id"))
	if err != nil {
		if errors.Is(err, alerts.ErrInvalid) {
			return alertError(err, "invalid_field")
		}
		return queryError(err, "no such alert")
	}
	return c.JSON(s.withContext(c.UserContext(), a))
}

type noteBody struct {
	Note string `json:"note"`
}

// ackAlert: POST /alerts/{id}/ack [{"note"?}] → 200 alert; an alert that
// is not open is 409 (contract §4).
func (s *Server) ackAlert(c *fiber.Ctx) error {
	a, err := s.visibleAlert(c)
	if err != nil {
		return err
	}
	var b noteBody
	if len(c.Body()) > 0 {
		if err := decode(c, &b); err != nil {
			return err
		}
	}
	if len(b.Note) > maxNoteBytes {
		return invalid("invalid_note", "note longer than "+strconv.Itoa(maxNoteBytes)+" bytes")
	}
	if err := s.audit(c, a.ResidentID, "alert.ack", ""); err != nil {
		return err
	}
	out, err := s.o.Alerts.Acknowledge(c.UserContext(), a.ID, principal(c).ID, b.Note)
	if err != nil {
		return alertError(err, "invalid_field")
	}
	return c.JSON(out)
}

type resolveBody struct {
	Outcome string `json:"outcome"`
	Note    string `json:"note"`
}

// resolveAlert: POST /alerts/{id}/resolve {"outcome", "note"?} → 200
// alert; a resolved alert is 409, an unknown outcome 422 (contract §4).
func (s *Server) resolveAlert(c *fiber.Ctx) error {
	a, err := s.visibleAlert(c)
	if err != nil {
		return err
	}
	var b resolveBody
	if err := decode(c, &b); err != nil {
		return err
	}
	if b.Outcome == "" || b.Outcome == alerts.OutcomeAutoCleared {
		return invalid("invalid_outcome", "outcome must be one of false_alarm, ok_by_phone, visited, emergency_services, hospital")
	}
	if len(b.Note) > maxNoteBytes {
		return invalid("invalid_note", "note longer than "+strconv.Itoa(maxNoteBytes)+" bytes")
	}
	if err := s.audit(c, a.ResidentID, "alert.resolve", ""); err != nil {
		return err
	}
	out, err := s.o.Alerts.Resolve(c.UserContext(), a.ID, principal(c).ID, b.Outcome, b.Note)
	if err != nil {
		return alertError(err, "invalid_outcome")
	}
	return c.JSON(out)
}

// AlertActions is what the comment, assign and snooze endpoints need of
// alerts.Manager beyond AlertService (Options.AlertActions).
type AlertActions interface {
	Comment(ctx context.Context, id, by, note string) (alerts.Alert, error)
	Assign(ctx context.Context, id, by, userID string) (alerts.Alert, error)
	RecordSnooze(ctx context.Context, id, by string, until time.Time, reason string) (alerts.Alert, error)
}

// Bounds of a snooze: at least a minute, at most a day. A longer pause is a
// mode (away, hospital) with its own reason, set through PUT /status.
const (
	minSnoozeMinutes = 1
	maxSnoozeMinutes = 24 * 60
)

func (s *Server) alertActions() (AlertActions, error) {
	if err := s.needAlerts(); err != nil {
		return nil, err
	}
	if s.o.AlertActions == nil {
		return nil, ErrUnavailable.with("alert actions are not supported on this instance")
	}
	return s.o.AlertActions, nil
}

// commentAlert: POST /alerts/{id}/comment {"note"} → 200 alert. The note
// joins the alert's notes history; the alert's state does not change and
// nothing is published (a comment is not one of the contract's
// transitions, contract §3). Any status may be commented.
func (s *Server) commentAlert(c *fiber.Ctx) error {
	acts, err := s.alertActions()
	if err != nil {
		return err
	}
	a, err := s.visibleAlert(c)
	if err != nil {
		return err
	}
	var b noteBody
	if err := decode(c, &b); err != nil {
		return err
	}
	if strings.TrimSpace(b.Note) == "" || len(b.Note) > maxNoteBytes {
		return invalid("invalid_note", "note is required, at most "+strconv.Itoa(maxNoteBytes)+" bytes")
	}
	if err := s.audit(c, a.ResidentID, "alert.comment", ""); err != nil {
		return err
	}
	out, err := acts.Comment(c.UserContext(), a.ID, principal(c).ID, b.Note)
	if err != nil {
		return alertError(err, "invalid_note")
	}
	return c.JSON(out)
}

type assignBody struct {
	UserID string `json:"user_id"`
}

// assignAlert: POST /alerts/{id}/assign {"user_id"} → 200 alert. Staff may
// assign any alert; a caregiver may hand over an alert that is theirs (its
// assignee, or one of its recipients while nobody is assigned), otherwise
// 403. The new assignee must be a user and, when a caregiver, one assigned
// to the resident (422 otherwise): a caregiver who may not see the resident
// could not act on the alert.
func (s *Server) assignAlert(c *fiber.Ctx) error {
	acts, err := s.alertActions()
	if err != nil {
		return err
	}
	a, err := s.visibleAlert(c)
	if err != nil {
		return err
	}
	p := principal(c)
	if p.Role == RoleCaregiver {
		mine := a.AssignedTo == p.ID || (a.AssignedTo == "" && slices.Contains(a.Recipients, p.ID))
		if !mine {
			return ErrForbidden.with("only staff or the alert's assigned caregiver may hand it over")
		}
	}
	var b assignBody
	if err := decode(c, &b); err != nil {
		return err
	}
	if b.UserID == "" {
		return invalid("invalid_user_id", "user_id is required")
	}
	if s.o.Users == nil {
		return ErrUnavailable.with("users are not configured on this instance")
	}
	u, err := s.o.Users.Get(c.UserContext(), b.UserID)
	if err != nil && !errors.Is(err, users.ErrNotFound) {
		s.log.Error().Err(err).Msg("user lookup failed")
		return ErrUnavailable.with("the user store did not answer; retry later")
	}
	// One answer for an unknown id, a disabled user and a caregiver who may
	// not see the resident: a caregiver handing over an alert must not
	// learn which user ids exist.
	if err != nil || u.Disabled || (u.Role == RoleCaregiver && !slices.Contains(u.ResidentIDs, a.ResidentID)) {
		return invalid("invalid_user_id", "that user cannot take alerts of this resident (unknown, disabled, or not assigned to them)")
	}
	if err := s.audit(c, a.ResidentID, "alert.assign", ""); err != nil {
		return err
	}
	out, err := acts.Assign(c.UserContext(), a.ID, p.ID, u.ID)
	if err != nil {
		return alertError(err, "invalid_user_id")
	}
	return c.JSON(out)
}

type snoozeBody struct {
	Minutes int    `json:"minutes"`
	Reason  string `json:"reason"`
}

// snoozeAlert: POST /alerts/{id}/snooze {"minutes", "reason"} → 200 alert.
// It snoozes the alert's rule for the resident in the rule settings
// (Settings.Snoozed[rule]), which holds back new alerts of that rule and
// the escalation of this one, and records the snooze on the alert.
// Suppression always has a reason and is audited with it (domain.md
// "Suppression"). Critical alerts are never suppressed: 422.
func (s *Server) snoozeAlert(c *fiber.Ctx) error {
	acts, err := s.alertActions()
	if err != nil {
		return err
	}
	if err := s.needSettings(); err != nil {
		return err
	}
	a, err := s.visibleAlert(c)
	if err != nil {
		return err
	}
	var b snoozeBody
	if err := decode(c, &b); err != nil {
		return err
	}
	if b.Minutes < minSnoozeMinutes || b.Minutes > maxSnoozeMinutes {
		return invalid("invalid_minutes", "minutes must be an integer from 1 to "+strconv.Itoa(maxSnoozeMinutes))
	}
	b.Reason = strings.TrimSpace(b.Reason)
	if b.Reason == "" || len(b.Reason) > maxReasonBytes {
		return invalid("invalid_reason", "reason is required (a suppression is audited with its reason), at most "+strconv.Itoa(maxReasonBytes)+" bytes")
	}
	if a.Severity == rules.SeverityCritical {
		return invalid("critical_not_snoozable", "critical alerts cannot be snoozed; acknowledge or resolve it")
	}
	if err := s.audit(c, a.ResidentID, "alert.snooze", b.Reason); err != nil {
		return err
	}
	until := s.o.Clock().UTC().Add(time.Duration(b.Minutes) * time.Minute)
	_, err = s.o.Settings.Update(c.UserContext(), a.ResidentID, func(st *rules.Settings) error {
		snoozed := make(map[string]rules.Snooze, len(st.Snoozed)+1)
		for k, v := range st.Snoozed { // the store's map is shared: never write into it
			snoozed[k] = v
		}
		snoozed[a.Rule] = rules.Snooze{Until: until, Reason: b.Reason}
		st.Snoozed = snoozed
		return nil
	})
	if err != nil {
		if errors.Is(err, alerts.ErrInvalid) {
			return invalid("invalid_rule", err.Error())
		}
		s.log.Error().Err(err).Str("resident_id", a.ResidentID).Msg("snooze not stored")
		return ErrUnavailable.with("the settings store did not answer; retry later")
	}
	out, err := acts.RecordSnooze(c.UserContext(), a.ID, principal(c).ID, until, b.Reason)
	if err != nil {
		return alertError(err, "invalid_reason")
	}
	return c.JSON(out)
}
