package notify_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/internal/notify"
	"github.com/carehub/carehub/internal/notify/phones"
	"github.com/carehub/carehub/internal/testenv"
	"github.com/carehub/carehub/internal/webpush"
	"github.com/carehub/carehub/internal/webpush/webpushtest"
)

// rig is one NATS server, the push stores, a fake push service and a way
// to start and stop dispatchers on the same durable consumer.
type rig struct {
	t       *testing.T
	js      jetstream.JetStream
	store   *phones.Store
	tokens  *phones.Tokens
	svc     *webpushtest.Service
	channel *notify.PushChannel
	durable string
}

func newRig(t *testing.T) *rig {
	t.Helper()
	ns := testenv.NATS(t)
	_, js := testenv.JetStream(t, ns)
	ctx := context.Background()
	store, err := phones.OpenStore(ctx, js, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	tokens, err := phones.NewTokens(ctx, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	priv, pub, err := webpush.GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	v, err := webpush.NewVAPID(priv, pub, "mailto:ops@example.org", nil)
	if err != nil {
		t.Fatal(err)
	}
	svc := webpushtest.NewService(t)
	ch := &notify.PushChannel{Store: store, Sender: &webpush.Sender{VAPID: v, Client: &http.Client{Timeout: 2 * time.Second}},
		Tokens: tokens, Log: zerolog.Nop(), Backoff: func(int) time.Duration { return 10 * time.Millisecond }}
	t.Cleanup(func() {
		for _, err := range svc.Errors() {
			t.Errorf("fake push service saw a protocol error: %v", err)
		}
	})
	return &rig{t: t, js: js, store: store, tokens: tokens, svc: svc, channel: ch, durable: testenv.ID("wp")}
}

// subscribe registers a new fake phone for user.
func (r *rig) subscribe(user string) *webpushtest.Subscriber {
	r.t.Helper()
	s := r.svc.NewSubscriber()
	if _, err := r.store.Put(context.Background(), phones.Subscription{Endpoint: s.Endpoint, P256DH: s.P256DH(),
		Auth: s.AuthSecret(), UserID: user, Locale: "ko"}); err != nil {
		r.t.Fatal(err)
	}
	return s
}

// start runs a dispatcher until the returned stop is called (or the test ends).
func (r *rig) start(tune func(*notify.DispatcherOptions)) (stop func()) {
	r.t.Helper()
	o := notify.DispatcherOptions{JS: r.js, Channels: []notify.Channel{r.channel}, Durable: r.durable,
		Names: func(string) string { return "김영희" }, Backoff: []time.Duration{20 * time.Millisecond}, Log: zerolog.Nop()}
	if tune != nil {
		tune(&o)
	}
	d, err := notify.NewDispatcher(o)
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				r.t.Errorf("dispatcher: %v", err)
			}
		})
	}
	r.t.Cleanup(stop)
	// The consumer exists before anything is published (DeliverNew).
	testenv.WaitFor(r.t, 5*time.Second, "push consumer", func() bool {
		_, err := r.js.Consumer(context.Background(), "CARE_ALERTS", r.durable)
		return err == nil
	})
	return stop
}

// publish puts a transition on CARE_ALERTS as alerts.Manager does.
func (r *rig) publish(a alerts.Alert) {
	r.t.Helper()
	b, _ := json.Marshal(a)
	m := nats.NewMsg("care.alerts." + a.ResidentID + "." + a.Severity)
	m.Data = b
	m.Header.Set("Nats-Msg-Id", a.MsgID())
	if _, err := r.js.PublishMsg(context.Background(), m); err != nil {
		r.t.Fatal(err)
	}
}

// settled waits until the consumer has nothing pending or unacknowledged.
func (r *rig) settled() {
	r.t.Helper()
	testenv.WaitFor(r.t, 10*time.Second, "consumer settled", func() bool {
		ci, done := testenv.ConsumerDone(context.Background(), r.js, "CARE_ALERTS", r.durable)
		return done && ci.NumRedelivered == 0
	})
}

func alert(id, transition string, seq uint64, recipients ...string) alerts.Alert {
	now := time.Now().UTC()
	return alerts.Alert{ID: id, ResidentID: "r-kim", HomeID: "h1", Rule: "fall", Severity: "critical", Status: alerts.StatusOpen,
		Transition: transition, EscalationLevel: 1, RaisedAt: now, UpdatedAt: now, Seq: seq, Recipients: recipients}
}

func payloadOf(t *testing.T, p webpushtest.Push) notify.Payload {
	t.Helper()
	var pl notify.Payload
	if err := json.Unmarshal(p.Payload, &pl); err != nil {
		t.Fatalf("payload %q: %v", p.Payload, err)
	}
	return pl
}

func TestPushRoundTrip(t *testing.T) {
	r := newRig(t)
	phone := r.subscribe("cw-lee")
	r.start(nil)
	a := alert("al-0190aa-1a2b3c4d", alerts.TransitionRaised, 1, "cw-lee")
	r.publish(a)
	testenv.WaitFor(t, 5*time.Second, "push to the phone", func() bool { return len(r.svc.ReceivedBy(phone)) == 1 })
	p := r.svc.ReceivedBy(phone)[0]
	if p.Headers.Get("Urgency") != "high" || p.Headers.Get("TTL") != "3600" || p.Headers.Get("Topic") != a.ID {
		t.Fatalf("headers Urgency=%q TTL=%q Topic=%q", p.Headers.Get("Urgency"), p.Headers.Get("TTL"), p.Headers.Get("Topic"))
	}
	pl := payloadOf(t, p)
	if pl.AlertID != a.ID || pl.Severity != "critical" || pl.Rule != "fall" || pl.Tag != a.ID || pl.Seq != 1 || pl.Silent {
		t.Fatalf("payload %+v", pl)
	}
	if pl.Resident != "김○희" || strings.Contains(string(p.Payload), "영") {
		t.Fatalf("the lock screen must not show the full name: %s", p.Payload)
	}
	if pl.AckURL != notify.AckPath(a.ID) || pl.ActionToken == "" {
		t.Fatalf("ack action missing: %+v", pl)
	}
	if _, err := r.tokens.Check(pl.ActionToken, a.ID, phones.ActionAck); err != nil {
		t.Fatalf("action token: %v", err)
	}
	r.settled()
	rs, err := r.store.Receipts(context.Background(), a.ID)
	if err != nil || len(rs) != 1 || rs[0].AcceptedAt == nil || rs[0].SentAt == nil || rs[0].UserID != "cw-lee" {
		t.Fatalf("receipts %+v %v", rs, err)
	}

	// Acknowledged: a quiet replacement with the same tag and topic.
	ack := a
	ack.Transition, ack.Status, ack.Seq, ack.AcknowledgedBy = alerts.TransitionAcknowledged, alerts.StatusAcknowledged, 2, "cw-lee"
	r.publish(ack)
	testenv.WaitFor(t, 5*time.Second, "replacement push", func() bool { return len(r.svc.ReceivedBy(phone)) == 2 })
	p = r.svc.ReceivedBy(phone)[1]
	pl = payloadOf(t, p)
	if !pl.Silent || pl.Tag != a.ID || p.Headers.Get("Topic") != a.ID || p.Headers.Get("Urgency") != "normal" || pl.AckURL != "" {
		t.Fatalf("replacement %+v urgency %q", pl, p.Headers.Get("Urgency"))
	}
}

func TestRecipientsPerTier(t *testing.T) {
	r := newRig(t)
	tier1, tier2, other := r.subscribe("cw-a"), r.subscribe("cw-b"), r.subscribe("cw-other")
	tier1b := r.subscribe("cw-a") // a second phone of the same care worker
	r.start(nil)
	a := alert("al-tier-00000001", alerts.TransitionRaised, 1, "cw-a")
	r.publish(a)
	esc := a
	esc.Transition, esc.Seq, esc.EscalationLevel, esc.Recipients = alerts.TransitionEscalated, 2, 2, []string{"cw-a", "cw-b"}
	r.publish(esc)
	testenv.WaitFor(t, 5*time.Second, "pushes", func() bool {
		return len(r.svc.ReceivedBy(tier1)) == 2 && len(r.svc.ReceivedBy(tier1b)) == 2 && len(r.svc.ReceivedBy(tier2)) == 1
	})
	r.settled()
	if n := len(r.svc.ReceivedBy(other)); n != 0 {
		t.Fatalf("a care worker outside the chain got %d pushes", n)
	}
	pl := payloadOf(t, r.svc.ReceivedBy(tier2)[0])
	if pl.Transition != "escalated" || pl.EscalationLevel != 2 || !strings.Contains(pl.Title, "2단계") {
		t.Fatalf("escalation payload %+v", pl)
	}

	// Suppressed: nobody is notified.
	sup := alert("al-supp-00000001", alerts.TransitionRaised, 1, "cw-a")
	sup.Suppressed = &alerts.Suppression{Reason: "away"}
	r.publish(sup)
	r.settled()
	if n := len(r.svc.ReceivedBy(tier1)); n != 2 {
		t.Fatalf("suppressed alert pushed: %d", n)
	}
}

func TestRetriesAndCleanup(t *testing.T) {
	r := newRig(t)
	s429 := r.subscribe("cw-a")
	s500 := r.subscribe("cw-a")
	s404 := r.subscribe("cw-a")
	s410 := r.subscribe("cw-b")
	s413 := r.subscribe("cw-b")
	outage := r.subscribe("cw-c")
	r.svc.Script(s429, webpushtest.Answer{Status: 429, RetryAfter: "0"})
	r.svc.Script(s500, webpushtest.Answer{Status: 500}, webpushtest.Answer{Status: 502})
	r.svc.Script(s404, webpushtest.Answer{Status: 404})
	r.svc.Script(s410, webpushtest.Answer{Status: 410})
	r.svc.Script(s413, webpushtest.Answer{Status: 413})
	// Longer than the in-place attempts (3): the transition goes back to
	// JetStream and comes again, and only this phone is retried.
	for range 7 {
		r.svc.Script(outage, webpushtest.Answer{Status: 503})
	}
	r.start(nil)
	a := alert("al-retry-0000001", alerts.TransitionRaised, 1, "cw-a", "cw-b", "cw-c")
	r.publish(a)
	testenv.WaitFor(t, 10*time.Second, "retried phones reached", func() bool {
		return len(r.svc.ReceivedBy(s429)) == 1 && len(r.svc.ReceivedBy(s500)) == 1 && len(r.svc.ReceivedBy(outage)) == 1
	})
	r.settled()
	ctx := context.Background()
	for name, s := range map[string]*webpushtest.Subscriber{"404": s404, "410": s410} {
		if _, err := r.store.Get(ctx, phones.SubscriptionKey(map[string]string{"404": "cw-a", "410": "cw-b"}[name], s.Endpoint)); err == nil {
			t.Errorf("subscription answered %s still stored", name)
		}
	}
	for name, s := range map[string]*webpushtest.Subscriber{"429": s429, "500": s500, "413": s413, "outage": outage} {
		user := map[string]string{"429": "cw-a", "500": "cw-a", "413": "cw-b", "outage": "cw-c"}[name]
		if _, err := r.store.Get(ctx, phones.SubscriptionKey(user, s.Endpoint)); err != nil {
			t.Errorf("subscription answered %s deleted: %v", name, err)
		}
	}
	if n := r.svc.Attempts(s413); n != 1 {
		t.Fatalf("413 retried: %d attempts", n)
	}
	if n := r.svc.Attempts(s429); n != 2 {
		t.Fatalf("429 then 201: %d attempts", n)
	}
	if n := r.svc.Attempts(outage); n != 8 {
		t.Fatalf("outage phone: %d attempts, want 7 failures and 1 success", n)
	}
	if n := len(r.svc.ReceivedBy(s500)) + len(r.svc.ReceivedBy(s429)); n != 2 {
		t.Fatalf("phones reached before the outage were pushed again: %d", n)
	}
}

func TestRestartMidFanOutDeliversOnce(t *testing.T) {
	r := newRig(t)
	const phones = 12
	subs := make([]*webpushtest.Subscriber, phones)
	users := make([]string, phones)
	for i := range subs {
		users[i] = "cw-" + string(rune('a'+i))
		subs[i] = r.subscribe(users[i])
		r.svc.Script(subs[i], webpushtest.Answer{Delay: 40 * time.Millisecond})
	}
	stop := r.start(func(o *notify.DispatcherOptions) { o.Concurrency = 2 })
	a := alert("al-restart-00001", alerts.TransitionRaised, 1, users...)
	r.publish(a)
	testenv.WaitFor(t, 5*time.Second, "fan-out under way", func() bool { return len(r.svc.Received()) >= 3 })
	stop()
	if n := len(r.svc.Received()); n >= phones {
		t.Fatalf("fan-out finished before the restart (%d): the test proves nothing", n)
	}
	r.start(nil)
	testenv.WaitFor(t, 10*time.Second, "every phone reached", func() bool { return len(r.svc.Received()) >= phones })
	r.settled()
	for i, s := range subs {
		if n := len(r.svc.ReceivedBy(s)); n != 1 {
			t.Errorf("phone %d got %d pushes, want exactly 1", i, n)
		}
	}
}

func TestReceiptsAndStalePhones(t *testing.T) {
	r := newRig(t)
	quiet, silent := r.subscribe("cw-a"), r.subscribe("cw-a")
	hook := &recordingChannel{}
	r.start(func(o *notify.DispatcherOptions) { o.Channels = append(o.Channels, hook) })
	ids := []string{"al-stale-0000001", "al-stale-0000002", "al-stale-0000003"}
	for _, id := range ids {
		r.publish(alert(id, alerts.TransitionRaised, 1, "cw-a"))
	}
	testenv.WaitFor(t, 5*time.Second, "three pushes each", func() bool {
		return len(r.svc.ReceivedBy(quiet)) == 3 && len(r.svc.ReceivedBy(silent)) == 3
	})
	r.settled()
	ctx := context.Background()
	// The first phone's service worker confirms what it showed; the
	// second never does.
	for _, p := range r.svc.ReceivedBy(quiet) {
		pl := payloadOf(t, p)
		c, err := r.tokens.CheckReceipt(pl.ActionToken, pl.AlertID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.store.Confirm(ctx, pl.AlertID, pl.Seq, c.Sub, "shown"); err != nil {
			t.Fatal(err)
		}
	}
	stale, err := r.store.StalePhones(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(stale) != 1 || stale[0].Endpoint != silent.Endpoint {
		t.Fatalf("stale phones %+v, want only the silent one", stale)
	}
	rs, err := r.store.Receipts(ctx, ids[0])
	if err != nil || len(rs) != 2 {
		t.Fatalf("receipts %+v %v", rs, err)
	}
	shown := 0
	for _, rc := range rs {
		if rc.ShownAt != nil {
			shown++
		}
	}
	if shown != 1 {
		t.Fatalf("receipts shown %d, want 1", shown)
	}
	// The second channel got one notification per alert for the recipient.
	if n := hook.count(); n != 3 {
		t.Fatalf("second channel got %d notifications", n)
	}
}

// recordingChannel is a second channel in the dispatcher: the seam works
// for more than Web Push.
type recordingChannel struct {
	mu sync.Mutex
	ns []notify.Notification
}

func (c *recordingChannel) Name() string { return "recording" }
func (c *recordingChannel) Send(_ context.Context, n notify.Notification) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ns = append(c.ns, n)
	return nil
}
func (c *recordingChannel) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ns)
}
