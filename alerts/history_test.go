package alerts

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/internal/testenv"
)

// inMemory is how many alert records the Manager holds.
func (m *Manager) inMemory() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.byID)
}

// TestMemoryHoldsOpenAlertsOnly: after many raise+clear and raise+resolve
// cycles the Manager holds only the open alerts, while Get, List (with and
// without status filters), Comment and a restarted Manager still find every
// resolved one in KV, in List's order.
func TestMemoryHoldsOpenAlertsOnly(t *testing.T) {
	e := newEnv(t)
	clk := newClock()
	ctx := ctxT(t)
	m := e.manager(t, Options{Clock: clk.Now})
	res := testenv.ID("r")
	const cycles = 40
	var resolved []string
	for i := range cycles {
		if err := m.Signal(ctx, sig(res, "spo2", "high")); err != nil {
			t.Fatal(err)
		}
		a := onlyOpen(t, m, res)
		clk.Advance(time.Second)
		if i%2 == 0 {
			if err := m.Signal(ctx, clearSig(res, "spo2")); err != nil {
				t.Fatal(err)
			}
		} else if _, err := m.Resolve(ctx, a.ID, "u1", OutcomeFalseAlarm, ""); err != nil {
			t.Fatal(err)
		}
		resolved = append(resolved, a.ID)
		clk.Advance(time.Second)
		if n := m.inMemory(); n != 0 {
			t.Fatalf("cycle %d: %d alerts in memory, want 0 (none open)", i, n)
		}
	}
	if err := m.Signal(ctx, sig(res, "heart_rate", "warning")); err != nil {
		t.Fatal(err)
	}
	if n := m.inMemory(); n != 1 {
		t.Fatalf("%d alerts in memory with one open, want 1", n)
	}

	for _, id := range resolved {
		a, err := m.Get(id)
		if err != nil || a.Status != StatusResolved {
			t.Fatalf("Get(%s) = %s, %v", id, a.Status, err)
		}
	}
	all := m.List(Filter{ResidentID: res})
	if len(all) != cycles+1 || all[0].Rule != "heart_rate" || all[1].ID != resolved[cycles-1] || all[cycles].ID != resolved[0] {
		t.Fatalf("List: %d alerts, want %d newest first", len(all), cycles+1)
	}
	if got := m.List(Filter{ResidentID: res, Status: StatusResolved, Limit: 5}); len(got) != 5 || got[0].ID != resolved[cycles-1] {
		t.Fatalf("resolved, limit 5: %+v", got)
	}
	if got := m.List(Filter{ResidentID: res, Status: StatusOpen}); len(got) != 1 || got[0].Rule != "heart_rate" {
		t.Fatalf("open: %+v", got)
	}
	if _, err := m.Acknowledge(ctx, resolved[0], "u1", ""); !errors.Is(err, ErrConflict) {
		t.Fatalf("ack of a resolved alert: %v, want ErrConflict", err)
	}
	if _, err := m.Get("al-00000000000-00000000"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown id: %v, want ErrNotFound", err)
	}
	if _, err := m.Comment(ctx, resolved[3], "u2", "called the daughter"); err != nil {
		t.Fatal(err)
	}
	if n := m.inMemory(); n != 1 {
		t.Fatalf("%d alerts in memory after a comment on a resolved one, want 1", n)
	}
	if a, _ := m.Get(resolved[3]); a.Notes[len(a.Notes)-1].Text != "called the daughter" {
		t.Fatalf("comment not stored: %+v", a.Notes)
	}

	m2 := e.manager(t, Options{Clock: clk.Now})
	if n := m2.inMemory(); n != 1 {
		t.Fatalf("restarted: %d alerts in memory, want 1", n)
	}
	if got := m2.List(Filter{ResidentID: res}); len(got) != cycles+1 {
		t.Fatalf("restarted List: %d alerts, want %d", len(got), cycles+1)
	}
}

func onlyOpen(t *testing.T, m *Manager, res string) Alert {
	t.Helper()
	got := m.List(Filter{ResidentID: res, Status: StatusOpen})
	if len(got) != 1 {
		t.Fatalf("%d open alerts, want 1", len(got))
	}
	return got[0]
}

// TestSweepDeletesOldResolved: the hourly sweep deletes from KV a resolved
// alert older than ResolvedRetention and keeps a younger one.
func TestSweepDeletesOldResolved(t *testing.T) {
	e := newEnv(t)
	clk := newClock()
	ctx := ctxT(t)
	m := e.manager(t, Options{Clock: clk.Now})
	res := testenv.ID("r")
	var ids []string
	for range 2 {
		if err := m.Signal(ctx, sig(res, "spo2", "high")); err != nil {
			t.Fatal(err)
		}
		a := onlyOpen(t, m, res)
		if _, err := m.Resolve(ctx, a.ID, "u1", OutcomeVisited, ""); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.ID)
		clk.Advance(2 * 24 * time.Hour)
	}
	clk.Advance(ResolvedRetention - 3*24*time.Hour) // the first is 31 days old, the second 29
	if err := m.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Get(ids[0]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("old resolved alert: %v, want ErrNotFound", err)
	}
	if _, err := m.Get(ids[1]); err != nil {
		t.Fatalf("young resolved alert: %v", err)
	}
}

// TestSweepLeavesNoMarkers: the markers of swept and erased alerts go too
// once they are older than markerAge, so an alert's key does not stay in
// the NATS server after the alert has gone.
func TestSweepLeavesNoMarkers(t *testing.T) {
	e := newEnv(t)
	clk := newClock()
	ctx := ctxT(t)
	m := e.manager(t, Options{Clock: clk.Now})
	m.markerAge = 0
	raise := func(res string) string {
		t.Helper()
		if err := m.Signal(ctx, sig(res, "spo2", "high")); err != nil {
			t.Fatal(err)
		}
		return onlyOpen(t, m, res).ID
	}
	old, erased, young := raise(testenv.ID("r")), testenv.ID("r"), testenv.ID("r")
	if _, err := m.Resolve(ctx, old, "u1", OutcomeVisited, ""); err != nil {
		t.Fatal(err)
	}
	erasedID := raise(erased)
	if n, err := m.EraseResident(ctx, erased); err != nil || n != 1 {
		t.Fatalf("erased %d, %v", n, err)
	}
	clk.Advance(ResolvedRetention + time.Hour)
	youngID := raise(young)
	if err := m.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{old, erasedID} {
		if _, err := m.kv.History(ctx, kvKey(id)); !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Fatalf("alert %s after the sweep: %v, want no key left", id, err)
		}
	}
	if _, err := m.Get(youngID); err != nil {
		t.Fatalf("open alert: %v", err)
	}
}
