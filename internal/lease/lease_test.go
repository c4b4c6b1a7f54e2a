package lease_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/lease"
	"github.com/carehub/carehub/internal/testenv"
)

const ttl = 900 * time.Millisecond

// candidate runs one instance's campaign and records when it leads.
type candidate struct {
	l       *lease.Lease
	cancel  context.CancelFunc
	done    chan struct{}
	leading atomic.Int32 // 1 while lead runs
	terms   atomic.Int32
}

func campaign(t *testing.T, b jetstream.KeyValue, holder string, overlap *atomic.Int32, maxOverlap *atomic.Int32) *candidate {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &candidate{l: lease.New(b, "alerts", holder, ttl, zerolog.Nop()), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		c.l.Run(ctx, func(ctx context.Context) {
			c.terms.Add(1)
			c.leading.Store(1)
			if n := overlap.Add(1); n > maxOverlap.Load() {
				maxOverlap.Store(n)
			}
			<-ctx.Done()
			overlap.Add(-1)
			c.leading.Store(0)
		})
	}()
	t.Cleanup(func() { cancel(); <-c.done })
	return c
}

func bucket(t *testing.T) jetstream.KeyValue {
	t.Helper()
	_, js := testenv.JetStream(t, testenv.NATS(t))
	b, err := lease.Open(context.Background(), js, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOneLeaderAndHandover: of three candidates exactly one leads; when it
// stops (releasing the lease) another takes over at once; never two at a
// time.
func TestOneLeaderAndHandover(t *testing.T) {
	b := bucket(t)
	var overlap, maxOverlap atomic.Int32
	cs := []*candidate{
		campaign(t, b, "a", &overlap, &maxOverlap),
		campaign(t, b, "b", &overlap, &maxOverlap),
		campaign(t, b, "c", &overlap, &maxOverlap),
	}
	leader := func() int {
		n, who := 0, -1
		for i, c := range cs {
			if c.l.Held() && c.leading.Load() == 1 {
				n, who = n+1, i
			}
		}
		if n != 1 {
			return -1
		}
		return who
	}
	testenv.WaitFor(t, 5*time.Second, "one leader", func() bool { return leader() >= 0 })
	// Several renewals later the same one still leads.
	first := leader()
	deadline := time.Now().Add(3 * ttl)
	for time.Now().Before(deadline) {
		if l := leader(); l != first && l != -1 {
			t.Fatalf("leadership moved from %d to %d without a fault", first, l)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if cs[first].terms.Load() != 1 {
		t.Fatalf("leader %d had %d terms, want 1 (renewals must not restart the work)", first, cs[first].terms.Load())
	}

	start := time.Now()
	cs[first].cancel()
	<-cs[first].done
	testenv.WaitFor(t, 2*time.Second, "a new leader", func() bool { l := leader(); return l >= 0 && l != first })
	if took := time.Since(start); took > ttl {
		t.Errorf("handover after a release took %s, want < TTL %s (the lease is deleted, not left to expire)", took, ttl)
	}
	if maxOverlap.Load() > 1 {
		t.Fatalf("%d instances led at once", maxOverlap.Load())
	}
}

// TestTakeoverAfterExpiry: a holder that dies without releasing (its key is
// left to expire) is replaced within TTL + TTL/3 and not before the TTL.
func TestTakeoverAfterExpiry(t *testing.T) {
	b := bucket(t)
	// The dead holder: a key written as a holder would, never renewed.
	if _, err := b.Create(context.Background(), "alerts", []byte("dead")); err != nil {
		t.Fatal(err)
	}
	written := time.Now()
	var overlap, maxOverlap atomic.Int32
	c := campaign(t, b, "b", &overlap, &maxOverlap)
	testenv.WaitFor(t, 5*time.Second, "takeover", func() bool { return c.leading.Load() == 1 })
	took := time.Since(written)
	if took < ttl*9/10 || took > ttl+ttl/3+500*time.Millisecond {
		t.Fatalf("took over after %s; want between the TTL (%s) and TTL+TTL/3", took, ttl)
	}
	t.Logf("takeover after %s (TTL %s)", took.Round(time.Millisecond), ttl)
}

// TestRestartTakesOwnLeaseBack: an instance restarted under the same id
// leads again at once instead of waiting for its old key to expire.
func TestRestartTakesOwnLeaseBack(t *testing.T) {
	b := bucket(t)
	if _, err := b.Create(context.Background(), "alerts", []byte("me")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var overlap, maxOverlap atomic.Int32
	c := campaign(t, b, "me", &overlap, &maxOverlap)
	testenv.WaitFor(t, 5*time.Second, "lead", func() bool { return c.leading.Load() == 1 })
	if took := time.Since(start); took > ttl/2 {
		t.Fatalf("took %s to take its own lease back", took)
	}
}

// TestStepsDownWhenItCannotRenew: a holder cut off from NATS stops leading
// before its key can expire, and another instance leads after it, never at
// the same time.
func TestStepsDownWhenItCannotRenew(t *testing.T) {
	ns := testenv.NATS(t)
	_, js := testenv.JetStream(t, ns)
	b, err := lease.Open(context.Background(), js, ttl)
	if err != nil {
		t.Fatal(err)
	}
	// The holder talks to NATS through its own connection, which the test
	// cuts.
	nc2, js2 := testenv.JetStream(t, ns)
	b2, err := js2.KeyValue(context.Background(), "care_leases")
	if err != nil {
		t.Fatal(err)
	}
	var overlap, maxOverlap atomic.Int32
	var mu sync.Mutex
	var stepped time.Time
	holder := campaign(t, b2, "cut", &overlap, &maxOverlap)
	testenv.WaitFor(t, 5*time.Second, "lead", func() bool { return holder.leading.Load() == 1 })
	nc2.Close() // the holder can no longer renew
	cut := time.Now()
	go func() {
		for holder.leading.Load() == 1 {
			time.Sleep(5 * time.Millisecond)
		}
		mu.Lock()
		stepped = time.Now()
		mu.Unlock()
	}()
	other := campaign(t, b, "other", &overlap, &maxOverlap)
	testenv.WaitFor(t, 5*time.Second, "the other leads", func() bool { return other.leading.Load() == 1 })
	mu.Lock()
	defer mu.Unlock()
	if stepped.IsZero() || stepped.Sub(cut) > ttl {
		t.Fatalf("the cut-off holder stepped down %s after the cut, want within the TTL", stepped.Sub(cut))
	}
	if maxOverlap.Load() > 1 {
		t.Fatal("two instances led at once")
	}
}
