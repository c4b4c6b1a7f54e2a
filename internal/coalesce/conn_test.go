package coalesce

import (
	"bytes"
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
	"github.com/eclipse/paho.mqtt.golang/packets"
)

func TestCoalescingConnKeepsOrder(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- nil
			return
		}
		b, _ := io.ReadAll(c)
		got <- b
	}()
	raw, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := newCoalescingConn(raw)
	var want bytes.Buffer
	for i := range 100000 {
		p := []byte{0x40, 0x02, byte(i >> 8), byte(i)} // PUBACK-sized writes
		want.Write(p)
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("peer read %d bytes, want %d in the same order", len(b), want.Len())
	}
}

func TestCoalescingConnReportsWriteErrors(t *testing.T) {
	a, b := net.Pipe()
	b.Close()
	c := newCoalescingConn(a)
	defer c.Close()
	_, _ = c.Write([]byte("x")) // queued; the flusher's write fails
	var err error
	for i := 0; i < 1000 && err == nil; i++ {
		_, err = c.Write([]byte("y"))
		if err == nil {
			select { // let the flusher fail, without sleeping for luck
			case <-c.done:
			case <-time.After(time.Millisecond):
			}
		}
	}
	if err == nil || !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("write after a failed flush: err = %v, want io.ErrClosedPipe", err)
	}
}

// Packets read through the buffer arrive whole and in order, also when
// the peer's writes split them anywhere.
func TestCoalescingConnBufferedReads(t *testing.T) {
	a, b := net.Pipe()
	c := newCoalescingConn(a)
	defer c.Close()
	var stream bytes.Buffer
	const n = 5000
	for i := range n {
		pk := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
		pk.Qos, pk.MessageID, pk.TopicName = 1, uint16(i+1), "care/v1/dev/d1/telemetry"
		pk.Payload = bytes.Repeat([]byte{byte('a' + i%26)}, 100+i%200) // lengths of one and two bytes
		if err := pk.Write(&stream); err != nil {
			t.Fatal(err)
		}
	}
	go func() {
		data := stream.Bytes()
		for i := 0; len(data) > 0; i++ {
			k := min(len(data), 1+i*37%1500) // uneven chunks
			if _, err := b.Write(data[:k]); err != nil {
				return
			}
			data = data[k:]
		}
	}()
	for i := range n {
		cp, err := packets.ReadPacket(c)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		pk, ok := cp.(*packets.PublishPacket)
		if !ok || pk.MessageID != uint16(i+1) || len(pk.Payload) != 100+i%200 || pk.Payload[0] != byte('a'+i%26) {
			t.Fatalf("packet %d: got %v", i, cp)
		}
	}
}

// gatedConn blocks its first Write until released and counts the writes.
type gatedConn struct {
	net.Conn
	gate   chan struct{}
	once   sync.Once
	writes atomic.Int64
	bytes  atomic.Int64
}

func (g *gatedConn) Write(p []byte) (int, error) {
	g.once.Do(func() { <-g.gate })
	g.writes.Add(1)
	g.bytes.Add(int64(len(p)))
	return len(p), nil
}

func (g *gatedConn) Close() error { return nil }

// While a write is in the kernel, writes from many goroutines queue up and
// leave in one.
func TestCoalescingConnBatchesWhileAWriteIsInFlight(t *testing.T) {
	g := &gatedConn{gate: make(chan struct{})}
	c := newCoalescingConn(g)
	if _, err := c.Write([]byte("first")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 500 {
				if _, err := c.Write([]byte{0x40, 0x02, 0, 1}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(g.gate)
	want := int64(len("first") + 8*500*4)
	for deadline := time.Now().Add(10 * time.Second); g.bytes.Load() != want; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d bytes written", g.bytes.Load(), want)
		}
		runtime.Gosched()
	}
	if w := g.writes.Load(); w > 3 {
		t.Fatalf("4,001 writes left in %d system calls, want at most 3", w)
	}
	_ = c.Close()
}

// dialWaiting serves one connection with serve (which then discards what
// the client sends) and dials it through DialMQTTWaiting(wait).
func dialWaiting(t *testing.T, wait time.Duration, serve func(net.Conn)) net.Conn {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		serve(c)
		_, _ = io.Copy(io.Discard, c)
	}()
	u, _ := url.Parse("tcp://" + l.Addr().String())
	c, err := DialMQTTWaiting(wait)(u, paho.ClientOptions{ConnectTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestReadWaitGathers: with a read wait, a read that finds nothing buffered
// waits first, so what the broker sends meanwhile comes in with one read;
// what is buffered is read at once.
func TestReadWaitGathers(t *testing.T) {
	const wait = 200 * time.Millisecond
	c := dialWaiting(t, wait, func(c net.Conn) {
		_, _ = c.Write([]byte("a"))
		time.Sleep(10 * time.Millisecond) // the broker's second message, well inside the client's wait
		_, _ = c.Write([]byte("bc"))
	})
	buf := make([]byte, 16)
	start := time.Now()
	n, err := c.Read(buf)
	if took := time.Since(start); err != nil || took < wait {
		t.Fatalf("first read: %v after %v, want the wait of %v first", err, took, wait)
	}
	if got := string(buf[:n]); got != "abc" {
		t.Fatalf("first read got %q, want both writes (%q)", got, "abc")
	}
}

// TestReadWaitSkippedWhenBuffered: a read served from the buffer does not
// wait.
func TestReadWaitSkippedWhenBuffered(t *testing.T) {
	const wait = 200 * time.Millisecond
	c := dialWaiting(t, wait, func(c net.Conn) { _, _ = c.Write([]byte("abc")) })
	buf := make([]byte, 1)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := io.ReadFull(c, make([]byte, 2)); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took >= wait {
		t.Fatalf("a read of buffered bytes took %v: it waited", took)
	}
}
