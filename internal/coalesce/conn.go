// Package coalesce is the TCP connection carehub's MQTT and NATS clients
// use. paho reads every packet with three or four system calls and writes
// every PUBACK with one; nats.go writes whatever one publish left in its
// buffer. At tens of thousands of readings a second those system calls were
// a large share of carehub's CPU. This connection buffers reads and
// coalesces writes.
package coalesce

import (
	"bufio"
	"net"
	"net/url"
	"runtime"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// coalescingConn batches small writes and buffers reads.
//
// Writes are queued and a flusher writes whatever accumulated while its
// previous write was in the kernel, after yielding once so that the
// goroutines ready to write add theirs: no added delay when idle, one
// system call for many small writes under load. Order is preserved; a
// write error is returned by the next Write. A write deadline set on the
// connection applies to the flusher's write in progress.
//
// paho reads a packet's first byte, then its length a byte at a time, then
// its body, each straight from the connection: four system calls for a
// telemetry message of 128 bytes or more. Reads go through a buffer, so one
// system call brings in whatever the broker has sent. paho reads from one
// goroutine, which is all bufio.Reader allows.
//
// With a read wait, a read that finds the buffer empty first waits that
// long, so that at a steady rate, where the broker's messages arrive one
// by one, one system call and one wake-up of paho's goroutines carry the
// messages of a few milliseconds instead of one (DialMQTTWaiting).
type coalescingConn struct {
	net.Conn
	r        *bufio.Reader
	readWait time.Duration

	mu      sync.Mutex
	cond    *sync.Cond
	pending []byte
	spare   []byte
	err     error
	closed  bool
	done    chan struct{}
}

// maxPendingWrite bounds the queued bytes; a writer beyond it waits.
const maxPendingWrite = 256 << 10

// readBuffer holds a few hundred telemetry messages.
const readBuffer = 64 << 10

func newCoalescingConn(c net.Conn) *coalescingConn {
	cc := &coalescingConn{Conn: c, r: bufio.NewReaderSize(c, readBuffer), done: make(chan struct{})}
	cc.cond = sync.NewCond(&cc.mu)
	go cc.flusher()
	return cc
}

func (c *coalescingConn) Read(p []byte) (int, error) {
	if c.readWait > 0 && c.r.Buffered() == 0 {
		time.Sleep(c.readWait)
	}
	return c.r.Read(p)
}

func (c *coalescingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.pending) >= maxPendingWrite && c.err == nil && !c.closed {
		c.cond.Wait()
	}
	if c.err != nil {
		return 0, c.err
	}
	if c.closed {
		return 0, net.ErrClosed
	}
	c.pending = append(c.pending, p...)
	c.cond.Broadcast()
	return len(p), nil
}

func (c *coalescingConn) flusher() {
	defer close(c.done)
	c.mu.Lock()
	for {
		for len(c.pending) == 0 && !c.closed {
			c.cond.Wait()
		}
		if len(c.pending) == 0 && c.closed {
			c.mu.Unlock()
			return
		}
		if !c.closed {
			// Yield to the writers that are ready: under load one write
			// then carries many PUBACKs or publishes (make bench-ingest:
			// 154,000 socket writes for 200,000 readings before, 35,000
			// after); when idle nothing is waiting and this returns at once.
			c.mu.Unlock()
			runtime.Gosched()
			c.mu.Lock()
		}
		buf := c.pending
		c.pending = c.spare[:0]
		c.cond.Broadcast() // room for blocked writers
		c.mu.Unlock()
		_, err := c.Conn.Write(buf)
		c.mu.Lock()
		c.spare = buf[:0]
		if err != nil {
			c.err = err
			c.pending = nil
			c.cond.Broadcast()
			c.mu.Unlock()
			return
		}
	}
}

// Close flushes what is queued (bounded by the write deadline paho sets)
// and closes the connection.
func (c *coalescingConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.cond.Broadcast()
	c.mu.Unlock()
	select {
	case <-c.done:
	case <-time.After(time.Second):
	}
	return c.Conn.Close()
}

// DialMQTT opens a plain TCP broker connection wrapped in a coalescingConn,
// for paho's ClientOptions.SetCustomOpenConnectionFn; use it only where
// PlainTCP holds, other schemes (TLS, WebSocket) keep paho's own dialer.
func DialMQTT(uri *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
	return DialMQTTWaiting(0)(uri, o)
}

// DialMQTTWaiting is DialMQTT with a read wait (see coalescingConn): for
// connections that carry a steady stream, where a few milliseconds more
// before a message is read cost nothing and save the CPU of reading
// messages one by one (docs/performance.md, "Reading in batches at a
// steady rate").
func DialMQTTWaiting(wait time.Duration) mqtt.OpenConnectionFunc {
	return func(uri *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
		c, err := dial(uri.Host, o.ConnectTimeout)
		if err != nil {
			return nil, err
		}
		c.readWait = wait
		return c, nil
	}
}

// PlainTCP reports whether a broker URL is unencrypted TCP.
func PlainTCP(broker string) bool {
	u, err := url.Parse(broker)
	return err == nil && (u.Scheme == "tcp" || u.Scheme == "mqtt")
}

// NATSDialer is a nats.CustomDialer giving nats.go a coalescingConn. TLS,
// when the server asks for it, is layered on top by nats.go as usual.
type NATSDialer struct {
	Timeout time.Duration // for each attempt; 0 = 2 s, nats.go's default
}

// Dial implements nats.CustomDialer.
func (d NATSDialer) Dial(_, address string) (net.Conn, error) {
	if d.Timeout <= 0 {
		d.Timeout = 2 * time.Second
	}
	c, err := dial(address, d.Timeout)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return c, nil
}

func dial(address string, timeout time.Duration) (*coalescingConn, error) {
	c, err := net.DialTimeout("tcp", address, timeout)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	return newCoalescingConn(c), nil
}
