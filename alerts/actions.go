package alerts

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/carehub/carehub/alerts/escalation"
	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/internal/catalog"
)

// Note kinds of what a person does to an alert without changing its state.
// They are not transitions: the contract's transitions are fixed (contract
// §3: raised, repeated, escalated, acknowledged, resolved, auto_cleared), so
// these are stored on the alert and served by GET, never published on their
// own. The next transition's message carries them in "notes".
const (
	NoteComment  = "comment"
	NoteAssigned = "assigned"
	NoteSnoozed  = "snoozed"
)

// Bounds of what people add to one alert: the record is one KV value and is
// sent whole with every later transition, so it must stay small.
const (
	MaxNoteBytes = 4000
	// MaxNotes bounds an alert's notes history; past it, comments are
	// refused (transitions are still noted).
	MaxNotes = 200
)

// Comment adds a person's note to the alert's history (domain.md: every
// transition records who, when and a note; a comment is a note without a
// transition). Any status may be commented, resolved included: the
// follow-up after a visit is often written later. The alert's seq,
// transition and updated_at do not change, and nothing is published.
func (m *Manager) Comment(ctx context.Context, id, by, note string) (Alert, error) {
	if !catalog.ValidActor(by) {
		return Alert{}, fmt.Errorf("%w: the author must be a user id", ErrInvalid)
	}
	if strings.TrimSpace(note) == "" || len(note) > MaxNoteBytes {
		return Alert{}, fmt.Errorf("%w: note must be 1 to %d bytes", ErrInvalid, MaxNoteBytes)
	}
	return m.annotate(ctx, id, func(a *Alert, now time.Time) error {
		a.Notes = append(a.Notes, Note{At: now, By: by, Transition: NoteComment, Text: note})
		return nil
	})
}

// Assign hands the alert to userID: it becomes AssignedTo and the first of
// the recipients, and stays a recipient through later escalation. Who may
// assign to whom (an existing user, a caregiver of the resident) is the
// API's check; the Manager does not know users. A resolved alert is
// ErrConflict: nobody is left to hand it to.
func (m *Manager) Assign(ctx context.Context, id, by, userID string) (Alert, error) {
	if !catalog.ValidActor(by) || !catalog.ValidID(userID) {
		return Alert{}, fmt.Errorf("%w: assigner and assignee must be user ids", ErrInvalid)
	}
	return m.annotate(ctx, id, func(a *Alert, now time.Time) error {
		if a.Status == StatusResolved {
			return fmt.Errorf("%w: alert %s is resolved", ErrConflict, a.ID)
		}
		a.AssignedTo = userID
		a.Recipients = escalation.WithAssignee(a.Recipients, userID)
		a.Notes = append(a.Notes, Note{At: now, By: by, Transition: NoteAssigned, Text: userID})
		return nil
	})
}

// RecordSnooze notes on the alert that by snoozed its rule for the resident
// until until, for reason, and shows the suppression in "suppressed" at
// once (the settings store holds the snooze itself; Tick then holds the
// alert's escalation). Critical alerts are never suppressed (domain.md,
// SettingsSource), so snoozing one is ErrInvalid.
func (m *Manager) RecordSnooze(ctx context.Context, id, by string, until time.Time, reason string) (Alert, error) {
	if !catalog.ValidActor(by) {
		return Alert{}, fmt.Errorf("%w: the author must be a user id", ErrInvalid)
	}
	if strings.TrimSpace(reason) == "" || len(reason) > MaxNoteBytes {
		return Alert{}, fmt.Errorf("%w: reason must be 1 to %d bytes", ErrInvalid, MaxNoteBytes)
	}
	return m.annotate(ctx, id, func(a *Alert, now time.Time) error {
		if a.Severity == rules.SeverityCritical {
			return fmt.Errorf("%w: critical alerts cannot be snoozed", ErrInvalid)
		}
		if !until.After(now) {
			return fmt.Errorf("%w: snooze must end in the future", ErrInvalid)
		}
		u := until.UTC()
		if a.Status != StatusResolved {
			a.Suppressed = &Suppression{Mode: ModeSnooze, Reason: reason, By: by, Until: &u}
		}
		a.Notes = append(a.Notes, Note{At: now, By: by, Transition: NoteSnoozed, Text: reason})
		return nil
	})
}

// annotate applies change to a copy of the alert and stores it like any
// other alert change (Manager.change). It adds no transition, so commit
// publishes nothing new.
func (m *Manager) annotate(ctx context.Context, id string, change func(a *Alert, now time.Time) error) (Alert, error) {
	return m.change(ctx, id, func(cur *record, now time.Time) (*record, error) {
		if len(cur.Alert.Notes) >= MaxNotes {
			return nil, fmt.Errorf("%w: alert %s has %d notes, the most it keeps", ErrInvalid, id, MaxNotes)
		}
		nr := cur.clone()
		return nr, change(&nr.Alert, now)
	})
}
