package api

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/internal/users"
)

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
