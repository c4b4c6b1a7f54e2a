// Package engine runs the alert rules: durable consumers on CARE_READINGS,
// CARE_EVENTS and CARE_STATUS feed the rules evaluator (alerts/rules), and
// the evaluator's signals go to the alert Manager (package alerts), which
// owns the alerts. The engine keeps the evaluator's state across restarts,
// evaluates only residents the registry monitors, and keeps the rules'
// device lists current (SyncDevices).
package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/internal/kv"
	"github.com/carehub/carehub/internal/metrics"
	"github.com/carehub/carehub/internal/model"
)

// ConsumerName is the durable name of the engine's consumer on each of
// CARE_READINGS, CARE_EVENTS and CARE_STATUS (contract §3: the alert engine
// is a durable consumer of these streams).
const ConsumerName = "alerts-engine"

// Engine timing and bounds. The engine ticks the evaluator every second
// (inactivity and persistence rules count in seconds at best), saves the
// evaluator's state every 30 s, and has at most maxAckPending unacked
// messages per stream: the broker holds the rest (back-pressure, no
// unbounded queue here).
//
// An SOS must not wait long for a NATS node's death: a message delivered
// to a connection that died comes back after ackWait, and a pull whose
// server died is noticed when two heartbeats (half of pullExpiry each)
// are missed. Both are 10 s, not nats.go's 30 s, so a NATS fault delays an
// alarm by seconds, not a minute (internal/cluster's fault a); handling
// one message takes milliseconds, or a nak when a store is away.
const (
	tickEvery     = time.Second
	snapshotEvery = 30 * time.Second
	maxAckPending = 1024
	ackWait       = 10 * time.Second
	pullExpiry    = 10 * time.Second
	nakDelay      = time.Second
	snapshotKey   = "engine.evaluator"
)

// Evaluator is the part of alerts/rules the Engine drives: it turns
// readings, events, status and clock ticks into signals, and its state can
// be saved and restored across restarts.
type Evaluator interface {
	Reading(r model.Reading, devKind string) []rules.Signal
	Event(e model.Event) []rules.Signal
	Status(s model.Status) []rules.Signal
	Tick(now time.Time) []rules.Signal
	Snapshot() ([]byte, error)
	Restore(b []byte) error
	// Prune forgets the residents keep rejects (erased, or gone from the
	// registry) and returns how many.
	Prune(keep func(residentID string) bool) int
}

// Options are what the Engine is built from. JS and Evaluator are required;
// Clock nil means time.Now; Metrics nil means a private registry.
type Options struct {
	JS        jetstream.JetStream
	Evaluator Evaluator
	Clock     func() time.Time
	Log       zerolog.Logger
	Metrics   *metrics.Registry
	// Residents, when set, gates every message and signal: nothing is
	// evaluated or raised for a resident it does not accept. Nil accepts
	// everyone (unit tests without a registry).
	Residents alerts.ResidentGate
}

// Engine feeds readings, events and device status from JetStream to the
// rule evaluator and the evaluator's signals to the Manager. The evaluator
// is safe for concurrent use by itself (device sync calls it from another
// goroutine); the engine's mutex is for what spans two calls: a message's
// signals reach the Manager before the next message is evaluated, so
// transitions are stored in the order the rules decided them, and a prune
// and the snapshot after it see the same state.
type Engine struct {
	js    jetstream.JetStream
	kv    jetstream.KeyValue
	ev    Evaluator
	m     *alerts.Manager
	gate  alerts.ResidentGate // nil: every resident
	clock func() time.Time
	log   zerolog.Logger

	consumers map[string]jetstream.Consumer // by stream
	msgs      *metrics.CounterVec
	dropped   *metrics.CounterVec
	latency   *metrics.HistogramVec

	tickEvery time.Duration // tests shorten it

	mu  sync.Mutex // one message (or tick) evaluated and delivered at a time
	ctx context.Context

	// snapMu orders snapshot writes; snapRev is the revision of the
	// snapshot this engine restored or wrote last (0: none), so a write
	// that finds another instance's newer snapshot fails instead of
	// overwriting it (an engine that lost the alert lease).
	snapMu  sync.Mutex
	snapRev uint64
}

// New creates (or binds to) the durable consumers and restores the
// evaluator's last snapshot. A new consumer starts with new messages: a
// week of buffered readings replayed into the rules would raise alerts about
// the past. The snapshot is kept in the Manager's bucket (care_alerts),
// which NewManager opened.
func New(ctx context.Context, o Options, m *alerts.Manager) (*Engine, error) {
	if o.JS == nil || o.Evaluator == nil || m == nil {
		return nil, errors.New("engine: New needs Options.JS, Options.Evaluator and a Manager")
	}
	bucket, err := o.JS.KeyValue(ctx, model.BucketAlerts)
	if err != nil {
		return nil, fmt.Errorf("bucket %s (opened by the Manager): %w", model.BucketAlerts, err)
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New()
	}
	e := &Engine{
		js: o.JS, kv: bucket, ev: o.Evaluator, m: m, clock: o.Clock, gate: o.Residents,
		log:       o.Log.With().Str("component", "alerts-engine").Logger(),
		consumers: map[string]jetstream.Consumer{},
		tickEvery: tickEvery,
	}
	e.msgs = o.Metrics.Counter("carehub_alert_engine_messages_total", "Messages the alert engine took from JetStream, by stream and result.", "stream", "result")
	e.dropped = o.Metrics.Counter("carehub_alert_engine_dropped_total",
		"Messages the alert engine acked without evaluating them, by stream and reason: subject_mismatch (the body's resident or device is not the subject's), unknown_resident (erased or not in the registry).", "stream", "reason")
	for _, st := range []string{model.StreamReadings, model.StreamEvents, model.StreamStatus} {
		for _, reason := range []string{DropSubjectMismatch, DropUnknownResident} {
			e.dropped.With(st, reason)
		}
	}
	e.latency = o.Metrics.Histogram("carehub_alert_engine_seconds", "Time from a message's arrival to its signals being stored and published.",
		[]float64{.001, .002, .005, .01, .02, .05, .1, .25, 1}, "stream")
	for _, stream := range []string{model.StreamReadings, model.StreamEvents, model.StreamStatus} {
		c, err := o.JS.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
			Durable:       ConsumerName,
			Description:   "alert rules",
			DeliverPolicy: jetstream.DeliverNewPolicy,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       ackWait,
			MaxAckPending: maxAckPending,
		})
		if err != nil {
			return nil, fmt.Errorf("consumer %s on %s: %w", ConsumerName, stream, err)
		}
		e.consumers[stream] = c
	}
	if err := e.restore(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *Engine) restore(ctx context.Context) error {
	entry, err := e.kv.Get(ctx, snapshotKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("evaluator snapshot: %w", err)
	}
	e.snapRev = entry.Revision()
	if err := e.ev.Restore(entry.Value()); err != nil {
		// A snapshot from an incompatible version must not stop alerting:
		// rules start fresh, which at worst delays duration-based alerts.
		e.log.Error().Err(err).Msg("evaluator snapshot not restored; rules start fresh")
	}
	return nil
}

// Run consumes until ctx ends, ticking the evaluator and the Manager's
// escalations every second and saving the evaluator every 30 s. On return
// the evaluator is saved once more. The Manager's delivery loop
// (Manager.Run) is the caller's to run, and to stop after this.
func (e *Engine) Run(ctx context.Context) error {
	e.ctx = ctx
	var ccs []jetstream.ConsumeContext
	defer func() {
		for _, cc := range ccs {
			cc.Stop()
		}
		for _, cc := range ccs {
			<-cc.Closed()
		}
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := e.snapshot(sctx); err != nil {
			e.log.Error().Err(err).Msg("final evaluator snapshot failed")
		}
	}()
	for stream, c := range e.consumers {
		stream := stream
		cc, err := c.Consume(func(msg jetstream.Msg) { e.handle(stream, msg) },
			jetstream.PullMaxMessages(256), jetstream.PullExpiry(pullExpiry),
			jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
				if ctx.Err() == nil {
					e.log.Warn().Err(err).Str("stream", stream).Msg("consume")
				}
			}))
		if err != nil {
			return fmt.Errorf("consume %s: %w", stream, err)
		}
		ccs = append(ccs, cc)
	}

	tick := time.NewTicker(e.tickEvery)
	defer tick.Stop()
	snap := time.NewTicker(snapshotEvery)
	defer snap.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			e.tick(ctx)
		case <-snap.C:
			if err := e.snapshot(ctx); err != nil {
				e.log.Error().Err(err).Msg("evaluator snapshot failed")
			}
		}
	}
}

// handle evaluates one message and acks it only after the signals it
// produced are stored; a storage failure naks it for redelivery. A message
// that cannot be decoded is terminated: redelivering it cannot help.
func (e *Engine) handle(stream string, msg jetstream.Msg) {
	start := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	sigs, err := e.evaluate(msg)
	var dropped dropError
	if errors.As(err, &dropped) {
		e.drop(stream, msg, string(dropped))
		return
	}
	if err != nil {
		e.msgs.With(stream, "malformed").Inc()
		e.log.Warn().Err(err).Str("subject", msg.Subject()).Msg("undecodable message terminated")
		_ = msg.Term()
		return
	}
	for _, s := range sigs {
		if !e.monitored(s.ResidentID) {
			continue // erased since admit
		}
		if err := e.m.Signal(e.ctx, s); err != nil {
			if errors.Is(err, alerts.ErrInvalid) {
				e.log.Error().Err(err).Str("rule", s.Rule).Msg("evaluator produced an invalid signal; dropped")
				continue
			}
			e.msgs.With(stream, "retry").Inc()
			e.log.Warn().Err(err).Str("subject", msg.Subject()).Msg("signal not stored; message will be redelivered")
			_ = msg.NakWithDelay(nakDelay)
			return
		}
	}
	if err := msg.Ack(); err != nil {
		e.log.Warn().Err(err).Str("subject", msg.Subject()).Msg("ack failed")
	}
	e.msgs.With(stream, "ok").Inc()
	e.latency.With(stream).Observe(time.Since(start).Seconds())
}

func (e *Engine) evaluate(msg jetstream.Msg) ([]rules.Signal, error) {
	subj := msg.Subject()
	switch {
	case strings.HasPrefix(subj, model.PrefixReadings):
		// A single reading or a batch (contract §3): every reading of a
		// batch is evaluated, in the order the device sent them.
		rs, err := model.UnmarshalReadings(msg.Data(), nil)
		if err != nil {
			return nil, err
		}
		var sigs []rules.Signal
		for _, r := range rs {
			// Every reading of a batch must belong to the subject's
			// resident or partition: one forged element drops the whole
			// message.
			if !model.SubjectMatchesIDs(subj, r.ResidentID, r.DeviceID) {
				return nil, dropError(DropSubjectMismatch)
			}
		}
		// A partition batch holds many residents' readings: an erased
		// resident's are skipped, the others' evaluated, in the order
		// they were published (one resident's readings are in one
		// partition, in arrival order).
		evaluated := 0
		for _, r := range rs {
			if !e.monitored(r.ResidentID) {
				continue
			}
			evaluated++
			sigs = append(sigs, e.ev.Reading(r, r.DeviceKind)...)
		}
		if evaluated == 0 {
			return nil, dropError(DropUnknownResident)
		}
		return sigs, nil
	case strings.HasPrefix(subj, model.PrefixEvents):
		var ev model.Event
		if err := json.Unmarshal(msg.Data(), &ev); err != nil {
			return nil, err
		}
		if err := e.admit(subj, ev.ResidentID, ev.DeviceID); err != nil {
			return nil, err
		}
		if ea, ok := e.ev.(eventArrival); ok {
			return ea.EventAt(ev, e.arrival(msg)), nil
		}
		return e.ev.Event(ev), nil
	case strings.HasPrefix(subj, model.PrefixStatus):
		var st model.Status
		if err := json.Unmarshal(msg.Data(), &st); err != nil {
			return nil, err
		}
		if err := e.admit(subj, st.ResidentID, st.DeviceID); err != nil {
			return nil, err
		}
		return e.ev.Status(st), nil
	}
	return nil, fmt.Errorf("unexpected subject %q", subj)
}

// Reasons a message is dropped unevaluated (carehub_alert_engine_dropped_total).
const (
	DropSubjectMismatch = "subject_mismatch"
	DropUnknownResident = "unknown_resident"
)

// dropError is why admit refused a message: it is acked and counted, not
// terminated as malformed.
type dropError string

func (d dropError) Error() string { return "dropped: " + string(d) }

// admit says why a decoded message must not be evaluated (a dropError), or
// nil. Its body must name the resident and device its subject does
// (contract §3 subjects carry the ids ingest took from the registry; a body
// that says otherwise was forged by someone who can publish on NATS, and
// would raise an alert for another resident). And the resident must be
// monitored: an erased resident's reading published before the erasure and
// consumed after it, or a resident nobody registered, raises nothing and
// creates no state.
func (e *Engine) admit(subject, residentID, deviceID string) error {
	if !model.SubjectMatchesIDs(subject, residentID, deviceID) {
		return dropError(DropSubjectMismatch)
	}
	if !e.monitored(residentID) {
		return dropError(DropUnknownResident)
	}
	return nil
}

// drop acks a message that must not be evaluated and counts it. The log
// names the stream sequence, by which an operator finds the message, and
// not the ids, which may be forged or belong to an erased person.
func (e *Engine) drop(stream string, msg jetstream.Msg, reason string) {
	e.msgs.With(stream, "dropped").Inc()
	e.dropped.With(stream, reason).Inc()
	ev := e.log.Warn()
	if reason == DropUnknownResident {
		ev = e.log.Debug() // expected after an erasure, while buffers drain
	}
	if md, err := msg.Metadata(); err == nil {
		ev = ev.Uint64("stream_seq", md.Sequence.Stream)
	}
	ev.Str("stream", stream).Str("reason", reason).Msg("message dropped by the alert engine")
	if err := msg.Ack(); err != nil {
		e.log.Warn().Err(err).Str("stream", stream).Msg("ack failed")
	}
}

// monitored applies Options.Residents.
func (e *Engine) monitored(residentID string) bool {
	return e.gate == nil || e.gate.Monitored(residentID)
}

// prune forgets the rule state of residents no longer monitored: erased
// here or on another instance, or removed from the registry while carehub
// was down (a snapshot restored at start-up still holds them). The caller
// holds e.mu.
func (e *Engine) prune() {
	if e.gate == nil {
		return
	}
	if n := e.ev.Prune(e.gate.Monitored); n > 0 {
		e.log.Info().Int("residents", n).Msg("rule state of residents no longer monitored forgotten")
	}
}

// EraseResident forgets a resident's rule state now, and saves the
// evaluator's snapshot without it (the care_alerts bucket keeps one
// revision, so the previous snapshot is gone with it). Call it after the
// resident is marked erased, so no message in flight brings them back.
func (e *Engine) EraseResident(ctx context.Context, residentID string) error {
	e.mu.Lock()
	e.ev.Prune(func(id string) bool { return id != residentID })
	e.mu.Unlock()
	return e.snapshot(ctx)
}

// eventArrival is an evaluator that refuses to escalate stale events
// (eval.Evaluator.EventAt): it needs the time the event reached carehub.
type eventArrival interface {
	EventAt(ev model.Event, arrived time.Time) []rules.Signal
}

// arrival is when a message reached carehub: its JetStream time, stamped
// when ingest stored it, so an SOS that waited out an engine restart in
// the stream is not made stale by the wait; or the engine's clock if that
// is earlier (an injected clock in tests and replays).
func (e *Engine) arrival(msg jetstream.Msg) time.Time {
	now := e.clock()
	if md, err := msg.Metadata(); err == nil && !md.Timestamp.IsZero() && md.Timestamp.Before(now) {
		return md.Timestamp
	}
	return now
}

// tick runs the clock-driven rules (inactivity, persistence) and the
// escalation deadlines.
func (e *Engine) tick(ctx context.Context) {
	e.mu.Lock()
	e.prune()
	sigs := e.ev.Tick(e.clock())
	for _, s := range sigs {
		if !e.monitored(s.ResidentID) {
			continue
		}
		if err := e.m.Signal(ctx, s); err != nil && ctx.Err() == nil {
			// Tick signals come again on the next tick while the condition
			// holds; a raise that failed to store is retried then.
			e.log.Warn().Err(err).Str("rule", s.Rule).Msg("tick signal not stored")
		}
	}
	e.mu.Unlock()
	if err := e.m.Tick(ctx); err != nil && ctx.Err() == nil {
		e.log.Warn().Err(err).Msg("escalation tick")
	}
}

func (e *Engine) snapshot(ctx context.Context) error {
	e.mu.Lock()
	e.prune()
	b, err := e.ev.Snapshot()
	e.mu.Unlock()
	if err != nil {
		return err
	}
	e.snapMu.Lock()
	defer e.snapMu.Unlock()
	var rev uint64
	if e.snapRev == 0 {
		rev, err = e.kv.Create(ctx, snapshotKey, b)
	} else {
		rev, err = e.kv.Update(ctx, snapshotKey, b, e.snapRev)
	}
	if kv.WrongRevision(err) || errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("%w: another instance saved the rules' state since this one read it", ErrSnapshotTaken)
	}
	if err != nil {
		return err
	}
	e.snapRev = rev
	return nil
}

// ErrSnapshotTaken: the evaluator's snapshot was written by another engine
// (the alert leader after this instance lost the lease); it is not
// overwritten.
var ErrSnapshotTaken = errors.New("evaluator snapshot not saved")
