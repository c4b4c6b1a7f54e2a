// Package audit records every read or change of a resident's data (PIPA:
// account, time, source address, resident id, action, reason for exports)
// on the append-only JetStream stream CARE_AUDIT.
package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/internal/model"
)

// Entry is one audited access.
type Entry struct {
	At         time.Time `json:"at"`
	Actor      string    `json:"actor"` // user id, or "admin" for the bootstrap token
	Role       string    `json:"role"`
	Source     string    `json:"source"` // client address
	ResidentID string    `json:"resident_id"`
	Action     string    `json:"action"` // e.g. "readings.read", "resident.create", "export.fhir"
	Reason     string    `json:"reason,omitempty"`
	Status     int       `json:"status,omitempty"` // HTTP status of the answer
}

// Log appends entries to CARE_AUDIT.
type Log struct {
	js  jetstream.JetStream
	now func() time.Time
}

// New returns an audit log on js.
func New(js jetstream.JetStream, now func() time.Time) *Log {
	if now == nil {
		now = time.Now
	}
	return &Log{js: js, now: now}
}

// Record stores e durably before it returns: an access that cannot be
// audited is refused by the caller (fail closed).
func (l *Log) Record(ctx context.Context, e Entry) error {
	if e.At.IsZero() {
		e.At = l.now().UTC()
	}
	subject := model.AuditSubject(e.ResidentID)
	if e.ResidentID == "" {
		subject = model.AuditSubject("_none")
	}
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if _, err := l.js.Publish(ctx, subject, data); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}
