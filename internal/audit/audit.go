// Package audit records every read or change of a resident's data (PIPA:
// account, time, source address, resident id, action, reason for exports)
// on the append-only JetStream stream CARE_AUDIT.
//
// Entries are hash-chained: each carries the SHA-256 of the stored bytes of
// the entry before it in the stream, so an entry changed, removed or
// inserted afterwards breaks the chain at that point (Verify, `carehub
// audit verify`). Appends are serialized in the process and conditioned on
// the stream's last sequence (JetStream's expected-last-sequence), so two
// writers (two carehub instances) cannot both chain onto the same entry.
package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/retry"
)

// Outcomes of an audited request.
const (
	OutcomeOK     = "ok"     // the data was disclosed or the change made
	OutcomeDenied = "denied" // refused: no consent, wrong password, not allowed
	OutcomeError  = "error"  // failed on carehub's side; nothing or part was disclosed
)

// MaxResidents bounds the residents one entry names; a larger disclosure is
// recorded as several entries.
const MaxResidents = 1000

// Entry is one audited access.
type Entry struct {
	At         time.Time `json:"at"`
	Actor      string    `json:"actor"` // user id, or "admin" for the bootstrap token
	Role       string    `json:"role"`
	Source     string    `json:"source"` // client address
	ResidentID string    `json:"resident_id"`
	// Residents are the residents a list, overview, statistics or stream
	// delivery disclosed (ResidentID is then empty).
	Residents []string `json:"residents,omitempty"`
	Action    string   `json:"action"` // e.g. "readings.read", "resident.create", "export.fhir", "login"
	Reason    string   `json:"reason,omitempty"`
	Status    int      `json:"status,omitempty"`  // HTTP status of the answer
	Outcome   string   `json:"outcome,omitempty"` // ok, denied or error (ok when recorded without one)
	// Target is what a user administration entry acted on (a user id).
	Target string `json:"target,omitempty"`
	// Prev is the hex SHA-256 of the previous entry's stored bytes in
	// CARE_AUDIT (Genesis for the first; "" only on entries written
	// before the chain existed); Record sets it.
	Prev string `json:"prev,omitempty"`
}

// Names reports whether e names resident id (alone or in a list).
func (e Entry) Names(id string) bool {
	if e.ResidentID == id {
		return true
	}
	for _, r := range e.Residents {
		if r == id {
			return true
		}
	}
	return false
}

// ErrInvalid is an entry that cannot be recorded as given (a bad id).
var ErrInvalid = errors.New("audit: invalid entry")

// Log appends entries to CARE_AUDIT.
type Log struct {
	js  jetstream.JetStream
	now func() time.Time

	mu sync.Mutex // serializes appends: one chain
	// head is the last entry's sequence and hash; known is false until it
	// was read from the stream, and again after a failed append.
	known    bool
	headSeq  uint64
	headHash string
}

// New returns an audit log on js.
func New(js jetstream.JetStream, now func() time.Time) *Log {
	if now == nil {
		now = time.Now
	}
	return &Log{js: js, now: now}
}

// Genesis is the prev of the first entry of a trail: the hash of nothing.
var Genesis = Hash(nil)

// Hash is the chain hash of an entry's stored bytes.
func Hash(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

// validate checks the ids an entry names: they become NATS subject tokens
// and are matched by Query, so only registry-shaped ids are accepted.
func validate(e Entry) error {
	if e.ResidentID != "" && !catalog.ValidID(e.ResidentID) {
		return fmt.Errorf("%w: resident id %q is not a valid id", ErrInvalid, e.ResidentID)
	}
	if len(e.Residents) > MaxResidents {
		return fmt.Errorf("%w: %d residents in one entry, at most %d", ErrInvalid, len(e.Residents), MaxResidents)
	}
	for _, id := range e.Residents {
		if !catalog.ValidID(id) {
			return fmt.Errorf("%w: resident id %q is not a valid id", ErrInvalid, id)
		}
	}
	switch e.Outcome {
	case "", OutcomeOK, OutcomeDenied, OutcomeError:
	default:
		return fmt.Errorf("%w: outcome %q is not ok, denied or error", ErrInvalid, e.Outcome)
	}
	return nil
}

// Record stores e durably before it returns: an access that cannot be
// audited is refused by the caller (fail closed). An entry naming more than
// MaxResidents residents is stored as several.
func (l *Log) Record(ctx context.Context, e Entry) error {
	if e.At.IsZero() {
		e.At = l.now().UTC()
	}
	if e.Outcome == "" {
		e.Outcome = OutcomeOK
	}
	for len(e.Residents) > MaxResidents {
		part := e
		part.Residents = e.Residents[:MaxResidents]
		if err := l.Record(ctx, part); err != nil {
			return err
		}
		e.Residents = e.Residents[MaxResidents:]
	}
	if err := validate(e); err != nil {
		return err
	}
	subject := model.AuditSubject(e.ResidentID)
	switch {
	case e.ResidentID == "" && len(e.Residents) > 0:
		subject = model.SubjectAuditMulti
	case e.ResidentID == "":
		subject = model.SubjectAuditNone
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	err := appendRetry.Do(ctx, func(int) error {
		if !l.known {
			if err := l.loadHead(ctx); err != nil {
				return fmt.Errorf("reading the chain's head: %w", err)
			}
		}
		e.Prev = l.headHash
		data, err := json.Marshal(e)
		if err != nil {
			return err
		}
		ack, err := l.js.Publish(ctx, subject, data, jetstream.WithExpectLastSequence(l.headSeq))
		if err == nil {
			l.headSeq, l.headHash = ack.Sequence, Hash(data)
			return nil
		}
		l.known = false // another writer appended, or the outcome is unknown: read the head again
		return err
	}, isWrongLast)
	switch {
	case err == nil:
		return nil
	case isWrongLast(err) && ctx.Err() == nil:
		return errors.New("audit: the chain's head kept moving (another writer); retry")
	}
	return fmt.Errorf("audit: %w", err)
}

// appendRetry re-reads the head after another writer appended first. Two
// instances that lost the race together would collide again in lockstep, so
// each waits a random moment below 2 ms, 4 ms, … 64 ms; twenty attempts
// outlast any contention of a few instances and still answer within about a
// second.
var appendRetry = retry.Policy{Attempts: 20, Initial: 2 * time.Millisecond, Max: 64 * time.Millisecond, Jitter: 1}

// isWrongLast reports whether a publish lost the race for the stream's last
// sequence: another writer appended since the head was read.
func isWrongLast(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// loadHead reads the stream's last entry: the one the next entry chains to.
func (l *Log) loadHead(ctx context.Context) error {
	st, err := l.js.Stream(ctx, model.StreamAudit)
	if err != nil {
		return err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return err
	}
	l.headSeq, l.headHash = info.State.LastSeq, Genesis
	if info.State.Msgs > 0 && info.State.LastSeq > 0 {
		m, err := st.GetMsg(ctx, info.State.LastSeq)
		if err != nil {
			return err
		}
		l.headHash = Hash(m.Data)
	}
	l.known = true
	return nil
}
