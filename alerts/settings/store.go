// Package settings keeps the residents' alert rule settings (thresholds,
// modes, snoozes) in NATS KV: the rules read them on every input, the alert
// Manager asks them what is suppressed, and the API edits them.
package settings

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/internal/kv"
	"github.com/carehub/carehub/internal/model"
)

// Store keeps per-resident rule settings in NATS KV, with an
// in-memory copy kept current by a KV watch (kv.Cache): the evaluator asks
// for a resident's settings on every input, and a change made through any
// carehub instance applies everywhere without a restart. It is the rules'
// SettingsSource and the Manager's suppression source
// (alerts.SettingsSource).
type Store struct {
	kv    jetstream.KeyValue
	cache *kv.Cache[rules.Settings]
}

// Open opens (creating if missing) the settings bucket, loads it and starts
// watching it.
func Open(ctx context.Context, js jetstream.JetStream, log zerolog.Logger) (*Store, error) {
	bucket, err := kv.Open(ctx, js, kv.Bucket{Name: model.BucketSettings,
		Description: "carehub per-resident alert rule settings and modes", History: 5})
	if err != nil {
		return nil, err
	}
	// A record that does not decode is left out: the resident gets the
	// defaults, and the log names the key (a resident id).
	cache, err := kv.NewCache(ctx, js.Conn(), bucket, kv.CacheOptions[rules.Settings]{Log: log})
	if err != nil {
		return nil, err
	}
	return &Store{kv: bucket, cache: cache}, nil
}

// Close stops the watch.
func (s *Store) Close() { s.cache.Close() }

// Settings returns a resident's settings from memory (defaults when none).
func (s *Store) Settings(residentID string) rules.Settings {
	st, ok := s.cache.Get(residentID)
	if !ok {
		return rules.DefaultSettings()
	}
	return st
}

// Put validates and stores a resident's settings, and applies them to this
// instance's memory at once (the watch brings them to the others).
func (s *Store) Put(ctx context.Context, residentID string, st rules.Settings) error {
	if err := st.Validate(); err != nil {
		return fmt.Errorf("%w: %v", alerts.ErrInvalid, err)
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	rev, err := s.kv.Put(ctx, residentID, b)
	if err != nil {
		return err
	}
	s.cache.Put(residentID, st, rev)
	return nil
}

// updateAttempts bounds Update's retries. Twelve writers at once on one
// resident (TestSettingsUpdateIsAtomic) needed more than ten attempts
// without a pause between them.
const updateAttempts = 20

// Update changes a resident's settings atomically: change sees the stored
// settings (defaults when none) and edits them; the write succeeds only if
// nobody else wrote in between (KV revision), otherwise it reads again and
// retries. An error from change aborts without writing and is returned.
func (s *Store) Update(ctx context.Context, residentID string, change func(*rules.Settings) error) (rules.Settings, error) {
	for attempt := range updateAttempts {
		if attempt > 0 {
			// Writers that collided must not collide again in lockstep:
			// a short random pause, growing with the attempts.
			pause := time.Duration(1+rand.IntN(attempt*2)) * time.Millisecond
			select {
			case <-ctx.Done():
				return rules.Settings{}, ctx.Err()
			case <-time.After(pause):
			}
		}
		st, rev := rules.DefaultSettings(), uint64(0)
		e, err := s.kv.Get(ctx, residentID)
		switch {
		case err == nil:
			if err := json.Unmarshal(e.Value(), &st); err != nil {
				return st, fmt.Errorf("stored settings of %s unreadable: %w", residentID, err)
			}
			rev = e.Revision()
		case !errors.Is(err, jetstream.ErrKeyNotFound):
			return st, err
		}
		if err := change(&st); err != nil {
			return st, err
		}
		if err := st.Validate(); err != nil {
			return st, fmt.Errorf("%w: %v", alerts.ErrInvalid, err)
		}
		b, err := json.Marshal(st)
		if err != nil {
			return st, err
		}
		var stored uint64
		if rev == 0 {
			stored, err = s.kv.Create(ctx, residentID, b)
		} else {
			stored, err = s.kv.Update(ctx, residentID, b, rev)
		}
		if err == nil {
			s.cache.Put(residentID, st, stored)
			return st, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !kv.WrongRevision(err) {
			return st, err
		}
	}
	return rules.Settings{}, fmt.Errorf("%w: settings of %s keep changing; retry", alerts.ErrConflict, residentID)
}

// Suppression tells the Manager whether a resident's alerts of rule are
// suppressed now: a mode (away, hospital, quiet) in force, or a snooze of the
// rule. Expired modes and snoozes suppress nothing.
func (s *Store) Suppression(_ context.Context, residentID, rule string, now time.Time) (*alerts.Suppression, error) {
	st := s.Settings(residentID)
	if sn, ok := st.Snoozed[rule]; ok && now.Before(sn.Until) {
		until := sn.Until
		return &alerts.Suppression{Mode: alerts.ModeSnooze, Reason: sn.Reason, Until: &until}, nil
	}
	if st.Mode != "" && (st.ModeUntil.IsZero() || now.Before(st.ModeUntil)) {
		sup := &alerts.Suppression{Mode: st.Mode, Reason: st.ModeReason, By: st.ModeBy}
		if !st.ModeUntil.IsZero() {
			u := st.ModeUntil
			sup.Until = &u
		}
		return sup, nil
	}
	return nil, nil
}

// Erase removes a resident's rule settings with all their stored revisions.
// Delete would leave the earlier ones in the bucket's history (5), and
// their mode reasons ("hospital: ...") are about the resident's health.
func (s *Store) Erase(ctx context.Context, residentID string) error {
	if err := s.kv.Purge(ctx, residentID); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("purge settings of %s: %w", residentID, err)
	}
	s.cache.Drop(residentID)
	return nil
}
