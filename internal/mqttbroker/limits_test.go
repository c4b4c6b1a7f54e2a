package mqttbroker

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/testenv"
)

func (d *denials) count(s string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, g := range d.got {
		if g == s {
			n++
		}
	}
	return n
}

// refusals records OnRefused calls by reason.
type refusals struct {
	mu sync.Mutex
	n  map[string]int
}

func (r *refusals) add(reason string) {
	r.mu.Lock()
	if r.n == nil {
		r.n = map[string]int{}
	}
	r.n[reason]++
	r.mu.Unlock()
}

func (r *refusals) count(reason string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[reason]
}

// limitedEnv is newEnv with the limits the tests set, and refusals recorded.
func limitedEnv(t *testing.T, tweak func(*Options)) (*env, *refusals) {
	t.Helper()
	e := newEnv(t)
	_ = e.broker.Close()
	r := &refusals{}
	e.options.OnRefused = r.add
	e.options.DataDir = ""
	if tweak != nil {
		tweak(&e.options)
	}
	e.start(t)
	return e, r
}

// rawDial opens a TCP connection to addr from the loopback address local.
func rawDial(t *testing.T, local, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// closedWithin reports whether the broker closes c (EOF or reset) within d.
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.ReadAll(c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// dialFrom connects a device from the loopback address local.
func dialFrom(t *testing.T, local, addr, id, pw string) error {
	t.Helper()
	_, err := dial(t, addr, id, id, pw, func(o *paho.ClientOptions) {
		o.SetCustomOpenConnectionFn(func(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
			return d.Dial("tcp", u.Host)
		})
	})
	return err
}

// TestHalfOpenClosedAtDeadline: a connection that never sends CONNECT is
// closed once the connect deadline passes, and counted. Before, it was
// held forever.
func TestHalfOpenClosedAtDeadline(t *testing.T) {
	e, r := limitedEnv(t, func(o *Options) { o.ConnectTimeout = 500 * time.Millisecond })
	c := rawDial(t, "127.0.0.1", e.broker.Addr())
	start := time.Now()
	if !closedWithin(c, 5*time.Second) {
		t.Fatal("a connection that sent nothing was still open after 5 s")
	}
	if took := time.Since(start); took < 400*time.Millisecond || took > 3*time.Second {
		t.Errorf("closed after %s, want about the 500ms deadline", took)
	}
	testenv.WaitFor(t, 5*time.Second, "connect_timeout counted", func() bool { return r.count(RefusedConnectTimeout) == 1 })
	// A device still connects, and its connection outlives the deadline.
	id, pw := e.device(t, "wearable")
	c2 := mustDial(t, e.broker.Addr(), id, id, pw, func(o *paho.ClientOptions) { o.SetKeepAlive(30 * time.Second) })
	time.Sleep(time.Second) // longer than the connect deadline: the device must stay connected
	if !c2.IsConnectionOpen() {
		t.Fatal("a logged-in device was cut at the connect deadline")
	}
}

// TestOversizedDeclaredLength: CONNECTs declaring a remaining length far
// above CARE_MAX_PAYLOAD (1 MiB, which the old 2 MiB packet limit let
// through and mochi allocated at once, then waited for forever) are refused
// at their fixed header: closed at once, counted, and the broker does not
// allocate what they declared.
func TestOversizedDeclaredLength(t *testing.T) {
	e, r := limitedEnv(t, nil)
	const conns = 40
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var cs []net.Conn
	for range conns {
		c := rawDial(t, "127.0.0.1", e.broker.Addr())
		// CONNECT, remaining length 1 MiB (variable-length 0x80 0x80 0x40).
		if _, err := c.Write([]byte{0x10, 0x80, 0x80, 0x40}); err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	for i, c := range cs {
		if !closedWithin(c, 3*time.Second) {
			t.Fatalf("connection %d declaring 1 MiB is still open", i)
		}
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Errorf("the broker allocated %d MiB for %d connections declaring 1 MiB each", grew>>20, conns)
	}
	testenv.WaitFor(t, 5*time.Second, "packet_too_large counted for each", func() bool { return r.count(RefusedPacketTooLarge) == conns })

	// A logged-in device sending a packet over the limit is cut off, and
	// the refusal is reported under its id.
	id0, pw0 := e.device(t, "wearable")
	c0 := mustDial(t, e.broker.Addr(), id0, id0, pw0, nil)
	c0.Publish("care/v1/dev/"+id0+"/telemetry", 1, false, make([]byte, 1<<20)).WaitTimeout(5 * time.Second)
	testenv.WaitFor(t, 10*time.Second, "the device cut off and reported", func() bool {
		return e.denied.has(id0 + "  " + model.ReasonTooLarge)
	})
	testenv.WaitFor(t, 5*time.Second, "packet_too_large counted for the device too", func() bool { return r.count(RefusedPacketTooLarge) == conns+1 })

	// The limit follows MaxPayload: an 18 KiB payload is refused (reported,
	// not taken) with MaxPayload 16 KiB.
	e2, _ := limitedEnv(t, func(o *Options) { o.MaxPayload = 16 << 10 })
	id, pw := e2.device(t, "wearable")
	c := mustDial(t, e2.broker.Addr(), id, id, pw, nil)
	wait(t, c.Publish("care/v1/dev/"+id+"/telemetry", 1, false, make([]byte, 18<<10)))
	testenv.WaitFor(t, 5*time.Second, "payload_too_large for 18 KiB over a 16 KiB limit", func() bool {
		return e2.denied.has(id + " care/v1/dev/" + id + "/telemetry " + model.ReasonTooLarge)
	})
}

// TestConnectionCaps: beyond MaxConnectionsPerAddr, a source address's
// further connections are closed at once (counted), while other addresses
// still connect; a freed slot is usable again. MaxConnections caps the
// total the same way.
func TestConnectionCaps(t *testing.T) {
	e, r := limitedEnv(t, func(o *Options) { o.MaxConnectionsPerAddr = 3; o.MaxConnections = 5 })
	id, pw := e.device(t, "wearable")
	id2, pw2 := e.device(t, "wearable")
	var held []net.Conn
	for range 3 {
		held = append(held, rawDial(t, "127.0.0.1", e.broker.Addr()))
	}
	extra := rawDial(t, "127.0.0.1", e.broker.Addr())
	if !closedWithin(extra, 3*time.Second) {
		t.Fatal("a 4th connection from one address was kept")
	}
	testenv.WaitFor(t, 5*time.Second, "too_many_from_address counted", func() bool { return r.count(RefusedTooManyFromAddress) == 1 })
	if err := dialFrom(t, "127.0.0.2", e.broker.Addr(), id, pw); err != nil {
		t.Fatalf("a device from another address: %v", err)
	}
	_ = held[0].Close()
	testenv.WaitFor(t, 5*time.Second, "a freed slot usable again", func() bool {
		return dialFrom(t, "127.0.0.1", e.broker.Addr(), id2, pw2) == nil
	})
	// 3 from .1 (two raw, one device) + 1 device from .2 = 4; one more
	// from .3 fills the total of 5, the next is refused.
	rawDial(t, "127.0.0.3", e.broker.Addr())
	over := rawDial(t, "127.0.0.4", e.broker.Addr())
	if !closedWithin(over, 3*time.Second) {
		t.Fatal("a connection over the total cap was kept")
	}
	testenv.WaitFor(t, 5*time.Second, "too_many_connections counted", func() bool { return r.count(RefusedTooManyConnections) >= 1 })
}

// TestWrongPasswordFloodDoesNotStallFleet: after a restart (a registry
// with no verified passwords cached, so every login runs bcrypt), a flood
// of wrong passwords for one device id must not delay other devices'
// logins: the flooded id is throttled at its address and stops costing
// password checks. Before, every wrong attempt queued for bcrypt ahead of
// the fleet. The flooded device still logs in from another address.
func TestWrongPasswordFloodDoesNotStallFleet(t *testing.T) {
	e, _ := limitedEnv(t, nil)
	victim, victimPW := e.device(t, "wearable")
	fleet := map[string]string{}
	for range 2 {
		id, pw := e.device(t, "wearable")
		fleet[id] = pw
	}
	// The restart: a fresh registry on the same store, nothing cached.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fresh, err := devices.Open(ctx, e.js, zerolog.Nop(), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fresh.Close)
	_ = e.broker.Close()
	e.options.Authenticator = fresh
	e.start(t)

	wrong := connectPacket(victim, "wrong-password")
	stop := make(chan struct{})
	var attempts atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				attempts.Add(1)
				rawLogin(e.broker.Addr(), wrong)
			}
		}()
	}
	// The flood's first attempts reach bcrypt before the throttle holds;
	// from then on it costs none.
	testenv.WaitFor(t, 60*time.Second, "the flood throttled", func() bool {
		return e.denied.count(victim+"  "+model.ReasonLoginThrottled) > 100
	})
	// The fleet reconnects at once, as after a restart. Each login needs
	// one bcrypt (about 2 s under the race detector on this machine, one
	// at a time): during the flood a login waits for the other devices'
	// checks, not for the flood's.
	start := time.Now()
	errs := make(chan error, len(fleet))
	for id, pw := range fleet {
		go func() { errs <- patientLogin(e.broker.Addr(), id, pw) }()
	}
	for range fleet {
		if err := <-errs; err != nil {
			t.Errorf("a device during the flood: %v", err)
		}
	}
	took := time.Since(start)
	sent := attempts.Load()
	close(stop)
	wg.Wait()
	checked := e.denied.count(victim + "  " + model.ReasonAuthFailed)
	t.Logf("%d wrong attempts, %d password checks, the fleet logged in in %s", sent, checked, took)
	if checked > maxIDFailures {
		t.Errorf("%d wrong passwords for one id from one address were checked, want at most %d", checked, maxIDFailures)
	}
	if took > 30*time.Second {
		t.Errorf("%d devices took %s to log in during a wrong-password flood for another id", len(fleet), took)
	}
	if e.denied.count(victim+"  "+model.ReasonLoginThrottled) == 0 {
		t.Error("the flooded id was never throttled")
	}
	if err := patientLogin(e.broker.Addr(), victim, victimPW, "127.0.0.2"); err != nil {
		t.Fatalf("the flooded device from another address: %v", err)
	}
}

// connectPacket is an MQTT 3.1.1 CONNECT of id as id with password pw,
// built by hand so that a flood costs the test little.
func connectPacket(id, pw string) []byte {
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	body := append(str("MQTT"), 4, 0xC2, 0, 60) // level 4; username, password, clean session; keepalive 60 s
	body = append(body, str(id)...)
	body = append(body, str(id)...)
	body = append(body, str(pw)...)
	return append([]byte{0x10, byte(len(body))}, body...) // len < 128: one length byte
}

// rawLogin sends pk on a new connection and reads the CONNACK.
func rawLogin(addr string, pk []byte) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(pk); err == nil {
		_, _ = io.ReadFull(c, make([]byte, 4))
	}
}

// patientLogin logs in as a device (from 127.0.0.1, or from[0]) with a
// connect timeout long enough for bcrypt under the race detector, and
// disconnects.
func patientLogin(addr, id, pw string, from ...string) error {
	local := "127.0.0.1"
	if len(from) > 0 {
		local = from[0]
	}
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetUsername(id).SetPassword(pw).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(30 * time.Second).
		SetCustomOpenConnectionFn(func(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
			return d.Dial("tcp", u.Host)
		}))
	tok := c.Connect()
	if !tok.WaitTimeout(40 * time.Second) {
		return errors.New("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return err
	}
	c.Disconnect(0)
	return nil
}
