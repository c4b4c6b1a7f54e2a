package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/carehub/carehub/internal/kv"
	"github.com/carehub/carehub/internal/retry"
	"github.com/nats-io/nats.go/jetstream"
)

// The alerts bucket (model.BucketAlerts): every alert open or resolved in
// the last 30 days, one key per alert; only open alerts are also kept in
// memory, history is read back from here when asked.

// load fills memory from the bucket at start: the open alerts, and resolved
// ones whose transitions still wait to be published.
func (m *Manager) load(ctx context.Context) error {
	stored := 0
	err := m.scan(ctx, func(r *record) {
		stored++
		m.watched = max(m.watched, r.rev)
		// An earlier version kept published transitions for InfluxDB; the
		// writer now takes their points from CARE_ALERTS. The flusher
		// stores the shorter outbox.
		n := len(r.Outbox)
		r.Outbox = slices.DeleteFunc(r.Outbox, func(p pending) bool { return p.Published })
		r.dirty = len(r.Outbox) != n
		m.place(r)
	})
	if err != nil {
		return fmt.Errorf("load alerts: %w", err)
	}
	m.count()
	m.log.Info().Int("alerts", stored).Int("in_memory", len(m.byID)).Int("open", len(m.open)).Msg("alerts loaded")
	return nil
}

// scan calls f with every alert record in the bucket, read in one pass
// (kv.Scan). It needs no lock: the records are decoded copies, not the
// Manager's.
func (m *Manager) scan(ctx context.Context, f func(r *record)) error {
	return kv.Scan(ctx, m.kv, "alert.>", func(e jetstream.KeyValueEntry) {
		if r := m.decode(e); r != nil {
			f(r)
		}
	})
}

// decode reads a stored record with its revision; nil (logged) when it
// does not parse.
func (m *Manager) decode(e jetstream.KeyValueEntry) *record {
	r := &record{rev: e.Revision()}
	if err := json.Unmarshal(e.Value(), r); err != nil {
		m.log.Error().Err(err).Str("key", e.Key()).Msg("unreadable alert record skipped")
		return nil
	}
	return r
}

// lookup returns the live copy of an alert: from memory, or, for a
// resolved alert memory no longer holds, from KV. Called with m.mu held; a
// record read from KV is not kept (commit decides what stays).
func (m *Manager) lookup(ctx context.Context, id string) (*record, error) {
	if r := m.byID[id]; r != nil {
		return r, nil
	}
	return m.stored(ctx, id)
}

// stored reads an alert's record from KV. It touches no Manager state.
func (m *Manager) stored(ctx context.Context, id string) (*record, error) {
	if id == "" || strings.IndexFunc(id, notKeyRune) >= 0 {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	e, err := m.kv.Get(ctx, kvKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("read alert %s: %w", id, err)
	}
	if r := m.decode(e); r != nil {
		return r, nil
	}
	return nil, fmt.Errorf("read alert %s: unreadable record", id)
}

// retire drops a resolved alert from memory once nothing about it waits
// to be delivered or recorded; KV keeps it. Called with m.mu held.
func (m *Manager) retire(r *record) {
	if r.Alert.Status != StatusResolved || len(r.Outbox) > 0 || r.dirty {
		return
	}
	if m.byID[r.Alert.ID] == r {
		delete(m.byID, r.Alert.ID)
		m.gone[r.Alert.ID] = r.rev
	}
	delete(m.unsent, r.Alert.ID)
}

// notKeyRune reports a rune that cannot be part of an alert id in a KV key
// (a NATS subject token: no dots, wildcards or white space).
func notKeyRune(c rune) bool {
	return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '=')
}

func openKey(residentID, rule string) string { return residentID + "/" + rule }

func kvKey(id string) string { return "alert." + id }

// persist writes r to KV with optimistic concurrency (the revision of
// prev), retrying transient failures briefly. A revision conflict means
// another instance wrote the alert: that is reported as a *staleError, not
// overwritten (Manager.fresh decides again on the fresh record).
func (m *Manager) persist(ctx context.Context, r, prev *record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	var rev uint64
	if prev != nil {
		rev = prev.rev
	}
	key := kvKey(r.Alert.ID)
	err = persistRetry.Do(ctx, func(int) error {
		var err error
		var nrev uint64
		if rev == 0 {
			nrev, err = m.kv.Create(ctx, key, b)
		} else {
			nrev, err = m.kv.Update(ctx, key, b, rev)
		}
		if err == nil {
			r.rev = nrev
		}
		return err
	}, func(err error) bool { return !errors.Is(err, jetstream.ErrKeyExists) && !kv.WrongRevision(err) })
	if errors.Is(err, jetstream.ErrKeyExists) || kv.WrongRevision(err) {
		m.staleWrites.Inc()
		return staleError{id: r.Alert.ID}
	}
	if err != nil {
		m.pubErrors.With("kv").Inc()
		return fmt.Errorf("store alert %s: %w", r.Alert.ID, err)
	}
	r.dirty = false
	m.count()
	return nil
}

// persistRetry rides out a brief KV hiccup: 5 attempts, from 20 ms.
var persistRetry = retry.Policy{Attempts: 5, Initial: 20 * time.Millisecond}
