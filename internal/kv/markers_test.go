package kv

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/internal/testenv"
)

// TestPurgeMarkersLeavesNoSubject: markers younger than the age are kept;
// older ones of the keys that match go with their subjects, while live
// keys, and markers outside the filter, stay.
func TestPurgeMarkersLeavesNoSubject(t *testing.T) {
	s := testenv.NATS(t)
	js := connect(t, s)
	b := open(t, js)
	ctx := t.Context()
	for i, k := range []string{"a.1", "a.2", "a.3", "b.1"} {
		put(t, b, k, i)
	}
	put(t, b, "a.1", 10) // a key with more than one revision
	for _, err := range []error{b.Delete(ctx, "a.1"), b.Purge(ctx, "a.2"), b.Delete(ctx, "b.1")} {
		if err != nil {
			t.Fatal(err)
		}
	}
	subjects := func() uint64 {
		t.Helper()
		st, err := js.Stream(ctx, "KV_"+b.Bucket())
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.NumSubjects
	}
	if n := subjects(); n != 4 {
		t.Fatalf("%d subjects before, want 4", n)
	}

	if n, err := PurgeMarkers(ctx, js, b, "a.>", time.Hour); err != nil || n != 0 {
		t.Fatalf("young markers: removed %d, %v; want 0", n, err)
	}
	if n := subjects(); n != 4 {
		t.Fatalf("%d subjects after keeping young markers, want 4", n)
	}

	n, err := PurgeMarkers(ctx, js, b, "a.>", 0)
	if err != nil || n != 2 {
		t.Fatalf("removed %d, %v; want 2", n, err)
	}
	if n := subjects(); n != 2 {
		t.Fatalf("%d subjects after, want 2 (a.3 and b.1's marker)", n)
	}
	for _, k := range []string{"a.1", "a.2"} {
		if _, err := b.History(ctx, k); !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Fatalf("history of %s: %v, want none", k, err)
		}
	}
	if e, err := b.Get(ctx, "a.3"); err != nil || string(e.Value()) != `{"n":2}` {
		t.Fatalf("a.3: %v, %v", e, err)
	}
	if _, err := b.History(ctx, "b.1"); err != nil {
		t.Fatalf("b.1's marker, outside the filter: %v", err)
	}
}
