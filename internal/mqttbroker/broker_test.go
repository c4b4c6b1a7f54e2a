package mqttbroker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/testenv"
)

const (
	svcUser = "carehub"
	svcPass = "service-secret"
	shared  = "$share/carehub/care/v1/dev/+/telemetry"
)

// denials records OnDenied calls.
type denials struct {
	mu  sync.Mutex
	got []string
}

func (d *denials) add(id, topic, reason string) {
	d.mu.Lock()
	d.got = append(d.got, id+" "+topic+" "+reason)
	d.mu.Unlock()
}

func (d *denials) has(s string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, g := range d.got {
		if g == s {
			return true
		}
	}
	return false
}

type env struct {
	reg     *devices.Registry
	broker  *Broker
	dir     string
	denied  *denials
	resID   string
	options Options
	js      jetstream.JetStream
}

func newEnv(t testing.TB) *env {
	t.Helper()
	s := testenv.NATS(t)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reg, err := devices.Open(ctx, js, zerolog.Nop(), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	res, err := reg.CreateResident(ctx, devices.Resident{Name: "A", HomeID: "home-1"})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{reg: reg, dir: t.TempDir(), denied: &denials{}, resID: res.ID, js: js}
	e.options = Options{
		Listen: "127.0.0.1:0", DataDir: e.dir,
		ServiceUser: svcUser, ServicePassword: svcPass,
		Authenticator: reg, OnDenied: e.denied.add, Log: zerolog.Nop(),
	}
	e.start(t)
	return e
}

func (e *env) start(t testing.TB) {
	t.Helper()
	b, err := Start(e.options)
	if err != nil {
		t.Fatal(err)
	}
	e.broker = b
	t.Cleanup(func() { _ = b.Close() })
}

func (e *env) device(t testing.TB, kind string) (string, string) {
	t.Helper()
	d, pw, err := e.reg.RegisterDevice(context.Background(), "", kind, e.resID)
	if err != nil {
		t.Fatal(err)
	}
	return d.ID, pw
}

// client is a paho client whose TCP connection the test can cut, to make
// the broker see a dropped link rather than a DISCONNECT.
type client struct {
	paho.Client
	mu   sync.Mutex
	conn net.Conn
}

func (c *client) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.conn.Close()
}

func dial(t testing.TB, addr, id, user, pw string, tweak func(*paho.ClientOptions)) (*client, error) {
	t.Helper()
	c := &client{}
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).
		SetClientID(id).SetUsername(user).SetPassword(pw).
		SetAutoReconnect(false).SetConnectRetry(false).SetCleanSession(true).
		SetConnectTimeout(5 * time.Second).
		SetCustomOpenConnectionFn(func(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
			conn, err := net.Dial("tcp", u.Host)
			c.mu.Lock()
			c.conn = conn
			c.mu.Unlock()
			return conn, err
		})
	if tweak != nil {
		tweak(o)
	}
	c.Client = paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c, nil
}

func mustDial(t testing.TB, addr, id, user, pw string, tweak func(*paho.ClientOptions)) *client {
	t.Helper()
	c, err := dial(t, addr, id, user, pw, tweak)
	if err != nil {
		t.Fatalf("connect %s: %v", id, err)
	}
	return c
}

func wait(t testing.TB, tok paho.Token) {
	t.Helper()
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatal("mqtt operation timed out")
	}
	if err := tok.Error(); err != nil {
		t.Fatal(err)
	}
}

// inbox collects received payloads.
type inbox struct {
	mu   sync.Mutex
	msgs []paho.Message
}

func (b *inbox) handler(_ paho.Client, m paho.Message) {
	b.mu.Lock()
	b.msgs = append(b.msgs, m)
	b.mu.Unlock()
}

func (b *inbox) payloads() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]string, len(b.msgs))
	for i, m := range b.msgs {
		out[i] = string(m.Payload())
	}
	return out
}

func (b *inbox) count() int { return len(b.payloads()) }

func TestDeviceAuthentication(t *testing.T) {
	e := newEnv(t)
	addr := e.broker.Addr()
	id, pw := e.device(t, "env")
	other, _ := e.device(t, "env")

	if _, err := dial(t, addr, id, id, pw, nil); err != nil {
		t.Fatalf("registered device refused: %v", err)
	}
	refused := []struct{ name, clientID, user, pw string }{
		{"wrong password", id, id, pw + "x"},
		{"empty password", id, id, ""},
		{"unknown device", "ghost-1", "ghost-1", pw},
		{"client id differs from username", other, id, pw},
		{"service user, wrong password", "ingest-x", svcUser, "nope"},
	}
	for _, c := range refused {
		if _, err := dial(t, addr, c.clientID, c.user, c.pw, nil); err == nil {
			t.Errorf("%s: connected, want refused", c.name)
		}
	}
	if _, err := dial(t, addr, "any-client-id", svcUser, svcPass, nil); err != nil {
		t.Fatalf("service user refused: %v", err)
	}
	if _, err := e.reg.SetDeviceDisabled(context.Background(), id, true); err != nil {
		t.Fatal(err)
	}
	if _, err := dial(t, addr, id, id, pw, nil); err == nil {
		t.Fatal("disabled device connected")
	}
}

func TestDeviceACL(t *testing.T) {
	e := newEnv(t)
	addr := e.broker.Addr()
	id, pw := e.device(t, "wearable")
	victim, _ := e.device(t, "wearable")

	var in inbox
	svc := mustDial(t, addr, "ingest-acl", svcUser, svcPass, nil)
	wait(t, svc.Subscribe("care/v1/dev/#", 1, in.handler))

	dev := mustDial(t, addr, id, id, pw, nil)
	wait(t, dev.Publish(model.DeviceTopic(id, model.TopicTelemetry), 1, false, `{"values":{"heart_rate":70}}`))
	testenv.WaitFor(t, 5*time.Second, "the allowed publish at the service", func() bool { return in.count() == 1 })

	// Subscribing to another device's config is refused (SUBACK 0x80).
	tok := dev.Subscribe(model.DeviceTopic(victim, model.TopicConfig), 1, nil)
	wait(t, tok)
	for _, code := range tok.(*paho.SubscribeToken).Result() {
		if code != 0x80 {
			t.Fatalf("subscribe to another device's config granted: %#x", code)
		}
	}
	if !e.denied.has(id + " care/v1/dev/" + victim + "/config " + model.ReasonSubscribeNotAllowed) {
		t.Fatalf("denied subscribe not reported: %v", e.denied.got)
	}
	// Its own config is fine.
	own := dev.Subscribe(model.DeviceTopic(id, model.TopicConfig), 1, nil)
	wait(t, own)
	for _, code := range own.(*paho.SubscribeToken).Result() {
		if code != 1 {
			t.Fatalf("own config subscribe: %#x", code)
		}
	}

	// Publishing as another device: denied, reported, not delivered. MQTT
	// 3.1.1 has no negative PUBACK, so mochi closes the connection.
	forged := model.DeviceTopic(victim, model.TopicEvent)
	dev.Publish(forged, 1, false, `{"type":"sos"}`).WaitTimeout(2 * time.Second)
	testenv.WaitFor(t, 5*time.Second, "OnDenied for the forged publish", func() bool {
		return e.denied.has(id + " " + forged + " " + model.ReasonTopicNotAllowed)
	})
	for _, topic := range []string{"care/v1/dev/" + id + "/config", "care/v1/dev/" + id + "/telemetry/x", "other/topic"} {
		dev2 := mustDial(t, addr, id, id, pw, nil)
		dev2.Publish(topic, 0, false, "x").WaitTimeout(2 * time.Second)
		testenv.WaitFor(t, 5*time.Second, "OnDenied for "+topic, func() bool {
			return e.denied.has(id + " " + topic + " " + model.ReasonTopicNotAllowed)
		})
	}
	if got := in.payloads(); len(got) != 1 {
		t.Fatalf("service received %d messages, want only the allowed one: %q", len(got), got)
	}
}

func TestLastWill(t *testing.T) {
	e := newEnv(t)
	addr := e.broker.Addr()
	id, pw := e.device(t, "motion")
	other, _ := e.device(t, "motion")

	var in inbox
	svc := mustDial(t, addr, "ingest-will", svcUser, svcPass, nil)
	wait(t, svc.Subscribe("$share/carehub/care/v1/dev/+/status", 1, in.handler))

	status := model.DeviceTopic(id, model.TopicStatus)
	dev := mustDial(t, addr, id, id, pw, func(o *paho.ClientOptions) {
		o.SetWill(status, `{"online":false}`, 1, true)
	})
	wait(t, dev.Publish(status, 1, true, `{"online":true}`))
	dev.cut() // the link drops without DISCONNECT
	testenv.WaitFor(t, 5*time.Second, "the Last Will at the service", func() bool {
		p := in.payloads()
		return len(p) == 2 && p[1] == `{"online":false}`
	})
	if e.denied.has(id + " " + status + " " + model.ReasonTopicNotAllowed) {
		t.Fatal("own Last Will reported as denied")
	}

	// A will on another device's topic is refused at connect.
	bad := model.DeviceTopic(other, model.TopicStatus)
	if _, err := dial(t, addr, id, id, pw, func(o *paho.ClientOptions) { o.SetWill(bad, `{"online":false}`, 1, true) }); err == nil {
		t.Fatal("device connected with a Last Will on another device's topic")
	}
	if !e.denied.has(id + " " + bad + " " + model.ReasonWillNotAllowed) {
		t.Fatalf("forged will not reported: %v", e.denied.got)
	}
}

// persistent connects carehub's ingest session: fixed client id, clean
// session false, messages collected by the default handler because queued
// messages may arrive before Subscribe returns.
func persistent(t testing.TB, e *env, in *inbox, autoAck bool) *client {
	return mustDial(t, e.broker.Addr(), "carehub-ingest", svcUser, svcPass, func(o *paho.ClientOptions) {
		o.SetCleanSession(false).SetDefaultPublishHandler(in.handler).SetAutoAckDisabled(!autoAck).SetOrderMatters(false)
	})
}

func publishN(t testing.TB, e *env, id, pw, prefix string, n int) {
	t.Helper()
	dev := mustDial(t, e.broker.Addr(), id, id, pw, nil)
	for i := range n {
		wait(t, dev.Publish(model.DeviceTopic(id, model.TopicTelemetry), 1, false, fmt.Sprintf("%s-%d", prefix, i)))
	}
	dev.Disconnect(100)
}

// waitQueued waits until the offline ingest session holds n messages. mochi
// acks a device's QoS 1 publish before it queues the message for
// subscribers, and a subscriber that reconnects inside that window loses it
// (see the package report): the test waits so that it tests queueing.
func waitQueued(t testing.TB, e *env, n int) {
	t.Helper()
	testenv.WaitFor(t, 5*time.Second, fmt.Sprintf("%d messages queued for the offline session", n), func() bool {
		cl, ok := e.broker.srv.Clients.Get("carehub-ingest")
		return ok && cl.State.Inflight.Len() == n
	})
}

// TestSharedSubscriptionQueuesWhileOffline: (a) QoS 1 messages published
// while the persistent shared-subscription member is away are delivered when
// it comes back with the same client id, also across a broker restart.
func TestSharedSubscriptionQueuesWhileOffline(t *testing.T) {
	e := newEnv(t)
	id, pw := e.device(t, "bed")

	var in inbox
	svc := persistent(t, e, &in, true)
	wait(t, svc.Subscribe(shared, 1, nil))
	svc.Disconnect(100)

	publishN(t, e, id, pw, "while-away", 5)
	waitQueued(t, e, 5)

	var in2 inbox
	svc = persistent(t, e, &in2, true)
	testenv.WaitFor(t, 5*time.Second, "5 queued messages after reconnect", func() bool { return in2.count() == 5 })
	svc.Disconnect(100)

	// Restart the broker on the same data dir: the session, its shared
	// subscription and messages queued before and after the restart survive.
	publishN(t, e, id, pw, "before-restart", 3)
	waitQueued(t, e, 3)
	if err := e.broker.Close(); err != nil {
		t.Fatal(err)
	}
	e.start(t)
	publishN(t, e, id, pw, "after-restart", 2)
	waitQueued(t, e, 5)

	var in3 inbox
	svc = persistent(t, e, &in3, true)
	testenv.WaitFor(t, 5*time.Second, "messages queued across the restart", func() bool { return in3.count() == 5 })
	got := strings.Join(in3.payloads(), ",")
	for _, want := range []string{"before-restart-0", "before-restart-2", "after-restart-1"} {
		if !strings.Contains(got, want) {
			t.Fatalf("missing %s in %s", want, got)
		}
	}
	// And the restored subscription keeps delivering live.
	publishN(t, e, id, pw, "live", 1)
	testenv.WaitFor(t, 5*time.Second, "live delivery on the restored session", func() bool { return in3.count() == 6 })
	svc.Disconnect(100)
}

// TestUnackedMessageRedelivered: (b) a message the subscriber received but
// never acknowledged before its link dropped is sent again on reconnect.
func TestUnackedMessageRedelivered(t *testing.T) {
	e := newEnv(t)
	id, pw := e.device(t, "bed")

	var in inbox
	svc := persistent(t, e, &in, false) // never acks
	wait(t, svc.Subscribe(shared, 1, in.handler))
	publishN(t, e, id, pw, "unacked", 2)
	testenv.WaitFor(t, 5*time.Second, "both messages received (not acked)", func() bool { return in.count() == 2 })
	svc.cut()
	testenv.WaitFor(t, 5*time.Second, "the broker to see the drop", func() bool {
		cl, ok := e.broker.srv.Clients.Get("carehub-ingest")
		return ok && cl.Closed()
	})

	var in2 inbox
	svc2 := persistent(t, e, &in2, true)
	testenv.WaitFor(t, 5*time.Second, "redelivery of the unacked messages", func() bool { return in2.count() == 2 })
	for _, m := range in2.msgs {
		if !m.Duplicate() {
			t.Errorf("redelivered %q without the DUP flag", m.Payload())
		}
	}
	// Acked now: a further reconnect gets nothing again.
	svc2.Disconnect(100)
	var in3 inbox
	persistent(t, e, &in3, true)
	publishN(t, e, id, pw, "marker", 1)
	testenv.WaitFor(t, 5*time.Second, "the marker", func() bool { return in3.count() >= 1 })
	if p := in3.payloads(); len(p) != 1 || p[0] != "marker-0" {
		t.Fatalf("after ack and reconnect got %q, want only the marker", p)
	}
}

// BenchmarkQoS1ThroughPersistentShare measures device → broker → ingest
// session at QoS 1 through the shared subscription, with the bbolt store.
func BenchmarkQoS1ThroughPersistentShare(b *testing.B) {
	for _, sync := range []bool{false, true} {
		b.Run(fmt.Sprintf("sync=%v", sync), func(b *testing.B) {
			e := newEnv(b)
			if sync {
				_ = e.broker.Close()
				e.options.SyncWrites = true
				e.start(b)
			}
			id, pw := e.device(b, "env")
			var got atomic.Int64
			svc := mustDial(b, e.broker.Addr(), "carehub-ingest", svcUser, svcPass, func(o *paho.ClientOptions) {
				o.SetCleanSession(false).SetOrderMatters(false)
			})
			wait(b, svc.Subscribe(shared, 1, func(paho.Client, paho.Message) { got.Add(1) }))
			dev := mustDial(b, e.broker.Addr(), id, id, pw, nil)
			topic := model.DeviceTopic(id, model.TopicTelemetry)
			payload := `{"values":{"heart_rate":72,"spo2":97}}`
			b.ResetTimer()
			toks := make([]paho.Token, 0, 256)
			for i := 0; i < b.N; i++ {
				toks = append(toks, dev.Publish(topic, 1, false, payload))
				if len(toks) == cap(toks) {
					for _, tk := range toks {
						wait(b, tk)
					}
					toks = toks[:0]
				}
			}
			for _, tk := range toks {
				wait(b, tk)
			}
			testenv.WaitFor(b, 60*time.Second, "all delivered", func() bool { return got.Load() >= int64(b.N) })
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
		})
	}
}

// TestIntakeBeforePuback: with an Intake, a device's message is handed to
// it before the device gets its PUBACK, is not queued for subscribers, and
// when Intake fails the device gets no PUBACK. The store keeps no record
// of the device's acknowledged messages.
func TestIntakeBeforePuback(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	var taken []string
	fail := false
	e.options.Intake = func(topic string, payload []byte, _ string) func() error {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return func() error { return errors.New("stopping") }
		}
		taken = append(taken, topic+" "+string(payload))
		return func() error { return nil }
	}
	_ = e.broker.Close()
	e.start(t)
	id, pw := e.device(t, "bed")

	var in inbox
	svc := persistent(t, e, &in, true)
	wait(t, svc.Subscribe(shared, 1, nil))
	publishN(t, e, id, pw, "taken", 3)
	mu.Lock()
	got := fmt.Sprint(taken)
	mu.Unlock()
	topic := model.DeviceTopic(id, model.TopicTelemetry)
	if want := fmt.Sprintf("[%s taken-0 %s taken-1 %s taken-2]", topic, topic, topic); got != want {
		t.Fatalf("intake got %s, want %s", got, want)
	}

	mu.Lock()
	fail = true
	mu.Unlock()
	dev := mustDial(t, e.broker.Addr(), id, id, pw, nil)
	if tok := dev.Publish(topic, 1, false, "refused"); tok.WaitTimeout(500 * time.Millisecond) {
		t.Fatalf("PUBACK for a message Intake did not take (error %v)", tok.Error())
	}
	dev.Disconnect(100)
	if n := in.count(); n != 0 {
		t.Fatalf("the subscriber got %d messages that Intake took", n)
	}

	if err := e.broker.Close(); err != nil {
		t.Fatal(err)
	}
	st := newBoltStore()
	if err := st.Init(&bolt.Options{Path: filepath.Join(e.dir, "mqtt.db")}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Stop() }()
	msgs, err := st.StoredInflightMessages()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if strings.HasPrefix(m.ID, "IFM_"+id+":") {
			t.Errorf("inflight record %s kept for an acknowledged device message", m.ID)
		}
	}
}

// TestIntakeConfirmsOffTheConnection: a connection's messages are taken as
// they arrive, while earlier ones still wait to be stored, and each is
// acknowledged only once its confirm returns; a connection has at most
// maxUnconfirmed waiting. Were the hook to wait for each message, the
// device would have one message taken at a time.
func TestIntakeConfirmsOffTheConnection(t *testing.T) {
	e := newEnv(t)
	var taken atomic.Int64
	release := make(chan struct{})
	e.options.Intake = func(string, []byte, string) func() error {
		taken.Add(1)
		return func() error { <-release; return nil }
	}
	_ = e.broker.Close()
	e.start(t)
	id, pw := e.device(t, "bed")
	dev := mustDial(t, e.broker.Addr(), id, id, pw, nil)
	defer dev.Disconnect(100)

	const n = maxUnconfirmed + 16
	topic := model.DeviceTopic(id, model.TopicTelemetry)
	toks := make([]paho.Token, n)
	for i := range toks {
		toks[i] = dev.Publish(topic, 1, false, fmt.Sprintf("m-%d", i))
	}
	// The window's messages and the one whose hook waits for a slot.
	testenv.WaitFor(t, 10*time.Second, "a window of messages taken", func() bool { return taken.Load() == maxUnconfirmed+1 })
	for i, tok := range toks {
		if tok.WaitTimeout(0) {
			t.Fatalf("message %d acknowledged before it was stored", i)
		}
	}
	if got := taken.Load(); got != maxUnconfirmed+1 {
		t.Fatalf("%d messages taken with %d unconfirmed, want %d", got, maxUnconfirmed, maxUnconfirmed+1)
	}
	close(release)
	for _, tok := range toks {
		wait(t, tok)
	}
	if got := taken.Load(); got != n {
		t.Fatalf("%d messages taken, want %d", got, n)
	}
}
