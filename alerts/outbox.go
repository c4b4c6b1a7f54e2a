package alerts

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/carehub/carehub/alerts/outbox"
	"github.com/carehub/carehub/internal/kv"
)

// Delivery limits. A publish waits for JetStream's ack at most
// publishTimeout. Retries back off from minRetryWait to maxRetryWait: an alert is
// never dropped, it waits in the outbox (and in KV) until published.
const (
	publishTimeout = outbox.Timeout
	minRetryWait   = time.Second
	maxRetryWait   = 30 * time.Second
)

// publishOutbox publishes r's outbox in seq order (outbox.Publish); a
// published transition leaves the outbox. It stops at the first failure;
// the flusher tries again. Called with m.mu held.
func (m *Manager) publishOutbox(ctx context.Context, r *record) {
	n, err := outbox.Publish(ctx, m.js, m.conn(), r.Outbox)
	if err != nil {
		m.pubErrors.With("nats").Inc()
		m.log.Warn().Err(err).Str("alert_id", r.Alert.ID).Msg("alert publish failed; will retry")
	}
	if n > 0 {
		r.Outbox = slices.Delete(r.Outbox, 0, n)
		if len(r.Outbox) == 0 {
			r.Outbox = nil
		}
		r.dirty = true
	}
}

func (m *Manager) conn() *nats.Conn {
	if m.nc != nil {
		return m.nc
	}
	return m.js.Conn()
}

// Flush publishes what waits in the outboxes and stores the outcome, so a
// restart does not publish delivered transitions again. Run calls it; tests
// may too.
//
// Each instance publishes what it committed. The leader also adopts what
// other instances stored but left unsent (an instance that died between
// store and publish must not strand a transition), once they have waited
// adoptGrace: an instance that is alive records its publication well
// before that. An instance slower than that (a NATS outage) and the
// leader may then both publish a transition. CARE_ALERTS keeps it once
// (Nats-Msg-Id), but the 119 subject is core NATS and has no such
// deduplication: the bridge may get that message twice, with the same
// Nats-Msg-Id header, by which it must drop the second.
func (m *Manager) Flush(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for id, r := range m.unsent {
		if !m.monitored(r.Alert.ResidentID) {
			// Being erased: its transitions go with it, unsent, rather
			// than reach the stream after it was purged.
			continue
		}
		if !r.mine && (!m.leading() || time.Since(r.seen) < m.adoptAfter) {
			continue // its author's, for now
		}
		m.publishOutbox(ctx, r)
		if r.dirty {
			if err := m.persist(ctx, r, r); err != nil {
				if errors.As(err, new(staleError)) {
					// Written by another instance meanwhile: follow its
					// record, whose outbox is now its author's.
					err = m.refresh(ctx, id)
				}
				if err != nil {
					errs = append(errs, err)
				}
				continue // stays in unsent until KV knows it was delivered
			}
		}
		if len(r.Outbox) == 0 {
			delete(m.unsent, id)
			m.retire(r)
		} else {
			errs = append(errs, fmt.Errorf("alert %s seq %d not yet published", r.Alert.ID, r.Outbox[0].Seq))
		}
	}
	m.count()
	return errors.Join(errs...)
}

// Run follows the other instances' writes to the bucket and retries
// delivery of the outboxes until ctx ends: at once when a transition was
// left unpublished, otherwise every second, backing off to 30 s while NATS
// keeps failing. The watch resumes after the newest revision load saw, so
// nothing written since is missed; when it is made again (kv.Follow) it
// replays every key, which apply takes by revision.
func (m *Manager) Run(ctx context.Context) error {
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		kv.Follow(ctx, m.conn(), m.kv, "alert.>", m.watched+1, m.apply, m.log)
	}()
	defer func() { <-followed }()
	wait := m.minRetryWait
	t := time.NewTimer(wait)
	defer t.Stop()
	m.wake() // deliver what a previous run left behind
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = m.Flush(fctx)
			cancel()
			return nil
		case <-m.kick:
		case <-t.C:
		}
		if err := m.Flush(ctx); err != nil && ctx.Err() == nil {
			wait = min(wait*2, maxRetryWait)
		} else {
			wait = m.minRetryWait
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(wait)
	}
}
