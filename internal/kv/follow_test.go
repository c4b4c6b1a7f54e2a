package kv

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/testenv"
)

// seenLog records what Follow applied, as "op key".
type seenLog struct {
	mu  sync.Mutex
	ops []string
}

func (s *seenLog) apply(e jetstream.KeyValueEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ops = append(s.ops, e.Operation().String()+" "+e.Key())
}

func (s *seenLog) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ops)
}

// TestFollowFromRevision: Follow from a revision passes on what was
// written from there on, deletes included, and nothing before; Scan reads
// the latest value of every key that matches, deleted keys left out.
func TestFollowFromRevision(t *testing.T) {
	s := testenv.NATS(t)
	js := connect(t, s)
	b := open(t, js)
	put(t, b, "a.1", 1)
	rev := put(t, b, "a.2", 2)
	put(t, b, "other", 3)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	seen := &seenLog{}
	go func() { defer close(done); Follow(ctx, js.Conn(), b, "a.>", rev+1, seen.apply, zerolog.Nop()) }()
	t.Cleanup(func() { cancel(); <-done })
	put(t, b, "a.3", 3)
	if err := b.Delete(t.Context(), "a.1"); err != nil {
		t.Fatal(err)
	}
	want := []string{"KeyValuePutOp a.3", "KeyValueDeleteOp a.1"}
	testenv.WaitFor(t, 5*time.Second, "the two changes", func() bool { return len(seen.all()) >= 2 })
	if got := seen.all(); !slices.Equal(got, want) {
		t.Fatalf("followed %v, want %v", got, want)
	}

	var keys []string
	if err := Scan(t.Context(), b, "a.>", func(e jetstream.KeyValueEntry) { keys = append(keys, e.Key()) }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"a.2", "a.3"}) {
		t.Fatalf("scanned %v", keys)
	}
}
