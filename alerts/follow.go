package alerts

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/internal/retry"
)

const (
	// staleAttempts bounds how often one change is decided again: each
	// retry means another instance changed the same alert meanwhile.
	staleAttempts = 5
	// adoptGrace is how long the leader leaves another instance's unsent
	// transitions to their author before publishing them itself (Flush):
	// longer than a publish and the KV write that records it.
	adoptGrace = 3 * publishTimeout
)

// drainWait is how long refresh waits for another instance's transitions
// to leave a record's outbox: 2.1 s in all, about as long as their
// author's publish may take (publishTimeout).
var drainWait = retry.Policy{Attempts: 9, Initial: 20 * time.Millisecond, Max: 500 * time.Millisecond}

var errUndelivered = errors.New("transitions of another instance not yet published")

// staleError is a KV write refused because another instance wrote alert
// id since this Manager's copy was read.
type staleError struct{ id string }

func (e staleError) Error() string {
	return "alert " + e.id + " was written by another instance meanwhile"
}

// fresh runs op, a change decided on memory's copy of an alert, and when
// its write finds that copy stale reads the alert again and runs op anew,
// at most staleAttempts times: the outcome is decided on fresh state, with
// the next seq. Called with m.mu held.
func (m *Manager) fresh(ctx context.Context, op func() error) error {
	for n := 1; ; n++ {
		err := op()
		var se staleError
		if !errors.As(err, &se) || n == staleAttempts {
			return err
		}
		if err := m.refresh(ctx, se.id); err != nil {
			return err
		}
	}
}

// change decides a change of alert id on its current record and commits
// the record decide returns, again on fresh state when another instance
// wrote the alert first.
func (m *Manager) change(ctx context.Context, id string, decide func(cur *record, now time.Time) (*record, error)) (Alert, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out Alert
	err := m.fresh(ctx, func() error {
		cur, err := m.lookup(ctx, id)
		if err != nil {
			return err
		}
		nr, err := decide(cur, m.clock().UTC())
		if err != nil {
			return err
		}
		out = nr.Alert.copy()
		return m.commit(ctx, cur, nr)
	})
	if err != nil {
		return Alert{}, err
	}
	return out, nil
}

// refresh replaces memory's copy of alert id with KV's. A stored outbox
// means its author is most likely publishing it: refresh waits for that
// (drainWait), so the next change does not publish those transitions a
// second time; past the wait they are this instance's to publish, with its
// own. Called with m.mu held.
func (m *Manager) refresh(ctx context.Context, id string) error {
	var r *record
	err := drainWait.Do(ctx, func(int) error {
		var err error
		if r, err = m.stored(ctx, id); err == nil && len(r.Outbox) > 0 {
			err = errUndelivered
		}
		return err
	}, func(err error) bool { return errors.Is(err, errUndelivered) })
	switch {
	case errors.Is(err, ErrNotFound):
		m.drop(id) // erased meanwhile
	case r == nil || ctx.Err() != nil:
		return err
	default:
		m.adopt(r)
		if cur := m.byID[id]; cur != nil && errors.Is(err, errUndelivered) {
			cur.mine = true
		}
	}
	m.count()
	return nil
}

// apply makes one update of the bucket memory's: a put is adopted, a
// delete or purge (a sweep, an erasure) takes the alert out of memory.
func (m *Manager) apply(e jetstream.KeyValueEntry) {
	var r *record
	if e.Operation() == jetstream.KeyValuePut {
		if r = m.decode(e); r == nil {
			return
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if r != nil {
		m.adopt(r)
	} else {
		id := strings.TrimPrefix(e.Key(), "alert.")
		m.drop(id)
		delete(m.gone, id)
	}
	m.count()
}

// adopt makes r, read from KV, memory's copy of its alert, unless memory
// has that revision or a newer one: an echo of this Manager's own write,
// or an update the watch delivers late. Called with m.mu held.
func (m *Manager) adopt(r *record) {
	id := r.Alert.ID
	if cur := m.byID[id]; cur != nil && cur.rev >= r.rev {
		return
	}
	if g, ok := m.gone[id]; ok {
		if r.rev >= g {
			delete(m.gone, id) // the watch has passed the alert's retirement
		}
		if r.rev <= g {
			return
		}
	}
	m.place(r)
}

// place makes r memory's copy of its alert, as load and commit keep memory:
// open and acknowledged alerts, and resolved ones until their outbox is
// delivered and recorded; a (resident, rule)'s open alert is its newest
// raise. Called with m.mu held.
func (m *Manager) place(r *record) {
	id := r.Alert.ID
	r.seen = time.Now()
	m.drop(id)
	if len(r.Outbox) > 0 || r.dirty {
		m.unsent[id], m.byID[id] = r, r
	}
	if r.Alert.Status == StatusResolved {
		return
	}
	m.byID[id] = r
	ok := openKey(r.Alert.ResidentID, r.Alert.Rule)
	if prev := m.open[ok]; prev == nil || prev.Alert.RaisedAt.Before(r.Alert.RaisedAt) {
		m.open[ok] = r
	}
}

// drop takes an alert out of memory. Called with m.mu held.
func (m *Manager) drop(id string) {
	if r := m.byID[id]; r != nil {
		if ok := openKey(r.Alert.ResidentID, r.Alert.Rule); m.open[ok] == r {
			delete(m.open, ok)
		}
	}
	delete(m.byID, id)
	delete(m.unsent, id)
}
