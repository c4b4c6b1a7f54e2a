package api

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/alerts/rules"
)

// How long a mode that pauses the activity rules may last (issue 9 item
// 16): a mode nobody ended would silence the inactivity alarms of a person
// at home for good. Quiet is a care worker's visit: it must say when it
// ends, at most 4 hours on. Away and hospital default to their cap when no
// end is given and are renewed by setting them again.
var modeCaps = map[string]time.Duration{
	rules.ModeQuiet:    4 * time.Hour,
	rules.ModeAway:     30 * 24 * time.Hour,
	rules.ModeHospital: 90 * 24 * time.Hour,
}

// maxModeReasonRunes bounds a mode's reason (mode_reason).
const maxModeReasonRunes = 500

// modeEnd checks a mode's end against its cap and returns the end to
// store: until itself, or for away and hospital without one, now plus the
// cap. An until in the past is left to the caller (a status must end in
// the future; settings written back with an ended mode are fine). field
// names the end in the request's body, for a refusal to point at.
func modeEnd(mode, field string, until, now time.Time) (time.Time, error) {
	limit, ok := modeCaps[mode]
	if !ok {
		return until, nil // no mode
	}
	if until.IsZero() {
		if mode == rules.ModeQuiet {
			return until, invalidAt("mode_needs_end", field, "quiet mode needs an end, at most 4 hours from now: a visit that is not ended would silence the alarms")
		}
		return now.Add(limit).UTC(), nil
	}
	if until.After(now.Add(limit)) {
		if limit >= 24*time.Hour {
			return until, invalidAt("mode_too_long", field, "%s mode may last at most %d days from now; set it again to renew it", mode, int(limit/(24*time.Hour)))
		}
		return until, invalidAt("mode_too_long", field, "%s mode may last at most %d hours from now; set it again to renew it", mode, int(limit/time.Hour))
	}
	return until.UTC(), nil
}

// modeReasonOK bounds a mode's reason (field: its name in the body).
func modeReasonOK(reason, field string) error {
	if utf8.RuneCountInString(reason) > maxModeReasonRunes {
		return invalidAt("invalid_reason", field, "mode reason longer than %d characters", maxModeReasonRunes)
	}
	return nil
}

// modeJSON is a resident's active mode on the overview.
type modeJSON struct {
	Mode  string     `json:"mode"`
	By    string     `json:"by,omitempty"`
	Until *time.Time `json:"until"` // null only for a mode set before modes had an end
}

// activeMode returns a resident's mode when it is in force now, else nil.
func (s *Server) activeMode(rid string, now time.Time) *modeJSON {
	if s.o.Settings == nil {
		return nil
	}
	st := s.o.Settings.Settings(rid)
	if _, ok := modeCaps[st.Mode]; !ok || (!st.ModeUntil.IsZero() && !now.Before(st.ModeUntil)) {
		return nil
	}
	m := &modeJSON{Mode: st.Mode, By: st.ModeBy}
	if !st.ModeUntil.IsZero() {
		u := st.ModeUntil.UTC()
		m.Until = &u
	}
	return m
}

type statusBody struct {
	Mode   string     `json:"mode"` // away, hospital, quiet, or "" / "none" to clear
	Reason string     `json:"reason"`
	Until  *time.Time `json:"until"`
}

type statusView struct {
	ResidentID string     `json:"resident_id"`
	Mode       string     `json:"mode"`
	Reason     string     `json:"reason,omitempty"`
	By         string     `json:"by,omitempty"`
	Until      *time.Time `json:"until"`
	Active     bool       `json:"active"`
}

func (s *Server) viewStatus(rid string, st rules.Settings) statusView {
	v := statusView{ResidentID: rid, Mode: st.Mode, Reason: st.ModeReason, By: st.ModeBy}
	if v.Mode == "" {
		v.Mode = "none"
	}
	if !st.ModeUntil.IsZero() {
		t := st.ModeUntil.UTC()
		v.Until = &t
	}
	v.Active = st.Mode != "" && (st.ModeUntil.IsZero() || s.o.Clock().Before(st.ModeUntil))
	return v
}

// getStatus: GET /residents/{id}/status → the resident's mode.
func (s *Server) getStatus(c *fiber.Ctx) error {
	if err := s.needSettings(); err != nil {
		return err
	}
	r, err := s.visibleResident(c)
	if err != nil {
		return err
	}
	if err := s.audit(c, r.ID, "status.read", ""); err != nil {
		return err
	}
	return c.JSON(s.viewStatus(r.ID, s.o.Settings.Settings(r.ID)))
}

// putStatus: PUT /residents/{id}/status {"mode", "reason", "until"?} puts
// a resident in away, hospital or quiet mode (a care worker's visit), which
// pauses the activity rules (domain.md "Suppression with a reason, always
// audited"); mode "none" ends it. A caregiver may set it for their own
// residents: they are the ones who visit.
func (s *Server) putStatus(c *fiber.Ctx) error {
	if err := s.needSettings(); err != nil {
		return err
	}
	r, err := s.visibleResident(c)
	if err != nil {
		return err
	}
	var b statusBody
	if err := decode(c, &b); err != nil {
		return err
	}
	if b.Mode == "none" {
		b.Mode = ""
	}
	switch b.Mode {
	case "", rules.ModeAway, rules.ModeHospital, rules.ModeQuiet:
	default:
		return invalid("invalid_mode", "mode must be one of away, hospital, quiet, none")
	}
	b.Reason = strings.TrimSpace(b.Reason)
	if b.Mode != "" && b.Reason == "" {
		return invalid("invalid_reason", "reason is required: a suppression is audited with its reason")
	}
	if len(b.Reason) > maxNoteBytes {
		return invalid("invalid_reason", "reason longer than "+strconv.Itoa(maxNoteBytes)+" bytes")
	}
	if b.Until != nil && !b.Until.After(s.o.Clock()) {
		return invalid("invalid_time", "until must be in the future")
	}
	if err := modeReasonOK(b.Reason, "reason"); err != nil {
		return err
	}
	var until time.Time
	if b.Until != nil {
		until = *b.Until
	}
	if until, err = modeEnd(b.Mode, "until", until, s.o.Clock()); err != nil {
		return err
	}
	if !until.IsZero() {
		b.Until = &until
	}
	if err := s.audit(c, r.ID, "status.set", b.Mode+": "+b.Reason); err != nil {
		return err
	}
	st, err := s.o.Settings.Update(c.UserContext(), r.ID, func(st *rules.Settings) error {
		st.Mode, st.ModeReason, st.ModeBy, st.ModeUntil = b.Mode, b.Reason, principal(c).ID, time.Time{}
		if b.Until != nil {
			st.ModeUntil = b.Until.UTC()
		}
		if b.Mode == "" {
			st.ModeReason, st.ModeBy = "", ""
		}
		return nil
	})
	if err != nil {
		return alertError(err, "invalid_settings")
	}
	return c.JSON(s.viewStatus(r.ID, st))
}
