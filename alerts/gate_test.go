package alerts

import (
	"sync"
	"testing"
	"time"

	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/testenv"
)

// gateSet is a ResidentGate over a set the test changes (the registry in
// carehub).
type gateSet struct {
	mu  sync.Mutex
	ids map[string]bool
}

func newGate(ids ...string) *gateSet {
	g := &gateSet{ids: map[string]bool{}}
	for _, id := range ids {
		g.ids[id] = true
	}
	return g
}

func (g *gateSet) Monitored(id string) bool { g.mu.Lock(); defer g.mu.Unlock(); return g.ids[id] }
func (g *gateSet) remove(id string)         { g.mu.Lock(); delete(g.ids, id); g.mu.Unlock() }

// TestManagerHoldsResidentBeingErased: while a resident is being erased
// (no longer monitored, their alerts not yet erased) the Manager raises
// nothing new for them, takes no escalation step (none reaches 119) and
// delivers no pending transition; another resident's alert escalates.
func TestManagerHoldsResidentBeingErased(t *testing.T) {
	e := newEnv(t)
	clk := newClock()
	gone, kept := testenv.ID("r"), testenv.ID("r")
	gate := newGate(gone, kept)
	m := e.manager(t, Options{Clock: clk.Now, Residents: gate})
	sub := e.subscribe(t, model.ResidentAlertsFilter(gone))
	ctx := ctxT(t)
	for _, r := range []string{gone, kept} {
		if err := m.Signal(ctx, sig(r, "heart_rate", rules.SeverityCritical)); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, 5*time.Second, "the raise published", func() bool { return sub.count() == 1 })

	gate.remove(gone)
	if err := m.Signal(ctx, sig(gone, "spo2", rules.SeverityCritical)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(10 * time.Minute) // past every critical escalation step
	if err := m.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if a := onlyAlert(t, m, gone); a.EscalationLevel != 1 || a.Rule != "heart_rate" {
		t.Fatalf("alert of the resident being erased: %+v", a)
	}
	if a := onlyAlert(t, m, kept); a.EscalationLevel < 2 {
		t.Fatalf("the other resident's alert did not escalate: %+v", a)
	}
	if n := sub.count(); n != 1 {
		t.Fatalf("%d transitions of the resident being erased published, want only the raise", n)
	}
}
