package alerts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Delivery limits. A publish waits for JetStream's ack at most publishTimeout;
// an InfluxDB write at most writeTimeout; one flush writes at most
// maxFlushLines points. Retries back off from minRetryWait to maxRetryWait: an alert
// is never dropped, it waits in the outbox (and in KV) until delivered.
const (
	publishTimeout = 2 * time.Second
	writeTimeout   = 10 * time.Second
	maxFlushLines  = 1000
	minRetryWait   = time.Second
	maxRetryWait   = 30 * time.Second
)

// publishOutbox publishes r's unpublished transitions in seq order, each on
// care.alerts.{resident_id}.{severity} with Nats-Msg-Id (contract §3), and
// on the 119 subject when the transition reached the emergency tier. It
// stops at the first failure so a phone never sees seq n+1 before n; the
// flusher tries again. Called with m.mu held.
func (m *Manager) publishOutbox(ctx context.Context, r *record) {
	for i := range r.Outbox {
		p := &r.Outbox[i]
		if p.Published {
			continue
		}
		if err := m.publish(ctx, p); err != nil {
			m.pubErrors.With("nats").Inc()
			m.log.Warn().Err(err).Str("alert_id", r.Alert.ID).Uint64("seq", p.Seq).Msg("alert publish failed; will retry")
			return
		}
		p.Published = true
		r.dirty = true
	}
}

func (m *Manager) publish(ctx context.Context, p *pending) error {
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	msg := nats.NewMsg(p.Subject)
	msg.Data = p.Data
	msg.Header.Set(jetstream.MsgIDHeader, p.MsgID)
	if _, err := m.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("publish %s: %w", p.Subject, err)
	}
	if p.To119 == "" {
		return nil
	}
	nc := m.nc
	if nc == nil {
		nc = m.js.Conn()
	}
	em := nats.NewMsg(p.To119)
	em.Data = p.Data
	em.Header.Set(jetstream.MsgIDHeader, p.MsgID)
	if err := nc.PublishMsg(em); err != nil {
		return fmt.Errorf("publish to 119 subject: %w", err)
	}
	// Flush so the message has left this process before it counts as sent.
	return nc.FlushWithContext(ctx)
}

// Flush delivers what waits in the outboxes: publishes what is unpublished,
// writes unwritten points to InfluxDB in one request, and stores the outcome
// so a restart does not send delivered transitions again. Run calls it;
// tests may too.
func (m *Manager) Flush(ctx context.Context) error {
	m.flushMu.Lock()
	defer m.flushMu.Unlock()

	type ref struct {
		id  string
		seq uint64
	}
	var (
		lines bytes.Buffer
		refs  []ref
	)
	m.mu.Lock()
	for _, r := range m.unsent {
		if !m.monitored(r.Alert.ResidentID) {
			// Being erased: its transitions go with it, unsent, rather
			// than reach the streams and InfluxDB after they were purged.
			continue
		}
		m.publishOutbox(ctx, r)
		for _, p := range r.Outbox {
			if !p.Written && len(refs) < maxFlushLines {
				lines.WriteString(p.Line)
				lines.WriteByte('\n')
				refs = append(refs, ref{r.Alert.ID, p.Seq})
			}
		}
	}
	m.mu.Unlock()

	var werr error
	if len(refs) > 0 && m.points != nil {
		wctx, cancel := context.WithTimeout(ctx, writeTimeout)
		werr = m.points.WriteLines(wctx, lines.Bytes())
		cancel()
		if werr != nil {
			m.pubErrors.With("influxdb").Inc()
			m.log.Warn().Err(werr).Int("points", len(refs)).Msg("alert points not written; will retry")
		}
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if werr == nil {
		for _, rf := range refs {
			if r := m.byID[rf.id]; r != nil {
				for i := range r.Outbox {
					if r.Outbox[i].Seq == rf.seq {
						r.Outbox[i].Written = true
						r.dirty = true
					}
				}
			}
		}
	}
	var errs []error
	if werr != nil {
		errs = append(errs, werr)
	}
	for id, r := range m.unsent {
		kept := r.Outbox[:0]
		for _, p := range r.Outbox {
			if !p.Published || !p.Written {
				kept = append(kept, p)
			}
		}
		if len(kept) != len(r.Outbox) {
			r.dirty = true
		}
		r.Outbox = kept
		if len(r.Outbox) == 0 {
			r.Outbox = nil
		}
		if r.dirty {
			if err := m.persist(ctx, r, r); err != nil {
				errs = append(errs, err)
				continue // stays in unsent until KV knows it was delivered
			}
		}
		if r.Outbox == nil {
			delete(m.unsent, id)
		}
		for _, p := range r.Outbox {
			if !p.Published {
				errs = append(errs, fmt.Errorf("alert %s seq %d not yet published", r.Alert.ID, p.Seq))
				break
			}
		}
	}
	m.countPending()
	return errors.Join(errs...)
}

// Run retries delivery of the outboxes until ctx ends: at once when a
// transition was committed, otherwise every second, backing off to 30 s
// while NATS or InfluxDB keep failing.
func (m *Manager) Run(ctx context.Context) error {
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
