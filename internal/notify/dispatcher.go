package notify

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/internal/metrics"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/notify/phones"
)

// Paths the notifications point at (api/push.go serves them).
const (
	ReceiptPath = "/api/v1/push/receipts"
)

// AckPath is the one-tap acknowledgement of an alert, which takes the
// action token in X-Care-Action-Token.
func AckPath(alertID string) string { return "/api/v1/push/alerts/" + alertID + "/ack" }

// DefaultDurable is the dispatcher's consumer on CARE_ALERTS.
const DefaultDurable = "webpush"

// DefaultBackoff is the wait before a transition whose push failed for
// now (push service down, 429, timeouts) is tried again, by delivery count;
// past the transition's TTL it is given up.
var DefaultBackoff = []time.Duration{time.Second, 5 * time.Second, 15 * time.Second, 30 * time.Second, 60 * time.Second}

// DispatcherOptions are the dispatcher's dependencies.
type DispatcherOptions struct {
	JS       jetstream.JetStream
	Channels []Channel
	// Names gives a resident's name, masked before it goes anywhere; nil
	// or "" shows the resident id's masked form.
	Names func(residentID string) string
	// Current, when set, gives an alert's latest transition counter: a
	// transition superseded by a newer one is not pushed (the newer one
	// replaces it on the phone anyway, and an old "raised" must not land
	// after its "acknowledged").
	Current func(alertID string) (seq uint64, ok bool)
	// PublicURL is carehub's origin as phones reach it (CARE_PUBLIC_URL):
	// the notification's links are absolute for channels that leave it.
	PublicURL string
	// Tokens mints action tokens for channels without phones (webhook);
	// the Web Push channel mints its own per phone.
	Tokens  *phones.Tokens
	TTL     func(severity string) time.Duration // DefaultTTL when nil
	Durable string                              // DefaultDurable when empty
	// Workers is how many transitions are handled at once (default 4);
	// Concurrency how many recipients×channels of one transition (default 64).
	Workers, Concurrency int
	Backoff              []time.Duration // DefaultBackoff when nil
	AckWait              time.Duration   // default 60 s; kept alive while a fan-out runs
	Clock                func() time.Time
	Log                  zerolog.Logger
	Metrics              *metrics.Registry
}

// Dispatcher turns alert transitions on CARE_ALERTS into notifications
// through a durable JetStream consumer. A transition is acknowledged only
// when every recipient was reached or failed for good; otherwise it is
// redelivered after a backoff, and phones already reached are skipped.
// A restart or a push-service outage therefore loses nothing.
type Dispatcher struct {
	o DispatcherOptions

	transitions *metrics.CounterVec

	// locks keeps one alert's transitions in order: an alert id is
	// present while a transition of it is handled or waiting, and removed
	// after, so the map does not grow with every alert ever raised.
	locksMu sync.Mutex
	locks   map[string]*alertLock
}

type alertLock struct {
	mu   sync.Mutex
	refs int
}

// NewDispatcher checks the options and fills in defaults.
func NewDispatcher(o DispatcherOptions) (*Dispatcher, error) {
	if o.JS == nil {
		return nil, errors.New("notify: dispatcher needs JetStream")
	}
	if o.Durable == "" {
		o.Durable = DefaultDurable
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 64
	}
	if o.Backoff == nil {
		o.Backoff = DefaultBackoff
	}
	if o.AckWait <= 0 {
		o.AckWait = time.Minute
	}
	if o.TTL == nil {
		o.TTL = DefaultTTL
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New()
	}
	o.PublicURL = strings.TrimSuffix(o.PublicURL, "/")
	d := &Dispatcher{o: o, locks: map[string]*alertLock{}}
	d.transitions = o.Metrics.Counter("carehub_push_transitions_total",
		"Alert transitions the push dispatcher handled, by result: sent, retry, gave_up, suppressed, expired, superseded, no_recipients, bad.", "result")
	return d, nil
}

// Run consumes CARE_ALERTS until ctx ends. Fan-outs in progress stop
// starting new sends, let those in flight finish and are redelivered
// later: nothing is acknowledged that was not done.
func (d *Dispatcher) Run(ctx context.Context) error {
	cons, err := d.o.JS.CreateOrUpdateConsumer(ctx, model.StreamAlerts, jetstream.ConsumerConfig{
		Durable:       d.o.Durable,
		Description:   "Web Push and other notification channels",
		FilterSubject: model.SubjectAlertsAll,
		// A new install does not push the alerts of the past.
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       d.o.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: 256,
	})
	if err != nil {
		return err
	}
	iter, err := cons.Messages(jetstream.PullMaxMessages(2 * d.o.Workers))
	if err != nil {
		return err
	}
	stopped := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-stopped:
		}
		iter.Stop()
	}()
	defer close(stopped)
	sem := make(chan struct{}, d.o.Workers)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		msg, err := iter.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			d.o.Log.Warn().Err(err).Msg("push dispatcher: next message")
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			d.handle(ctx, msg)
		}()
	}
}

func (d *Dispatcher) lock(alertID string) func() {
	d.locksMu.Lock()
	l := d.locks[alertID]
	if l == nil {
		l = &alertLock{}
		d.locks[alertID] = l
	}
	l.refs++
	d.locksMu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		d.locksMu.Lock()
		if l.refs--; l.refs == 0 {
			delete(d.locks, alertID)
		}
		d.locksMu.Unlock()
	}
}

// handle fans one transition out and settles its message.
func (d *Dispatcher) handle(ctx context.Context, msg jetstream.Msg) {
	var a alerts.Alert
	if err := json.Unmarshal(msg.Data(), &a); err != nil || a.ID == "" {
		d.transitions.With("bad").Inc()
		_ = msg.Term()
		return
	}
	unlock := d.lock(a.ID)
	defer unlock()
	now := d.o.Clock()
	ttl := d.o.TTL(a.Severity)
	switch {
	case a.Suppressed != nil:
		// Notification is held (away, hospital, visit, snooze): the
		// alert's timeline says why, and nobody was notified.
		d.settle(msg, "suppressed")
		return
	case now.Sub(a.UpdatedAt) > ttl:
		d.settle(msg, "expired")
		return
	}
	if d.o.Current != nil {
		if seq, ok := d.o.Current(a.ID); ok && seq > a.Seq {
			d.settle(msg, "superseded")
			return
		}
	}
	notes := d.notifications(a, msg)
	if len(notes) == 0 {
		d.settle(msg, "no_recipients")
		return
	}
	// Keep the message ours while the fan-out runs.
	hb, stopHB := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		t := time.NewTicker(d.o.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-hb.Done():
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	}()
	var (
		mu    sync.Mutex
		after time.Duration
		retry bool
		wg    sync.WaitGroup
		sem   = make(chan struct{}, d.o.Concurrency)
	)
	for _, n := range notes {
		for _, ch := range d.o.Channels {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				err := ch.Send(ctx, n)
				if err == nil {
					return
				}
				if w, ok := retryAfter(err); ok {
					mu.Lock()
					retry, after = true, max(after, w)
					mu.Unlock()
					return
				}
				d.o.Log.Warn().Str("channel", ch.Name()).Str("alert_id", a.ID).Str("user_id", n.UserID).Err(err).Msg("notification failed; not retried")
			}()
		}
	}
	wg.Wait()
	stopHB()
	if !retry {
		d.settle(msg, "sent")
		return
	}
	delay := after
	if md, err := msg.Metadata(); err == nil {
		delay = max(delay, d.o.Backoff[min(int(md.NumDelivered)-1, len(d.o.Backoff)-1)])
	}
	if d.o.Clock().Add(delay).Sub(a.UpdatedAt) > ttl {
		// Past the push's TTL a late notification only confuses;
		// escalation has taken over.
		d.o.Log.Warn().Str("alert_id", a.ID).Str("transition", a.Transition).Msg("push given up: past its TTL")
		d.transitions.With("gave_up").Inc()
		_ = msg.Term()
		return
	}
	d.transitions.With("retry").Inc()
	_ = msg.NakWithDelay(delay)
}

func (d *Dispatcher) settle(msg jetstream.Msg, result string) {
	d.transitions.With(result).Inc()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// DoubleAck: the server confirms, so a lost ack cannot redeliver a
	// transition that was fully pushed.
	if err := msg.DoubleAck(ctx); err != nil {
		d.o.Log.Warn().Err(err).Msg("push dispatcher: ack not confirmed; the transition may be redelivered (phones already reached are skipped)")
	}
}

// quiet transitions replace the notification without alarming anyone.
var quiet = map[string]bool{
	alerts.TransitionAcknowledged: true, alerts.TransitionResolved: true, alerts.TransitionAutoCleared: true,
}

// notifications builds one notification per recipient the transition
// names: who is notified is exactly what the alert's timeline shows
// (alerts.Alert.Recipients: the escalation tiers reached plus the assignee).
func (d *Dispatcher) notifications(a alerts.Alert, msg jetstream.Msg) []Notification {
	users := slices.Clone(a.Recipients)
	if a.AssignedTo != "" {
		users = append(users, a.AssignedTo)
	}
	slices.Sort(users)
	users = slices.Compact(users)
	msgID := msg.Headers().Get("Nats-Msg-Id")
	if msgID == "" {
		msgID = a.MsgID()
	}
	name := ""
	if d.o.Names != nil {
		name = d.o.Names(a.ResidentID)
	}
	if name == "" {
		name = a.ResidentID
	}
	out := make([]Notification, 0, len(users))
	for _, u := range users {
		if u == "" || strings.HasPrefix(u, "@") {
			continue
		}
		n := Notification{AlertID: a.ID, Seq: a.Seq, MsgID: msgID, Transition: a.Transition, Severity: a.Severity,
			Rule: a.Rule, EscalationLevel: a.EscalationLevel, Tier: a.Tier, ResidentID: a.ResidentID,
			ResidentMasked: MaskName(name), UserID: u, RaisedAt: a.RaisedAt, AcknowledgedBy: a.AcknowledgedBy,
			Quiet: quiet[a.Transition], URL: d.o.PublicURL + "/m/alerts/" + a.ID, AckURL: d.o.PublicURL + AckPath(a.ID)}
		if d.o.Tokens != nil && !n.Quiet {
			n.ActionToken = d.o.Tokens.Mint(a.ID, u, phones.ActionAck, "", a.Seq)
		}
		out = append(out, n)
	}
	return out
}
