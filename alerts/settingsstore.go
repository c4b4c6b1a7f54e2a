package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/internal/retry"
)

// BucketSettings holds each resident's rule settings and modes.
const BucketSettings = "care_settings"

// SettingsStore keeps per-resident rule settings in NATS KV, with an
// in-memory copy kept current by a KV watch: the evaluator asks for a
// resident's settings on every input, and a change made through any carehub
// instance applies everywhere without a restart. It is the rules'
// SettingsSource and the Manager's suppression source.
type SettingsStore struct {
	kv  jetstream.KeyValue
	log zerolog.Logger

	mu sync.RWMutex
	m  map[string]rules.Settings

	stop func()
}

// OpenSettingsStore opens (creating if missing) the settings bucket, loads it
// and starts watching it.
func OpenSettingsStore(ctx context.Context, js jetstream.JetStream, log zerolog.Logger) (*SettingsStore, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: BucketSettings,
		Description: "carehub per-resident alert rule settings and modes", History: 5, Storage: jetstream.FileStorage})
	if err != nil {
		return nil, fmt.Errorf("settings bucket: %w", err)
	}
	s := &SettingsStore{kv: kv, log: log, m: map[string]rules.Settings{}}
	wctx, cancel := context.WithCancel(context.Background())
	w, err := kv.WatchAll(wctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("settings watch: %w", err)
	}
	s.stop = func() { cancel(); _ = w.Stop() }
	ready := make(chan struct{})
	go func() {
		initial := true
		for e := range w.Updates() {
			if e == nil { // the end of the initial values
				if initial {
					close(ready)
					initial = false
				}
				continue
			}
			s.apply(e)
		}
	}()
	select {
	case <-ready:
	case <-ctx.Done():
		s.Close()
		return nil, ctx.Err()
	}
	return s, nil
}

func (s *SettingsStore) apply(e jetstream.KeyValueEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		delete(s.m, e.Key())
		return
	}
	var st rules.Settings
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		s.log.Error().Err(err).Str("resident_id", e.Key()).Msg("stored rule settings unreadable; using defaults")
		delete(s.m, e.Key())
		return
	}
	s.m[e.Key()] = st
}

// Close stops the watch.
func (s *SettingsStore) Close() {
	if s.stop != nil {
		s.stop()
	}
}

// Settings returns a resident's settings from memory (defaults when none).
func (s *SettingsStore) Settings(residentID string) rules.Settings {
	s.mu.RLock()
	st, ok := s.m[residentID]
	s.mu.RUnlock()
	if !ok {
		return rules.DefaultSettings()
	}
	return st
}

// Put validates and stores a resident's settings, and applies them to this
// instance's memory at once (the watch brings them to the others).
func (s *SettingsStore) Put(ctx context.Context, residentID string, st rules.Settings) error {
	if err := st.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if _, err := s.kv.Put(ctx, residentID, b); err != nil {
		return err
	}
	s.mu.Lock()
	s.m[residentID] = st
	s.mu.Unlock()
	return nil
}

// updateRetry bounds Update's retries after a conflicting write. Twelve
// writers at once on one resident (TestSettingsUpdateIsAtomic) needed more
// than ten attempts without a pause between them; writers that collided must
// not collide again in lockstep, so each pause is random and growing.
var updateRetry = retry.Policy{Attempts: 20, Initial: 2 * time.Millisecond, Max: 40 * time.Millisecond, Jitter: 1}

// Update changes a resident's settings atomically: change sees the stored
// settings (defaults when none) and edits them; the write succeeds only if
// nobody else wrote in between (KV revision), otherwise it reads again and
// retries. An error from change aborts without writing and is returned.
func (s *SettingsStore) Update(ctx context.Context, residentID string, change func(*rules.Settings) error) (rules.Settings, error) {
	var st rules.Settings
	conflict := func(err error) bool { return errors.Is(err, jetstream.ErrKeyExists) || isWrongRev(err) }
	err := updateRetry.Do(ctx, func(int) error {
		st = rules.DefaultSettings()
		rev := uint64(0)
		e, err := s.kv.Get(ctx, residentID)
		switch {
		case err == nil:
			if err := json.Unmarshal(e.Value(), &st); err != nil {
				return fmt.Errorf("stored settings of %s unreadable: %w", residentID, err)
			}
			rev = e.Revision()
		case !errors.Is(err, jetstream.ErrKeyNotFound):
			return err
		}
		if err := change(&st); err != nil {
			return err
		}
		if err := st.Validate(); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		b, err := json.Marshal(st)
		if err != nil {
			return err
		}
		if rev == 0 {
			_, err = s.kv.Create(ctx, residentID, b)
		} else {
			_, err = s.kv.Update(ctx, residentID, b, rev)
		}
		return err
	}, conflict)
	switch {
	case err == nil:
		s.mu.Lock()
		s.m[residentID] = st
		s.mu.Unlock()
		return st, nil
	case conflict(err) && ctx.Err() == nil:
		return rules.Settings{}, fmt.Errorf("%w: settings of %s keep changing; retry", ErrConflict, residentID)
	case ctx.Err() != nil:
		return rules.Settings{}, ctx.Err()
	}
	return st, err
}

// Delete forgets a resident's settings (erasure).
func (s *SettingsStore) Delete(ctx context.Context, residentID string) error {
	err := s.kv.Delete(ctx, residentID)
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return err
	}
	s.mu.Lock()
	delete(s.m, residentID)
	s.mu.Unlock()
	return nil
}

// Suppression tells the Manager whether a resident's alerts of rule are
// suppressed now: a mode (away, hospital, quiet) in force, or a snooze of the
// rule. Expired modes and snoozes suppress nothing.
func (s *SettingsStore) Suppression(_ context.Context, residentID, rule string, now time.Time) (*Suppression, error) {
	st := s.Settings(residentID)
	if sn, ok := st.Snoozed[rule]; ok && now.Before(sn.Until) {
		until := sn.Until
		return &Suppression{Mode: ModeSnooze, Reason: sn.Reason, Until: &until}, nil
	}
	if st.Mode != "" && (st.ModeUntil.IsZero() || now.Before(st.ModeUntil)) {
		sup := &Suppression{Mode: st.Mode, Reason: st.ModeReason, By: st.ModeBy}
		if !st.ModeUntil.IsZero() {
			u := st.ModeUntil
			sup.Until = &u
		}
		return sup, nil
	}
	return nil, nil
}
