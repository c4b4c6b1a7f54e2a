package alerts

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/alerts/escalation"
	"github.com/carehub/carehub/alerts/outbox"
	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/kv"
	"github.com/carehub/carehub/internal/metrics"
	"github.com/carehub/carehub/internal/model"
)

// ResolvedRetention is how long a resolved alert stays in KV (and in
// Manager.List). Older history lives in the CARE_ALERTS stream (90 days) and
// InfluxDB's alerts measurement. It bounds the bucket, not the Manager's
// memory: a resolved alert leaves memory once its last transition is
// delivered, and Get and List read it back from KV.
const ResolvedRetention = 30 * 24 * time.Hour

// storeTimeout bounds a read of the bucket by Get and List, which take no
// context.
const storeTimeout = 10 * time.Second

// cancelWindows are the rules whose critical alerts a device may still
// cancel: domain.md "SOS button: any press (cancelled by sos_cancel within
// 30 s → auto-cleared)". Any other critical alert waits for a person.
var cancelWindows = map[string]time.Duration{rules.RuleSOS: 30 * time.Second}

// ResidentGate says whether alerts may be raised for a resident: one in
// the registry and not erased (devices.Registry.Monitored).
type ResidentGate interface {
	Monitored(residentID string) bool
}

// Options are what the Manager is built from (alerts/engine has its own).
// JS is required; NC is needed for the 119 subject (core NATS). Settings nil
// means nothing is suppressed; Clock nil means time.Now; Metrics nil means a private registry.
type Options struct {
	JS       jetstream.JetStream
	NC       *nats.Conn
	Settings SettingsSource
	Clock    func() time.Time
	Log      zerolog.Logger
	Metrics  *metrics.Registry
	// Residents, when set, gates every signal and escalation: nothing is
	// raised or escalated for a resident it does not accept. Nil accepts
	// everyone (unit tests without a registry).
	Residents ResidentGate
	// Leads says whether this instance is the alert leader (one per
	// cluster, internal/lease): only the leader escalates, sweeps, and
	// publishes transitions other instances left unsent. Nil means always
	// (a single instance). It is asked under the Manager's lock on every
	// Tick and flush, so it must answer from memory.
	Leads func() bool
}

// Manager owns the alert lifecycle. It is safe for concurrent use; one mutex
// orders this instance's transitions, and KV revisions order those of
// several instances sharing the bucket (fresh), so each alert's seq is a
// gap-free counter. Run must be running (the app starts it as its own
// component) for failed publications to be retried and for other
// instances' writes to be followed. The writer package stores the published
// transitions in InfluxDB.
type Manager struct {
	js       jetstream.JetStream
	nc       *nats.Conn
	kv       jetstream.KeyValue
	chains   *escalation.Store
	settings SettingsSource
	clock    func() time.Time
	log      zerolog.Logger
	gate     ResidentGate // nil: every resident
	leads    func() bool

	transitions *metrics.CounterVec
	pubErrors   *metrics.CounterVec
	staleWrites *metrics.Counter
	openCount   atomic.Int64
	pendingOut  atomic.Int64

	mu sync.Mutex
	// byID holds the alerts that live in memory: those not resolved, and
	// resolved ones whose outbox is not yet delivered and recorded. Every
	// other alert is only in KV (lookup, scan), so memory follows the open
	// alerts, not the history.
	byID      map[string]*record
	open      map[string]*record // by openKey(resident, rule)
	unsent    map[string]*record // by id: records with a non-empty outbox
	lastSweep time.Time
	lastIDMs  int64
	// gone holds the revision at which an alert left memory (retired, or
	// math.MaxUint64 when erased) until the watch has passed it, so a late
	// echo of an earlier write does not bring the alert back.
	gone    map[string]uint64
	watched uint64 // the newest revision load saw: the watch resumes after it

	kick         chan struct{}
	minRetryWait time.Duration // tests shorten it
	markerAge    time.Duration // see markerAge; tests shorten it
	adoptAfter   time.Duration // see adoptGrace; tests shorten it
}

// record is what the KV bucket holds per alert.
type record struct {
	Alert Alert `json:"alert"`
	// Chain is the escalation chain as it was at the raise, so a restart
	// escalates along the same tiers.
	Chain []escalation.Tier `json:"chain"`
	// NextEscalationAt is when the next escalation step is due; nil when
	// none is (acknowledged, resolved, top tier, or no escalation).
	NextEscalationAt *time.Time `json:"next_escalation_at,omitempty"`
	// LastPointMs keeps the alert's InfluxDB points at distinct times
	// (model.HeaderPointTime).
	LastPointMs int64 `json:"last_point_ms"`
	// Outbox holds transitions stored but not yet published, in seq order;
	// a restart publishes them under the same Nats-Msg-Id.
	Outbox []pending `json:"outbox,omitempty"`

	rev   uint64    // KV revision this copy was read or written at
	dirty bool      // outbox changed since the last KV write
	mine  bool      // this Manager wrote it: its outbox is this Manager's to publish
	seen  time.Time // when this copy was read from KV (adoptGrace)
}

// pending is one transition waiting to be published.
type pending = outbox.Entry

// NewManager opens the alert and assignment buckets (creating them when
// missing) and loads every stored alert, so open alerts, their escalation
// deadlines and unsent transitions survive a restart. The CARE_ALERTS
// stream must exist (natsx.EnsureStreams declares every stream at start).
func NewManager(ctx context.Context, o Options) (*Manager, error) {
	if o.JS == nil {
		return nil, errors.New("alerts: Options.JS is required")
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New()
	}
	// The stream is declared with the others (natsx.EnsureStreams) before
	// carehub starts its components; without it alerts would be
	// published into the void.
	if _, err := o.JS.Stream(ctx, model.StreamAlerts); err != nil {
		return nil, fmt.Errorf("stream %s (declared at start, natsx.EnsureStreams): %w", model.StreamAlerts, err)
	}
	bucket, err := kv.Open(ctx, o.JS, kv.Bucket{Name: model.BucketAlerts,
		Description: "alerts with their escalation deadlines and transition outbox", History: 1})
	if err != nil {
		return nil, err
	}
	chains, err := escalation.Open(ctx, o.JS)
	if err != nil {
		return nil, err
	}
	m := &Manager{
		js: o.JS, nc: o.NC, kv: bucket, chains: chains, settings: o.Settings,
		clock: o.Clock, log: o.Log.With().Str("component", "alerts").Logger(), gate: o.Residents,
		leads: o.Leads, byID: map[string]*record{}, open: map[string]*record{}, unsent: map[string]*record{},
		gone: map[string]uint64{}, kick: make(chan struct{}, 1), minRetryWait: minRetryWait, markerAge: markerAge,
	}
	if o.Leads != nil {
		m.adoptAfter = adoptGrace // nobody else publishes when there is one instance
	}
	m.transitions = o.Metrics.Counter("carehub_alert_transitions_total", "Alert transitions committed, by transition and severity.", "transition", "severity")
	m.pubErrors = o.Metrics.Counter("carehub_alert_delivery_errors_total", "Failed attempts to publish or store an alert transition (retried), by sink: nats, kv.", "sink")
	m.staleWrites = o.Metrics.Counter("carehub_alert_stale_writes_total", "Alert changes refused by KV because another instance wrote the alert first; each is decided again on the fresh record.").With()
	o.Metrics.GaugeFunc("carehub_alerts_open", "Alerts open or acknowledged.", func() float64 { return float64(m.openCount.Load()) })
	o.Metrics.GaugeFunc("carehub_alert_outbox_pending", "Alert transitions stored but not yet published.", func() float64 { return float64(m.pendingOut.Load()) })
	if err := m.load(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

// monitored applies Options.Residents.
func (m *Manager) monitored(residentID string) bool {
	return m.gate == nil || m.gate.Monitored(residentID)
}

// Chains is the store of escalation chains the Manager reads (care_assignments).
func (m *Manager) Chains() *escalation.Store { return m.chains }

// Signal applies one rule signal: it raises, repeats, upgrades or
// auto-clears the (resident, rule) alert. It returns after the transition is
// stored in KV (so the caller may ack the message that caused it) and its
// publication was attempted once. A signal that changes nothing returns nil.
func (m *Manager) Signal(ctx context.Context, s rules.Signal) error {
	if !catalog.ValidID(s.ResidentID) || s.Rule == "" || strings.ContainsAny(s.Rule, " ,=\\\n") {
		return fmt.Errorf("%w: signal for resident %q rule %q", ErrInvalid, s.ResidentID, s.Rule)
	}
	if s.Active && !ValidSeverity(s.Severity) {
		return fmt.Errorf("%w: signal severity %q", ErrInvalid, s.Severity)
	}
	if !m.monitored(s.ResidentID) {
		return nil // erased or not registered: nobody to alert about
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock().UTC()
	return m.fresh(ctx, func() error { return m.signal(ctx, s, now) })
}

// signal decides a signal on the alert memory has for its (resident, rule).
// Called with m.mu held.
func (m *Manager) signal(ctx context.Context, s rules.Signal, now time.Time) error {
	cur := m.open[openKey(s.ResidentID, s.Rule)]
	if s.Active {
		if cur == nil {
			return m.raise(ctx, s, now)
		}
		return m.repeat(ctx, cur, s, now)
	}
	if cur == nil || cur.Alert.Status != StatusOpen {
		return nil // nothing open, or a person already has it
	}
	if cur.Alert.Severity == rules.SeverityCritical {
		w, ok := cancelWindows[cur.Alert.Rule]
		if !ok || now.Sub(cur.Alert.RaisedAt) > w {
			return nil // critical alerts wait for a person (domain.md)
		}
	}
	nr := cur.clone()
	a := &nr.Alert
	a.Status, a.Outcome = StatusResolved, OutcomeAutoCleared
	a.ResolvedAt, a.ResolvedBy = &now, SystemActor
	nr.NextEscalationAt = nil
	m.transition(nr, TransitionAutoCleared, SystemActor, "", now, false)
	return m.commit(ctx, cur, nr)
}

func (m *Manager) raise(ctx context.Context, s rules.Signal, now time.Time) error {
	chain, err := m.chains.Chain(ctx, s.ResidentID)
	if err != nil {
		m.log.Warn().Err(err).Str("resident_id", s.ResidentID).Msg("escalation chain unavailable; using the default chain")
		chain = escalation.Default(s.ResidentID)
	}
	n := len(chain.Tiers)
	level := 1
	if s.AllTiers {
		level = n // smoke, gas, SOS: every tier at once (domain.md)
	}
	nr := &record{Chain: chain.Tiers, Alert: Alert{
		ID:         m.newID(now),
		ResidentID: s.ResidentID, HomeID: s.HomeID, DeviceID: s.DeviceID,
		Rule: s.Rule, Severity: s.Severity, Status: StatusOpen,
		Message: s.Message, Metric: s.Metric, Value: s.Value, Threshold: s.Threshold,
		Occurrences: 1, EscalationLevel: level, RaisedAt: now,
	}}
	nr.Alert.Suppressed = m.suppression(ctx, &nr.Alert, s.AllTiers, now)
	nr.NextEscalationAt = escalation.Next(s.Severity, level, n, now)
	m.transition(nr, TransitionRaised, SystemActor, "", now, nr.tierRole(level) == escalation.RoleEmergency)
	return m.commit(ctx, nil, nr)
}

func (m *Manager) repeat(ctx context.Context, cur *record, s rules.Signal, now time.Time) error {
	nr := cur.clone()
	a := &nr.Alert
	a.Occurrences++
	// The latest values describe the alert; a signal without them (a clock
	// tick's) keeps the ones it has.
	if s.DeviceID != "" {
		a.DeviceID = s.DeviceID
	}
	if s.Message != "" {
		a.Message = s.Message
	}
	if s.Metric != "" {
		a.Metric, a.Value, a.Threshold = s.Metric, s.Value, s.Threshold
	}
	to119 := false
	if severityRank[s.Severity] > severityRank[a.Severity] {
		a.Severity = s.Severity
		if a.Status == StatusOpen {
			// A faster schedule applies from now; an earlier deadline stays.
			next := escalation.Next(a.Severity, a.EscalationLevel, len(nr.Chain), now)
			if next != nil && (nr.NextEscalationAt == nil || next.Before(*nr.NextEscalationAt)) {
				nr.NextEscalationAt = next
			}
		}
	}
	if s.AllTiers && a.Status == StatusOpen && a.EscalationLevel < len(nr.Chain) {
		a.EscalationLevel = len(nr.Chain)
		nr.NextEscalationAt = nil
		to119 = nr.tierRole(a.EscalationLevel) == escalation.RoleEmergency
	}
	a.Suppressed = m.suppression(ctx, a, s.AllTiers, now)
	m.transition(nr, TransitionRepeated, SystemActor, "", now, to119)
	return m.commit(ctx, cur, nr)
}

// Acknowledge records that a person (by, a user id) has taken the alert;
// it stops escalation (domain.md). Acknowledging an alert that is already
// acknowledged or resolved is ErrConflict.
func (m *Manager) Acknowledge(ctx context.Context, id, by, note string) (Alert, error) {
	if !catalog.ValidActor(by) {
		return Alert{}, fmt.Errorf("%w: acknowledged_by must be a user id", ErrInvalid)
	}
	return m.change(ctx, id, func(cur *record, now time.Time) (*record, error) {
		if cur.Alert.Status != StatusOpen {
			return nil, fmt.Errorf("%w: alert %s is %s", ErrConflict, id, cur.Alert.Status)
		}
		nr := cur.clone()
		a := &nr.Alert
		a.Status, a.AcknowledgedAt, a.AcknowledgedBy = StatusAcknowledged, &now, by
		nr.NextEscalationAt = nil
		m.transition(nr, TransitionAcknowledged, by, note, now, false)
		return nr, nil
	})
}

// Resolve closes the alert with an outcome a person chose (contract §3,
// all but auto_cleared). Resolving a resolved alert is ErrConflict; an
// unknown outcome is ErrInvalid.
func (m *Manager) Resolve(ctx context.Context, id, by, outcome, note string) (Alert, error) {
	if !humanOutcomes[outcome] {
		return Alert{}, fmt.Errorf("%w: outcome %q is not one of false_alarm, ok_by_phone, visited, emergency_services, hospital", ErrInvalid, outcome)
	}
	if !catalog.ValidActor(by) {
		return Alert{}, fmt.Errorf("%w: resolved_by must be a user id", ErrInvalid)
	}
	return m.change(ctx, id, func(cur *record, now time.Time) (*record, error) {
		if cur.Alert.Status == StatusResolved {
			return nil, fmt.Errorf("%w: alert %s is already resolved", ErrConflict, id)
		}
		nr := cur.clone()
		a := &nr.Alert
		a.Status, a.ResolvedAt, a.ResolvedBy, a.Outcome = StatusResolved, &now, by, outcome
		nr.NextEscalationAt = nil
		m.transition(nr, TransitionResolved, by, note, now, false)
		return nr, nil
	})
}

// Get returns one alert: an open one from memory, a resolved one from KV.
func (m *Manager) Get(id string) (Alert, error) {
	m.mu.Lock()
	if r := m.byID[id]; r != nil {
		a := r.Alert.copy()
		m.mu.Unlock()
		return a, nil
	}
	m.mu.Unlock()
	// Not in memory: resolved (or unknown). Read without holding m.mu, so
	// history reads do not hold up transitions.
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	r, err := m.stored(ctx, id)
	if err != nil {
		return Alert{}, err
	}
	return r.Alert, nil
}

// List returns the alerts matching f, newest raise first. Open and
// acknowledged alerts are all in memory; a filter that may match resolved
// ones reads the bucket too, in one pass. When the bucket cannot be read
// the answer holds what memory has, and the failure is logged.
func (m *Manager) List(f Filter) []Alert {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	found := map[string]Alert{}
	if f.Status != StatusOpen && f.Status != StatusAcknowledged {
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		err := m.scan(ctx, func(r *record) {
			if f.match(&r.Alert) {
				found[r.Alert.ID] = r.Alert
			}
		})
		cancel()
		if err != nil {
			m.log.Error().Err(err).Msg("resolved alerts unavailable; listing those in memory")
		}
	}
	m.mu.Lock()
	for id, r := range m.byID { // the live copies win over what KV had
		if f.match(&r.Alert) {
			found[id] = r.Alert.copy()
		} else {
			delete(found, id)
		}
	}
	m.mu.Unlock()
	out := make([]Alert, 0, len(found))
	for _, a := range found {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].RaisedAt.Equal(out[j].RaisedAt) {
			return out[i].RaisedAt.After(out[j].RaisedAt)
		}
		return out[i].ID > out[j].ID
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

// Tick takes every escalation step that is due by the Manager's clock, one
// `escalated` transition per step, and drops resolved alerts older than
// ResolvedRetention. The deadlines are stored with the alerts, so after a
// restart each step is taken once, when due. Only the leader (Options.Leads)
// does this; on other instances Tick does nothing.
func (m *Manager) Tick(ctx context.Context) error {
	if !m.leading() {
		return nil
	}
	now, sweep, err := m.escalate(ctx)
	if sweep {
		err = errors.Join(err, m.sweep(ctx, now))
	}
	return err
}

func (m *Manager) leading() bool { return m.leads == nil || m.leads() }

// escalate takes the due escalation steps and says whether the hourly
// sweep of old resolved alerts is due.
func (m *Manager) escalate(ctx context.Context) (now time.Time, sweep bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now = m.clock().UTC()
	var due []string
	for _, cur := range m.open {
		if cur.dueAt(now) {
			due = append(due, cur.Alert.ID)
		}
	}
	var errs []error
	for _, id := range due {
		if err := m.fresh(ctx, func() error { return m.step(ctx, id, now) }); err != nil {
			errs = append(errs, err)
		}
	}
	if now.Sub(m.lastSweep) >= time.Hour {
		m.lastSweep = now
		sweep = true
	}
	return now, sweep, errors.Join(errs...)
}

func (r *record) dueAt(now time.Time) bool {
	return r.Alert.Status == StatusOpen && r.NextEscalationAt != nil && !now.Before(*r.NextEscalationAt)
}

// step takes the escalation steps of alert id due at now, if it is still
// open and due in memory. Called with m.mu held.
func (m *Manager) step(ctx context.Context, id string, now time.Time) error {
	cur := m.byID[id]
	if cur == nil || !cur.dueAt(now) || !m.monitored(cur.Alert.ResidentID) {
		// Resolved or acknowledged meanwhile, or being erased (the alert
		// goes with the resident): never escalate, above all not to 119.
		return nil
	}
	if m.suppression(ctx, &cur.Alert, false, now) != nil {
		return nil // held until the suppression ends (see SettingsSource)
	}
	nr := cur.clone()
	a := &nr.Alert
	a.Suppressed = nil
	for nr.NextEscalationAt != nil && !now.Before(*nr.NextEscalationAt) {
		due := *nr.NextEscalationAt
		a.EscalationLevel++
		nr.NextEscalationAt = escalation.Next(a.Severity, a.EscalationLevel, len(nr.Chain), due)
		m.transition(nr, TransitionEscalated, SystemActor, "", now, nr.tierRole(a.EscalationLevel) == escalation.RoleEmergency)
	}
	return m.commit(ctx, cur, nr)
}

// markerAge: how long a swept or erased alert's marker stays (kv.PurgeMarkers).
const markerAge = 24 * time.Hour

// sweep deletes resolved alerts older than ResolvedRetention from KV. It
// reads the bucket without holding m.mu; a delete names the revision it
// read, so an alert changed meanwhile (a late comment) is left for the
// next sweep.
func (m *Manager) sweep(ctx context.Context, now time.Time) error {
	var old []*record
	err := m.scan(ctx, func(r *record) {
		if r.Alert.Status == StatusResolved && len(r.Outbox) == 0 && r.Alert.ResolvedAt != nil && now.Sub(*r.Alert.ResolvedAt) > ResolvedRetention {
			old = append(old, r)
		}
	})
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for _, r := range old {
		err := m.kv.Delete(ctx, kvKey(r.Alert.ID), jetstream.LastRevision(r.rev))
		if err != nil && !kv.WrongRevision(err) {
			errs = append(errs, fmt.Errorf("delete alert %s: %w", r.Alert.ID, err))
		}
	}
	// Their markers (and erasures') would keep each alert's key in the
	// server for ever; a day on, every follower's watch has seen them.
	if _, err := kv.PurgeMarkers(ctx, m.js, m.kv, "alert.>", m.markerAge); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// suppression asks the settings source; critical and AllTiers alerts are
// never suppressed. A settings error does not suppress: when in doubt, tell.
func (m *Manager) suppression(ctx context.Context, a *Alert, allTiers bool, now time.Time) *Suppression {
	if m.settings == nil || allTiers || a.Severity == rules.SeverityCritical {
		return nil
	}
	s, err := m.settings.Suppression(ctx, a.ResidentID, a.Rule, now)
	if err != nil {
		m.log.Warn().Err(err).Str("resident_id", a.ResidentID).Msg("suppression settings unavailable; not suppressing")
		return nil
	}
	return s
}

// transition advances the alert's seq, stamps it, and queues its message
// in the record's outbox, with the time of its InfluxDB point.
func (m *Manager) transition(r *record, kind, by, note string, now time.Time, to119 bool) {
	a := &r.Alert
	a.Seq++
	a.Transition = kind
	a.UpdatedAt = now
	a.Tier = r.tierRole(a.EscalationLevel)
	a.Recipients = escalation.WithAssignee(escalation.Recipients(r.Chain, a.EscalationLevel), a.AssignedTo)
	if kind != TransitionRepeated { // repeats are counted in occurrences, not noted
		a.Notes = append(a.Notes, Note{At: now, By: by, Transition: kind, Text: note})
	}
	ms := now.UnixMilli()
	if ms <= r.LastPointMs {
		ms = r.LastPointMs + 1
	}
	r.LastPointMs = ms
	data, _ := json.Marshal(a) // an Alert always marshals
	r.Outbox = append(r.Outbox, pending{
		Seq: a.Seq, MsgID: a.MsgID(), Subject: model.AlertSubject(a.ResidentID, a.Severity),
		Data: data, PointMs: ms,
	})
	if to119 {
		r.Outbox[len(r.Outbox)-1].To119 = model.EmergencySubject(a.ResidentID)
	}
}

// commit stores nr (replacing cur, nil for a new alert) in KV, then makes it
// the live copy and publishes its outbox once. Storing first is what makes
// an ack of the causing message safe, and a crash before publishing
// harmless: the outbox is sent again at start.
func (m *Manager) commit(ctx context.Context, cur, nr *record) error {
	if cur != nil && m.leads != nil && !cur.mine && len(cur.Outbox) > 0 {
		// Another instance may be publishing cur's outbox right now:
		// wait for it (fresh, refresh) rather than publish it too.
		return staleError{id: cur.Alert.ID}
	}
	if err := m.persist(ctx, nr, cur); err != nil {
		return err
	}
	nr.mine = true // cur's outbox, if any, is nr's now
	m.place(nr)
	var prev uint64 // cur's seq: what nr adds comes after
	if cur != nil {
		prev = cur.Alert.Seq
	}
	for i := range nr.Outbox {
		p := &nr.Outbox[i]
		if p.Seq > prev {
			m.transitions.With(transitionOf(p.MsgID), nr.Alert.Severity).Inc()
			m.log.Info().Str("alert_id", nr.Alert.ID).Str("resident_id", nr.Alert.ResidentID).
				Str("rule", nr.Alert.Rule).Str("severity", nr.Alert.Severity).
				Str("transition", transitionOf(p.MsgID)).Int("level", nr.Alert.EscalationLevel).Msg("alert transition")
		}
	}
	m.publishOutbox(ctx, nr)
	if nr.dirty {
		// Record the publication now, not at the next flush, so a restart
		// does not publish it again: JetStream drops the duplicate by its
		// Nats-Msg-Id, but core subscribers would see it twice.
		if err := m.persist(ctx, nr, nr); err != nil {
			m.log.Warn().Err(err).Str("alert_id", nr.Alert.ID).Msg("publication not recorded; the flusher will")
		}
	}
	if len(nr.Outbox) == 0 && !nr.dirty {
		delete(m.unsent, nr.Alert.ID)
		m.retire(nr)
	} else {
		m.wake() // the flusher retries what is left
	}
	m.count()
	return nil
}

func transitionOf(msgID string) string {
	parts := strings.Split(msgID, ":")
	if len(parts) < 3 {
		return ""
	}
	return parts[len(parts)-2]
}

// count updates the gauges of open alerts and of pending transitions.
func (m *Manager) count() {
	m.openCount.Store(int64(len(m.open)))
	n := 0
	for _, r := range m.unsent {
		n += len(r.Outbox)
	}
	m.pendingOut.Store(int64(n))
}

func (m *Manager) wake() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

func (r *record) tierRole(level int) string { return escalation.Role(r.Chain, level) }

func (r *record) clone() *record {
	c := *r
	c.Alert = r.Alert.copy()
	c.Chain = append([]escalation.Tier(nil), r.Chain...)
	c.Outbox = append([]pending(nil), r.Outbox...)
	return &c
}

// copy returns a so its slices are not shared with the Manager's state.
func (a Alert) copy() Alert {
	a.Recipients = append([]string(nil), a.Recipients...)
	a.Notes = append([]Note(nil), a.Notes...)
	return a
}

// newID is a sortable, contract-valid id: raise time in ms (strictly
// increasing within this Manager, so List's tie-break by id is newest
// first), then random. Called with m.mu held.
func (m *Manager) newID(now time.Time) string {
	ms := max(now.UnixMilli(), m.lastIDMs+1)
	m.lastIDMs = ms
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("al-%011x-%s", ms, hex.EncodeToString(b[:]))
}
