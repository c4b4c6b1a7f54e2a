package dynsec

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/internal/testenv"
)

// carehub's ingest login, which EnsureService creates: not the control
// login (testenv.DynsecAdmin).
const svcUser, svcPassword = "carehub-svc", "carehub-svc-password"

func dial(t *testing.T, m *testenv.Mosquitto) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := Dial(ctx, Options{BrokerURL: m.URL, Username: testenv.DynsecAdmin, Password: testenv.DynsecAdminPassword,
		ServiceUser: svcUser, ServicePassword: svcPassword,
		ClientID: testenv.ID("dynsec"), ShareGroup: "carehub", Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// connect logs in as user; the error is the broker's refusal, if any.
func connect(t *testing.T, m *testenv.Mosquitto, user, password string) (mqtt.Client, error) {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(m.URL).SetClientID(user).SetUsername(user).SetPassword(password).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second))
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatalf("connect %s: timed out", user)
	}
	if tok.Error() == nil {
		t.Cleanup(func() { c.Disconnect(50) })
	}
	return c, tok.Error()
}

// TestDeviceAccounts drives a real Mosquitto's dynamic-security plugin:
// a device created with its password logs in and publishes under its own
// prefix only; a wrong password, a disabled account and a deleted one are
// refused; after a password change only the new one works; carehub's
// service user reads every device's topics through its shared subscription.
func TestDeviceAccounts(t *testing.T) {
	m := testenv.StartDynsecMosquitto(t)
	cl := dial(t, m)
	ctx := ctxT(t)
	if err := cl.EnsureService(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cl.EnsureService(ctx); err != nil {
		t.Fatalf("EnsureService a second time: %v", err)
	}

	// carehub's ingest, as the admin user that now holds the service role.
	var mu sync.Mutex
	var got []string
	svc, err := connect(t, m, svcUser, svcPassword)
	if err != nil {
		t.Fatal(err)
	}
	if tok := svc.Subscribe("$share/carehub/care/v1/dev/+/telemetry", 1, func(_ mqtt.Client, msg mqtt.Message) {
		mu.Lock()
		got = append(got, msg.Topic()+" "+string(msg.Payload()))
		mu.Unlock()
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("shared subscription: %v", tok.Error())
	}

	const pw = "device-password-1"
	if err := cl.CreateDevice(ctx, "dev-1", pw); err != nil {
		t.Fatal(err)
	}
	if err := cl.CreateDevice(ctx, "dev-1", pw); err != nil {
		t.Fatalf("creating an existing account again: %v", err)
	}
	if _, err := connect(t, m, "dev-1", "wrong"); err == nil {
		t.Fatal("a wrong password was accepted")
	}
	dev, err := connect(t, m, "dev-1", pw)
	if err != nil {
		t.Fatalf("the issued password was refused: %v", err)
	}
	for _, topic := range []string{"care/v1/dev/dev-2/telemetry", "care/v1/dev/dev-1/telemetry"} {
		if tok := dev.Publish(topic, 1, false, "from dev-1"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tok.Error())
		}
	}
	testenv.WaitFor(t, 10*time.Second, "dev-1's own telemetry at carehub", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) > 0
	})
	mu.Lock()
	if len(got) != 1 || got[0] != "care/v1/dev/dev-1/telemetry from dev-1" {
		t.Fatalf("carehub received %q, want only dev-1's own topic (the ACL drops the other)", got)
	}
	mu.Unlock()

	if err := cl.SetDeviceEnabled(ctx, "dev-1", false); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the disabled device disconnected", func() bool { return !dev.IsConnectionOpen() })
	if _, err := connect(t, m, "dev-1", pw); err == nil {
		t.Fatal("a disabled device logged in")
	}
	if err := cl.SetDeviceEnabled(ctx, "dev-1", true); err != nil {
		t.Fatal(err)
	}
	if err := cl.SetDevicePassword(ctx, "dev-1", "device-password-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := connect(t, m, "dev-1", pw); err == nil {
		t.Fatal("the old password still works after a change")
	}
	if _, err := connect(t, m, "dev-1", "device-password-2"); err != nil {
		t.Fatalf("the new password: %v", err)
	}
	// A device registered before mirroring gets its account at rotation.
	if err := cl.SetDevicePassword(ctx, "dev-3", "device-password-3"); err != nil {
		t.Fatal(err)
	}
	if _, err := connect(t, m, "dev-3", "device-password-3"); err != nil {
		t.Fatalf("an account made by a password change: %v", err)
	}
	if err := cl.DeleteDevice(ctx, "dev-3"); err != nil {
		t.Fatal(err)
	}
	if err := cl.DeleteDevice(ctx, "dev-3"); err != nil {
		t.Fatalf("deleting a deleted account: %v", err)
	}
	if _, err := connect(t, m, "dev-3", "device-password-3"); err == nil {
		t.Fatal("a deleted device logged in")
	}
	// Disabling a device without an account is not an error: there is
	// nothing to let in.
	if err := cl.SetDeviceEnabled(ctx, "never-made", false); err != nil {
		t.Fatal(err)
	}
}

// TestServiceRoleFollowsShareGroup: carehub started again with another
// CARE_MQTT_SHARE_GROUP mends the service role it made before: the new
// group's ACLs in, the old group's and any stranger's out.
func TestServiceRoleFollowsShareGroup(t *testing.T) {
	m := testenv.StartDynsecMosquitto(t)
	ctx := ctxT(t)
	if err := dial(t, m).EnsureService(ctx); err != nil {
		t.Fatal(err)
	}
	// A stale ACL an operator added by hand goes too.
	cl, err := Dial(ctx, Options{BrokerURL: m.URL, Username: testenv.DynsecAdmin, Password: testenv.DynsecAdminPassword,
		ServiceUser: svcUser, ServicePassword: svcPassword,
		ClientID: testenv.ID("dynsec"), ShareGroup: "night-shift", Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	extra := command{"command": "addRoleACL", "rolename": ServiceRole, "acltype": "publishClientSend", "topic": "stale/#", "allow": true}
	// The change disconnects this connection (it holds the role), so the
	// answer may be lost: add it as EnsureService does, then look.
	if err := cl.until(ctx, "adding a stale ACL", func() ([]command, bool, error) {
		return []command{extra}, hasStale(t, cl), nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := cl.EnsureService(ctx); err != nil {
		t.Fatal(err)
	}

	svc, err := connect(t, m, svcUser, svcPassword)
	if err != nil {
		t.Fatal(err)
	}
	granted := func(filter string) bool {
		tok := svc.Subscribe(filter, 1, func(mqtt.Client, mqtt.Message) {})
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe %s: %v", filter, tok.Error())
		}
		return tok.(*mqtt.SubscribeToken).Result()[filter] <= 1 // 0x80 = refused
	}
	if !granted("$share/night-shift/care/v1/dev/+/telemetry") {
		t.Error("the new share group is refused")
	}
	// Mosquitto 2.0.11 acknowledges a shared subscription whatever the
	// ACLs say ($share/carehub/... too), so the old group's absence is
	// read from the role.
	all := roleACLs(t, cl)
	if len(all) != 6 {
		t.Errorf("the role holds %d ACLs, want the service's 6: %v", len(all), all)
	}
	for _, a := range all {
		if topic := a["topic"].(string); strings.HasPrefix(topic, "$share/carehub/") || topic == "stale/#" {
			t.Errorf("the role still holds %s %s", a["acltype"], topic)
		}
	}
	if !slices.ContainsFunc(all, func(c command) bool { return c["topic"] == "$share/night-shift/care/v1/dev/+/status" }) {
		t.Errorf("no ACL for the new group: %v", all)
	}
}

// roleACLs lists the service role's ACLs, as the commands removing them.
func roleACLs(t *testing.T, cl *Client) []command {
	t.Helper()
	all, err := cl.roleFixes(ctxT(t), ServiceRole, nil)
	if err != nil {
		t.Fatal(err)
	}
	return all
}

func hasStale(t *testing.T, cl *Client) bool {
	return slices.ContainsFunc(roleACLs(t, cl), func(c command) bool { return c["topic"] == "stale/#" })
}

// TestDeviceCannotReadOthers: a device account reads no other device's
// telemetry, neither by a plain subscription (refused) nor through a shared
// one (Mosquitto 2.0.11 acknowledges it whatever the ACLs say, but delivers
// nothing through it); the reading reaches carehub's own subscription
// meanwhile, so it was sent. Giving devices carehub's rights fails this.
func TestDeviceCannotReadOthers(t *testing.T) {
	m := testenv.StartDynsecMosquitto(t)
	cl := dial(t, m)
	ctx := ctxT(t)
	if err := cl.EnsureService(ctx); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"spy", "dev-2"} {
		if err := cl.CreateDevice(ctx, d, "password-of-"+d); err != nil {
			t.Fatal(err)
		}
	}
	var spied, svcGot atomic.Int32
	subscribe := func(c mqtt.Client, filter string, n *atomic.Int32) byte {
		tok := c.Subscribe(filter, 1, func(mqtt.Client, mqtt.Message) { n.Add(1) })
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe %s: %v", filter, tok.Error())
		}
		return tok.(*mqtt.SubscribeToken).Result()[filter]
	}
	svc, err := connect(t, m, svcUser, svcPassword)
	if err != nil {
		t.Fatal(err)
	}
	subscribe(svc, "$share/carehub/care/v1/dev/+/telemetry", &svcGot)
	spy, err := connect(t, m, "spy", "password-of-spy")
	if err != nil {
		t.Fatal(err)
	}
	if q := subscribe(spy, "care/v1/dev/+/telemetry", &spied); q != 0x80 {
		t.Errorf("a device subscribed to every device's telemetry (granted QoS %d)", q)
	}
	subscribe(spy, "$share/spies/care/v1/dev/+/telemetry", &spied)
	dev, err := connect(t, m, "dev-2", "password-of-dev-2")
	if err != nil {
		t.Fatal(err)
	}
	if tok := dev.Publish("care/v1/dev/dev-2/telemetry", 1, false, `{"heart_rate":70}`); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	testenv.WaitFor(t, 10*time.Second, "dev-2's reading at carehub", func() bool { return svcGot.Load() == 1 })
	// Delivery to both groups happens in one pass over the subscribers;
	// a round trip on the spy's connection makes sure its copy, if any, has
	// arrived before counting.
	if tok := spy.Unsubscribe("$share/spies/care/v1/dev/+/telemetry"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("unsubscribe: %v", tok.Error())
	}
	if n := spied.Load(); n != 0 {
		t.Fatalf("a device read %d of another device's readings", n)
	}
}

// TestDialWithoutPlugin: a broker without the plugin, or a user without
// its admin role, is a clear error at start, not a hang at the first
// registration.
func TestDialWithoutPlugin(t *testing.T) {
	m := testenv.StartMosquitto(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := Dial(ctx, Options{BrokerURL: m.URL, Username: "carehub", ServiceUser: svcUser, ClientID: testenv.ID("dynsec"), Timeout: 2 * time.Second, Log: zerolog.Nop()})
	if err == nil {
		t.Fatal("Dial succeeded against a broker without the dynamic-security plugin")
	}
}

type message struct {
	mqtt.Message
	payload []byte
}

func (m message) Payload() []byte { return m.payload }

// Answers read from the shared answer topic: another client's, or
// malformed, reach no waiting request and crash nothing.
func TestForeignAnswers(t *testing.T) {
	cl := &Client{nonce: "abc", waiting: map[string]chan []answer{}}
	mine := make(chan []answer, 1)
	cl.waiting["abc-1"] = mine
	for _, p := range []string{
		`not json`, `{"responses":[]}`, `{"responses":[{"command":"x"}]}`,
		`{"responses":[{"command":"x","correlationData":"abc-12.0"}]}`,
		`{"responses":[{"command":"x","correlationData":"other-1.0"}]}`,
		`{"responses":[{"command":"x","correlationData":"."}]}`,
	} {
		cl.onAnswer(nil, message{payload: []byte(p)})
	}
	select {
	case a := <-mine:
		t.Fatalf("a foreign answer reached the request: %+v", a)
	default:
	}
	cl.onAnswer(nil, message{payload: []byte(`{"responses":[{"command":"getClient","correlationData":"abc-1.0"}]}`)})
	select {
	case a := <-mine:
		if len(a) != 1 || a[0].Command != "getClient" {
			t.Fatalf("answer %+v", a)
		}
	default:
		t.Fatal("the request's own answer did not arrive")
	}
}

// TestNeverAdoptsForeignAccounts: a broker account carehub did not create
// (an operator's user, the control user itself) or a role of a device's
// name it did not create is never taken over: registering a device of that
// name fails with devices.ErrAccountTaken and the account keeps its
// password; rotation, disable and erasure leave it alone too. Accounts
// carehub made (marked) are still brought to the wanted state.
func TestNeverAdoptsForeignAccounts(t *testing.T) {
	m := testenv.StartDynsecMosquitto(t)
	cl := dial(t, m)
	ctx := ctxT(t)
	if err := cl.EnsureService(ctx); err != nil {
		t.Fatal(err)
	}
	// An operator's own user and a role that only looks like carehub's.
	setup := []command{
		{"command": "createClient", "username": "operator", "password": "operator-password"},
		{"command": "createRole", "rolename": deviceRolePrefix + "sneaky", "acls": []map[string]any{acl("publishClientSend", "#")}},
	}
	errs, err := cl.do(ctx, setup...)
	if err != nil || check(setup, errs) != nil {
		t.Fatalf("setup: %v %v", err, errs)
	}

	for _, id := range []string{"operator", testenv.DynsecAdmin, svcUser, "sneaky"} {
		if err := cl.CreateDevice(ctx, id, "taken-over"); !errors.Is(err, devices.ErrAccountTaken) {
			t.Errorf("CreateDevice(%q) = %v, want ErrAccountTaken", id, err)
		}
		if _, err := connect(t, m, id, "taken-over"); err == nil {
			t.Errorf("%q logs in with the password a registration set", id)
		}
	}
	if err := cl.SetDevicePassword(ctx, "operator", "taken-over"); !errors.Is(err, devices.ErrAccountTaken) {
		t.Errorf("SetDevicePassword(operator) = %v, want ErrAccountTaken", err)
	}
	if err := cl.SetDeviceEnabled(ctx, "operator", false); !errors.Is(err, devices.ErrAccountTaken) {
		t.Errorf("SetDeviceEnabled(operator) = %v, want ErrAccountTaken", err)
	}
	if err := cl.DeleteDevice(ctx, "operator"); err != nil {
		t.Errorf("DeleteDevice(operator): %v", err)
	}
	for user, pw := range map[string]string{"operator": "operator-password", testenv.DynsecAdmin: testenv.DynsecAdminPassword, svcUser: svcPassword} {
		if _, err := connect(t, m, user, pw); err != nil {
			t.Errorf("%q no longer logs in with its own password: %v", user, err)
		}
	}
	if _, ok, err := cl.getClient(ctx, "sneaky"); err != nil || ok {
		t.Errorf("an account was made for a device whose role is foreign: ok=%v err=%v", ok, err)
	}
	// carehub's own accounts are still repaired on a second registration.
	if err := cl.CreateDevice(ctx, "dev-ok", "pw-1"); err != nil {
		t.Fatal(err)
	}
	if err := cl.CreateDevice(ctx, "dev-ok", "pw-2"); err != nil {
		t.Fatalf("registering carehub's own account again: %v", err)
	}
	if _, err := connect(t, m, "dev-ok", "pw-2"); err != nil {
		t.Fatalf("the repaired account: %v", err)
	}
}

// TestBrokers (issue 15 item 2): a device's account, password and disable
// reach every broker; a registration one broker refuses is undone at the
// other, and the error names the broker that refused it.
func TestBrokers(t *testing.T) {
	ma, mb := testenv.StartDynsecMosquitto(t), testenv.StartDynsecMosquitto(t)
	bs := Brokers{dial(t, ma), dial(t, mb)}
	ctx := ctxT(t)
	for _, cl := range bs {
		if err := cl.EnsureService(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := bs.CreateDevice(ctx, "dev-1", "pw-1"); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*testenv.Mosquitto{ma, mb} {
		if _, err := connect(t, m, "dev-1", "pw-1"); err != nil {
			t.Fatalf("dev-1 on %s: %v", m.URL, err)
		}
	}
	if err := bs.SetDevicePassword(ctx, "dev-1", "pw-2"); err != nil {
		t.Fatal(err)
	}
	if err := bs.SetDeviceEnabled(ctx, "dev-1", false); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*testenv.Mosquitto{ma, mb} {
		if _, err := connect(t, m, "dev-1", "pw-2"); err == nil {
			t.Fatalf("disabled dev-1 logged in to %s", m.URL)
		}
	}
	if err := bs.SetDeviceEnabled(ctx, "dev-1", true); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*testenv.Mosquitto{ma, mb} {
		if _, err := connect(t, m, "dev-1", "pw-2"); err != nil {
			t.Fatalf("dev-1 with its new password on %s: %v", m.URL, err)
		}
	}

	// Broker B has an operator's account of the id: the registration
	// fails there, and A's account is deleted again.
	setup := []command{{"command": "createClient", "username": "dev-2", "password": "operator-password"}}
	if errs, err := bs[1].do(ctx, setup...); err != nil || check(setup, errs) != nil {
		t.Fatalf("setup: %v %v", err, errs)
	}
	err := bs.CreateDevice(ctx, "dev-2", "pw-3")
	if !errors.Is(err, devices.ErrAccountTaken) || !strings.Contains(err.Error(), mb.URL) {
		t.Fatalf("CreateDevice(dev-2) = %v, want ErrAccountTaken naming %s", err, mb.URL)
	}
	if _, ok, err := bs[0].getClient(ctx, "dev-2"); err != nil || ok {
		t.Fatalf("dev-2 left at broker A: %v %v", ok, err)
	}

	if err := bs.DeleteDevice(ctx, "dev-1"); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*testenv.Mosquitto{ma, mb} {
		if _, err := connect(t, m, "dev-1", "pw-2"); err == nil {
			t.Fatalf("deleted dev-1 logged in to %s", m.URL)
		}
	}
}
