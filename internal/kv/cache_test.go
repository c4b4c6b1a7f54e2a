package kv

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/testenv"
)

type item struct {
	N int `json:"n"`
}

func connect(t *testing.T, s *server.Server) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func open(t *testing.T, js jetstream.JetStream) jetstream.KeyValue {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := Open(ctx, js, Bucket{Name: "test_cache", Description: "kv cache test", History: 1})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func put(t *testing.T, b jetstream.KeyValue, key string, n int) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rev, err := b.Put(ctx, key, []byte(`{"n":`+strconv.Itoa(n)+`}`))
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

func has(c *Cache[item], key string, n int) func() bool {
	return func() bool {
		v, ok := c.Get(key)
		return ok && v.N == n
	}
}

// TestCacheLoadsAndFollows: the copy holds the bucket at NewCache's return
// and then follows puts, deletes and purges made through another
// connection (another instance, an operator); a value that does not decode
// is left out without stopping the watch.
func TestCacheLoadsAndFollows(t *testing.T) {
	s := testenv.NATS(t)
	other := open(t, connect(t, s))
	put(t, other, "a", 1)
	put(t, other, "b", 2)

	js := connect(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := NewCache(ctx, js.Conn(), open(t, js), CacheOptions[item]{Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !has(c, "a", 1)() || !has(c, "b", 2)() || c.Len() != 2 {
		t.Fatalf("after the load: %+v", c.List(nil))
	}

	put(t, other, "a", 10)
	if err := other.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	put(t, other, "c", 3)
	if err := other.Purge(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	put(t, other, "a", 11)
	if _, err := other.Put(ctx, "a", []byte("{")); err != nil {
		t.Fatal(err)
	}
	put(t, other, "d", 4)
	testenv.WaitFor(t, 5*time.Second, "the writes of another connection", func() bool {
		_, a := c.Get("a")
		_, b := c.Get("b")
		_, cc := c.Get("c")
		return has(c, "d", 4)() && !a && !b && !cc
	})
}

// TestCacheLocalWritesKeepNewest: a local Put at a revision wins over the
// watch's older one and loses to a newer one.
func TestCacheLocalWritesKeepNewest(t *testing.T) {
	c := &Cache[item]{m: map[string]record[item]{}}
	c.Put("k", item{N: 2}, 5)
	c.Put("k", item{N: 1}, 4) // a late watch update
	if !has(c, "k", 2)() {
		t.Fatal("an older revision overwrote a newer one")
	}
	c.Remove("k", 4)
	if !has(c, "k", 2)() {
		t.Fatal("an older delete removed a newer value")
	}
	c.Put("k", item{N: 3}, 6)
	if _, rev, _ := c.GetRevision("k"); rev != 6 || !has(c, "k", 3)() {
		t.Fatalf("newer revision not taken: rev %d", rev)
	}
	c.Drop("k")
	if _, ok := c.Get("k"); ok {
		t.Fatal("Drop kept the key")
	}
}

// TestCacheSurvivesServerRestart restarts NATS on the same port and store:
// a running cache resumes its watch and sees writes made after the
// restart, promptly (without the reconnect-driven restart nats.go's
// heartbeats take about 20 s to notice the watch is gone).
func TestCacheSurvivesServerRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "js")
	port := testenv.FreePort(t)
	s := testenv.NATSAt(t, port, dir)
	js := connect(t, s)
	b := open(t, js)
	put(t, b, "before", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := NewCache(ctx, js.Conn(), b, CacheOptions[item]{Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	s.Shutdown()
	s.WaitForShutdown()
	s2 := testenv.NATSAt(t, port, dir)
	other := open(t, connect(t, s2))
	put(t, other, "after", 2)
	if err := other.Delete(ctx, "before"); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the cache to follow writes after the restart", func() bool {
		_, before := c.Get("before")
		return has(c, "after", 2)() && !before
	})
	// And keeps following.
	put(t, other, "later", 3)
	testenv.WaitFor(t, 5*time.Second, "a second write after the restart", has(c, "later", 3))
}

// endingBucket hands out watches the test can end, as a watch ends when
// its consumer is lost.
type endingBucket struct {
	jetstream.KeyValue
	mu      sync.Mutex
	watches []*endingWatch
}

func (b *endingBucket) WatchAll(ctx context.Context, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	w, err := b.KeyValue.WatchAll(ctx, opts...)
	if err != nil {
		return nil, err
	}
	ew := &endingWatch{KeyWatcher: w, updates: make(chan jetstream.KeyValueEntry), end: make(chan struct{})}
	go ew.forward()
	b.mu.Lock()
	b.watches = append(b.watches, ew)
	b.mu.Unlock()
	return ew, nil
}

func (b *endingBucket) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.watches)
}

func (b *endingBucket) endLatest() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.watches[len(b.watches)-1].endOnce.Do(func() { close(b.watches[len(b.watches)-1].end) })
}

type endingWatch struct {
	jetstream.KeyWatcher
	updates chan jetstream.KeyValueEntry
	end     chan struct{}
	endOnce sync.Once
}

func (w *endingWatch) Updates() <-chan jetstream.KeyValueEntry { return w.updates }

func (w *endingWatch) forward() {
	defer close(w.updates)
	for {
		select {
		case <-w.end:
			return
		case e, ok := <-w.KeyWatcher.Updates():
			if !ok {
				return
			}
			select {
			case w.updates <- e:
			case <-w.end:
				return
			}
		}
	}
}

func (w *endingWatch) Stop() error {
	w.endOnce.Do(func() { close(w.end) })
	return w.KeyWatcher.Stop()
}

// TestCacheRestartsAnEndedWatch: a watch that ends by itself (no reconnect
// to tell) is replaced, and the copy keeps following the bucket.
func TestCacheRestartsAnEndedWatch(t *testing.T) {
	s := testenv.NATS(t)
	js := connect(t, s)
	b := &endingBucket{KeyValue: open(t, js)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := NewCache(ctx, js.Conn(), b, CacheOptions[item]{Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	other := open(t, connect(t, s))
	put(t, other, "one", 1)
	testenv.WaitFor(t, 5*time.Second, "a write on the first watch", has(c, "one", 1))

	b.endLatest()
	testenv.WaitFor(t, 5*time.Second, "a new watch", func() bool { return b.count() == 2 })
	put(t, other, "two", 2)
	testenv.WaitFor(t, 5*time.Second, "a write on the new watch", has(c, "two", 2))
}

// silentBucket's watches never deliver anything, not even the end of the
// initial values.
type silentBucket struct{ jetstream.KeyValue }

func (b silentBucket) WatchAll(ctx context.Context, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	w, err := b.KeyValue.WatchAll(ctx, opts...)
	return silentWatch{w}, err
}

type silentWatch struct{ jetstream.KeyWatcher }

func (silentWatch) Updates() <-chan jetstream.KeyValueEntry { return nil }

// TestCacheLoadHonoursContext: NewCache gives up with ctx's error when the
// load does not finish.
func TestCacheLoadHonoursContext(t *testing.T) {
	s := testenv.NATS(t)
	js := connect(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := NewCache(ctx, js.Conn(), silentBucket{open(t, js)}, CacheOptions[item]{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("NewCache past its deadline: %v", err)
	}
}
