package api

import (
	"strconv"
	"time"
	"unicode/utf8"

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
// the future; settings written back with an ended mode are fine).
func modeEnd(mode string, until, now time.Time) (time.Time, error) {
	limit, ok := modeCaps[mode]
	if !ok {
		return until, nil // no mode
	}
	if until.IsZero() {
		if mode == rules.ModeQuiet {
			return until, invalid("mode_needs_end", "quiet mode needs until, at most 4 hours from now: a visit that is not ended would silence the alarms")
		}
		return now.Add(limit).UTC(), nil
	}
	if until.After(now.Add(limit)) {
		return until, invalid("mode_too_long", mode+" mode may last at most "+capText(limit)+" from now; set it again to renew it")
	}
	return until.UTC(), nil
}

func capText(d time.Duration) string {
	if d >= 24*time.Hour {
		return strconv.Itoa(int(d/(24*time.Hour))) + " days"
	}
	return strconv.Itoa(int(d/time.Hour)) + " hours"
}

// modeReasonOK bounds a mode's reason.
func modeReasonOK(reason string) error {
	if utf8.RuneCountInString(reason) > maxModeReasonRunes {
		return invalid("invalid_reason", "mode reason longer than "+strconv.Itoa(maxModeReasonRunes)+" characters")
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
