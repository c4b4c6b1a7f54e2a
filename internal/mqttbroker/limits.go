package mqttbroker

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/ratelimit"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Connection refusals passed to Options.OnRefused: the broker refused or
// closed a connection before (or instead of) a device login, so there is
// no device id to report them under.
const (
	RefusedTooManyConnections = "too_many_connections"  // the broker holds Options.MaxConnections
	RefusedTooManyFromAddress = "too_many_from_address" // the address holds Options.MaxConnectionsPerAddr
	RefusedConnectTimeout     = "connect_timeout"       // no CONNECT (or TLS handshake) within Options.ConnectTimeout
	RefusedPacketTooLarge     = "packet_too_large"      // a packet declared larger than the maximum packet size
	RefusedBadLogin           = "login_not_a_device"    // username is not a device id equal to the client id
	RefusedServiceLogin       = "service_login_refused" // carehub's own username with a wrong password
	RefusedTLSHandshake       = "tls_handshake_failed"  // a TLS listener's handshake failed
)

// DefaultConnectTimeout is how long a new connection may take to send its
// CONNECT (including a TLS handshake): a connection that sends nothing
// holds a goroutine and a read buffer, and hundreds of them were enough to
// take the process down. Devices send CONNECT at once; 10 s covers a slow
// link.
const DefaultConnectTimeout = 10 * time.Second

// packetOverhead is what an MQTT packet adds around its payload: fixed
// header, topic, packet id and MQTT 5 properties (content type, user
// properties). 4 KiB leaves room for a generous topic and properties.
const packetOverhead = 4 << 10

// guardedListener counts connections, refuses those beyond the total and
// per-address caps at accept, before mochi allocates anything for them,
// and gives each a deadline for its CONNECT. It is mochi's listener
// interface (listeners.Listener) around a net.Listener, so that it also
// sees why mochi closed each connection.
type guardedListener struct {
	id     string
	ln     net.Listener // plain TCP; tlsConf wraps each accepted connection
	tls    *tls.Config
	max    int
	perMax int
	wait   time.Duration // for the CONNECT
	refuse func(reason string)
	log    *slog.Logger
	end    atomic.Bool

	mu      sync.Mutex
	total   int
	perAddr map[string]int
	conns   map[*guardedConn]struct{} // open, for Close
	runs    sync.WaitGroup            // connections handed to mochi
}

var _ listeners.Listener = (*guardedListener)(nil)

func newGuardedListener(id string, ln net.Listener, tlsConf *tls.Config, maxConns, perAddr int, wait time.Duration, refuse func(string)) *guardedListener {
	return &guardedListener{id: id, ln: ln, tls: tlsConf, max: maxConns, perMax: perAddr, wait: wait, refuse: refuse, perAddr: map[string]int{}, conns: map[*guardedConn]struct{}{}}
}

func (l *guardedListener) ID() string       { return l.id }
func (l *guardedListener) Address() string  { return l.ln.Addr().String() }
func (l *guardedListener) Protocol() string { return l.ln.Addr().Network() }

func (l *guardedListener) Init(log *slog.Logger) error {
	l.log = log
	return nil
}

// Serve accepts connections until Close; each admitted connection runs
// mochi's establish in its own goroutine.
func (l *guardedListener) Serve(establish listeners.EstablishFn) {
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			if l.end.Load() {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		gc, reason := l.admit(conn)
		switch {
		case reason != "":
			_ = conn.Close()
			l.refuse(reason)
		case gc == nil: // closing
			_ = conn.Close()
			return
		default:
			go l.run(gc, establish)
		}
	}
}

// admit counts conn in, or returns why it may not come in.
func (l *guardedListener) admit(conn net.Conn) (*guardedConn, string) {
	host := remoteHost(conn.RemoteAddr())
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.end.Load() {
		return nil, "" // closing: Serve returns at its next Accept
	}
	if l.max > 0 && l.total >= l.max {
		return nil, RefusedTooManyConnections
	}
	if l.perMax > 0 && l.perAddr[host] >= l.perMax {
		return nil, RefusedTooManyFromAddress
	}
	l.total++
	l.perAddr[host]++
	// The deadline covers the TLS handshake and the CONNECT packet; mochi
	// replaces it with the keepalive's once the CONNECT is read.
	_ = conn.SetDeadline(time.Now().Add(l.wait))
	gc := &guardedConn{Conn: conn, l: l, host: host}
	l.conns[gc] = struct{}{}
	l.runs.Add(1)
	return gc, ""
}

func (l *guardedListener) release(gc *guardedConn) {
	host := gc.host
	l.mu.Lock()
	delete(l.conns, gc)
	l.total--
	if l.perAddr[host]--; l.perAddr[host] <= 0 {
		delete(l.perAddr, host)
	}
	l.mu.Unlock()
}

// run hands the connection to mochi and tells, when it ends, why it was
// refused if it never got past its CONNECT.
func (l *guardedListener) run(gc *guardedConn, establish listeners.EstablishFn) {
	defer l.runs.Done()
	defer gc.Close()
	var conn net.Conn = gc
	if l.tls != nil {
		tc := tls.Server(gc, l.tls)
		if err := tc.Handshake(); err != nil {
			if isTimeout(err) {
				l.refuse(RefusedConnectTimeout)
			} else {
				l.refuse(RefusedTLSHandshake)
			}
			return
		}
		conn = tc
	}
	err := establish(l.id, conn)
	switch {
	case err == nil:
	case errors.Is(err, packets.ErrPacketTooLarge):
		l.refuse(RefusedPacketTooLarge)
	case !gc.connected.Load() && isTimeout(err):
		l.refuse(RefusedConnectTimeout)
	}
	if err != nil && l.log != nil {
		l.log.Debug("connection ended", "error", err, "remote", gc.host)
	}
}

// Close stops accepting, closes every connection of this listener and
// waits until mochi is done with each: mochi's server waits for its
// clients once the listeners are closed, and a connection still starting
// then would race with that wait.
func (l *guardedListener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	first := l.end.CompareAndSwap(false, true)
	l.mu.Unlock()
	_ = l.ln.Close()
	if !first {
		return
	}
	closeClients(l.id)
	l.mu.Lock()
	open := make([]*guardedConn, 0, len(l.conns))
	for gc := range l.conns {
		open = append(open, gc)
	}
	l.mu.Unlock()
	for _, gc := range open {
		_ = gc.Conn.Close() // not gc.Close: run releases the slot
	}
	// Bounded: a shutdown must not hang on one connection mochi is slow
	// to let go of.
	done := make(chan struct{})
	go func() { l.runs.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(closeWait):
		if l.log != nil {
			l.log.Warn("connections still closing at shutdown", "listener", l.id)
		}
	}
}

// closeWait bounds how long Close waits for mochi to finish with the
// listener's connections.
const closeWait = 5 * time.Second

// guardedConn gives its slot back once, when closed.
type guardedConn struct {
	net.Conn
	l         *guardedListener
	host      string
	connected atomic.Bool // the CONNECT was read (OnConnect ran)
	once      sync.Once
}

func (c *guardedConn) Close() error {
	c.once.Do(func() { c.l.release(c) })
	return c.Conn.Close()
}

// markConnected records on the client's connection that its CONNECT was
// read, so that a later timeout is the keepalive's, not a refusal.
func markConnected(conn net.Conn) {
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	if gc, ok := conn.(*guardedConn); ok {
		gc.connected.Store(true)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

func remoteHost(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// Login throttling. A device id's failures count per address, so a flood
// of wrong passwords for one id from one place delays only that place's
// logins of that id, never the same id from elsewhere nor the fleet's
// reconnect after a restart; an address's failures across ids count too,
// against guessing many ids from one place. Each is a token bucket of that
// many failures: an address earns them back over the window, an id at an
// address one a window. Refusals made by the throttle
// cost no password check and do not count as failures.
const (
	throttleWindow  = time.Minute
	maxIDFailures   = 5  // per (device id, address) in a window
	maxAddrFailures = 30 // per address, over all ids, in a window
	// maxThrottleKeys bounds the throttle's memory under a flood of random
	// ids and addresses.
	maxThrottleKeys = 100_000
)

type loginThrottle struct {
	now   func() time.Time
	mu    sync.Mutex       // an id's and its address's buckets checked as one step
	ids   *ratelimit.Keyed // by idKey
	addrs *ratelimit.Keyed // by address
}

// attempt is what begin counted, for succeeded or undo.
type attempt struct {
	key      string
	id, addr ratelimit.Reservation
}

func newLoginThrottle(now func() time.Time) *loginThrottle {
	return &loginThrottle{now: now,
		// An id's failures from one address come back one a window, not
		// all at once: a flood gets maxIDFailures checks and then one a
		// minute, where a window that reset would hand it five more.
		ids:   ratelimit.New(1/throttleWindow.Seconds(), maxIDFailures, maxThrottleKeys),
		addrs: ratelimit.Per(maxAddrFailures, throttleWindow, maxThrottleKeys)}
}

func idKey(id, addr string) string { return id + "\x00" + addr }

// begin reports whether a login of id from addr may have its password
// checked, and if so counts it as a failure until succeeded says
// otherwise: reserving the attempt before the check means parallel
// guesses cannot all pass while the first ones are still being checked.
func (t *loginThrottle) begin(id, addr string) (attempt, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	a := attempt{key: idKey(id, addr)}
	var wait time.Duration
	if a.id, wait = t.ids.ReserveAll(now, a.key); wait > 0 {
		return attempt{}, false
	}
	if a.addr, wait = t.addrs.ReserveAll(now, addr); wait > 0 {
		t.ids.Refund(a.id)
		return attempt{}, false
	}
	return a, true
}

// succeeded takes back the attempt begin counted and forgets id's earlier
// failures from addr.
func (t *loginThrottle) succeeded(a attempt) {
	t.ids.Forget(a.key)
	t.addrs.Refund(a.addr)
}

// undo takes back the attempt begin counted, when no password was
// checked (auth_busy).
func (t *loginThrottle) undo(a attempt) {
	t.ids.Refund(a.id)
	t.addrs.Refund(a.addr)
}

// OnConnect marks the connection as past its CONNECT; see markConnected.
func (h *authHook) OnConnect(cl *mqtt.Client, _ packets.Packet) error {
	markConnected(cl.Net.Conn)
	return nil
}

// OnDisconnect reports a logged-in device cut off for a packet over the
// maximum packet size under its id (payload_too_large, no topic: the packet
// was never read), so that its maker sees why in the rejection reports,
// and forgets the connection's acker.
func (h *authHook) OnDisconnect(cl *mqtt.Client, err error, _ bool) {
	h.ackers.Delete(cl) // a confirm still running keeps its acker
	if errors.Is(err, packets.ErrPacketTooLarge) && !h.isService(cl) && !cl.Net.Inline {
		h.denied(cl.ID, "", model.ReasonTooLarge)
	}
}
