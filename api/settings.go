package api

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/internal/query"
)

// SettingsStore is what the API needs of settings.Store: the
// resident's rule settings from memory, and a validated write.
type SettingsStore interface {
	Settings(residentID string) rules.Settings
	Put(ctx context.Context, residentID string, st rules.Settings) error
	// Update changes the stored settings atomically (read, change, write
	// only if nobody wrote in between); an error from change aborts.
	Update(ctx context.Context, residentID string, change func(*rules.Settings) error) (rules.Settings, error)
}

func (s *Server) needSettings() error {
	if s.o.Settings == nil {
		return ErrUnavailable.with("rule settings are not configured on this instance")
	}
	return nil
}

// settingsETag is query.SettingsETag, shared with the console.
var settingsETag = query.SettingsETag

// getSettings: GET /residents/{id}/settings → the resident's rule settings
// (defaults when none are stored) with an ETag; through the query layer,
// as the console's settings page reads them.
func (s *Server) getSettings(c *fiber.Ctx) error {
	if err := s.needSettings(); err != nil {
		return err
	}
	q, p := s.query(c)
	st, err := q.Settings(c.UserContext(), p, c.Params("id"))
	if err != nil {
		return queryError(err, "no resident "+truncate(c.Params("id"), 64))
	}
	c.Set(fiber.HeaderETag, query.SettingsETag(st))
	return c.JSON(st)
}

// putSettings: PUT /residents/{id}/settings (staff) replaces the rule
// settings, validated by rules.Settings.Validate (422 with its message).
// Durations are Go duration strings ("90s", "8h"), each at least its rule's
// floor; a bare number other than 0 is a 422 naming the field.
// With If-Match the write happens only if the settings are still the ones
// the client read (412 otherwise). The check and the write are not one
// atomic step; two coordinators editing within the same millisecond can
// still race.
func (s *Server) putSettings(c *fiber.Ctx) error {
	if err := s.needSettings(); err != nil {
		return err
	}
	r, err := s.visibleResident(c)
	if err != nil {
		return err
	}
	// Durations are Go duration strings; a bare number (nanoseconds) is
	// refused with the field named, before decoding would accept it.
	if err := rules.CheckDurationSyntax(c.Body()); err != nil {
		return invalid("invalid_settings", err.Error())
	}
	var b rules.Settings
	if err := decode(c, &b); err != nil {
		return err
	}
	if err := b.Validate(); err != nil {
		return invalidFields("invalid_settings", err)
	}
	if b.Mode != "" && strings.TrimSpace(b.ModeReason) == "" {
		return invalidFields("invalid_settings", rules.Problem{Field: "mode_reason", Reason: "required with a mode (suppression is audited with its reason)"})
	}
	if err := modeReasonOK(b.ModeReason, "mode_reason"); err != nil {
		return err
	}
	if b.Mode != "" && (b.ModeUntil.IsZero() || b.ModeUntil.After(s.o.Clock())) {
		if b.ModeUntil, err = modeEnd(b.Mode, "mode_until", b.ModeUntil, s.o.Clock()); err != nil {
			return err
		}
	}
	m := c.Get(fiber.HeaderIfMatch)
	stale := func(cur rules.Settings) bool { return m != "" && m != "*" && m != settingsETag(cur) }
	if stale(s.o.Settings.Settings(r.ID)) {
		return ErrPrecondition // before auditing: nothing was changed
	}
	if err := s.audit(c, r.ID, "settings.update", b.ModeReason); err != nil {
		return err
	}
	// The If-Match check and the write are one atomic step: a write by
	// someone else in between makes the check run again on what they wrote.
	out, err := s.o.Settings.Update(c.UserContext(), r.ID, func(cur *rules.Settings) error {
		if stale(*cur) {
			return ErrPrecondition
		}
		nb := b
		if nb.Mode != "" && (nb.Mode != cur.Mode || nb.ModeBy == "") {
			nb.ModeBy = principal(c).ID
		}
		if nb.Mode == "" {
			nb.ModeReason, nb.ModeBy, nb.ModeUntil = "", "", time.Time{}
		}
		*cur = nb
		return nil
	})
	if errors.Is(err, ErrPrecondition) {
		return ErrPrecondition
	}
	if err != nil {
		return alertError(err, "invalid_settings")
	}
	c.Set(fiber.HeaderETag, settingsETag(out))
	return c.JSON(out)
}
