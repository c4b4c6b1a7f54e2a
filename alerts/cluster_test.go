package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/testenv"
)

// Several carehub instances on one NATS: each test runs two Managers on the
// same bucket, each on its own connection, as two processes would.

// leader is an Options.Leads the test flips by hand (internal/lease in
// carehub).
type leader struct{ v atomic.Bool }

func leads(v bool) *leader { l := &leader{}; l.v.Store(v); return l }

func (l *leader) Leads() bool { return l.v.Load() }

// runningPair is two instances' Managers on one NATS server, each on its
// own connection and running: A with leadsA (nil: always leads), B with
// leadsB; both on clk.
func runningPair(t *testing.T, ns *server.Server, clk *testClock, leadsA, leadsB func() bool) (a, b *Manager) {
	t.Helper()
	a = envOn(t, ns).manager(t, Options{Clock: clk.Now, Leads: leadsA})
	b = envOn(t, ns).manager(t, Options{Clock: clk.Now, Leads: leadsB})
	run(t, a)
	run(t, b)
	return a, b
}

// run runs m.Run until the test ends.
func run(t *testing.T, m *Manager) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// holds reports whether m has alert id in memory.
func (m *Manager) holds(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.byID[id] != nil
}

// inStream counts the messages CARE_ALERTS holds on subject.
func inStream(t *testing.T, js jetstream.JetStream, subject string) uint64 {
	t.Helper()
	s, err := js.Stream(t.Context(), model.StreamAlerts)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[subject]
}

// flush makes sure what was published on each connection in turn has
// reached the server, and what it delivered has reached the next.
func flush(t *testing.T, envs ...*env) {
	t.Helper()
	for _, e := range envs {
		if err := e.nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
}

// idsOf returns the Nats-Msg-Ids sub received for alert id, in order.
func idsOf(sub *collector, id string) []string {
	var out []string
	for _, m := range sub.ids() {
		if strings.HasPrefix(m, id+":") {
			out = append(out, m)
		}
	}
	return out
}

// TestFollowOtherInstance: what one instance does appears on the other
// within a second or so: a raise in List and Get, an acknowledgement, a
// resolution (the alert leaves the open set and memory, Get still finds
// it in KV), and an erasure (the alert leaves memory).
func TestFollowOtherInstance(t *testing.T) {
	clk := newClock()
	ctx := ctxT(t)
	a, b := runningPair(t, testenv.NATS(t), clk, nil, leads(false).Leads)
	res := testenv.ID("r")

	if err := a.Signal(ctx, sig(res, "spo2", "high")); err != nil {
		t.Fatal(err)
	}
	id := onlyAlert(t, a, res).ID
	testenv.WaitFor(t, 5*time.Second, "the raise on B", func() bool {
		l := b.List(Filter{ResidentID: res, Status: StatusOpen})
		return len(l) == 1 && l[0].ID == id && b.holds(id)
	})
	if got, err := b.Get(id); err != nil || got.Seq != 1 || got.Transition != TransitionRaised {
		t.Fatalf("B.Get = %+v, %v", got, err)
	}
	if _, err := a.Acknowledge(ctx, id, "u1", ""); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "the acknowledgement on B", func() bool {
		got, err := b.Get(id)
		return err == nil && got.Status == StatusAcknowledged && got.Seq == 2
	})
	if _, err := a.Resolve(ctx, id, "u1", OutcomeVisited, ""); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "the resolved alert out of B's memory", func() bool {
		return !b.holds(id) && len(b.List(Filter{ResidentID: res, Status: StatusAcknowledged})) == 0
	})
	if got, err := b.Get(id); err != nil || got.Status != StatusResolved || got.Seq != 3 {
		t.Fatalf("B.Get of the resolved alert = %+v, %v", got, err)
	}

	// An erasure on A: the purged key leaves B's memory.
	if err := a.Signal(ctx, sig(res, "glucose", "warning")); err != nil {
		t.Fatal(err)
	}
	id2 := latest(t, a, res).ID
	testenv.WaitFor(t, 5*time.Second, "the second raise on B", func() bool { return b.holds(id2) })
	if n, err := a.EraseResident(ctx, res); err != nil || n != 2 {
		t.Fatalf("erase: %d, %v", n, err)
	}
	testenv.WaitFor(t, 5*time.Second, "the erased alert out of B's memory", func() bool {
		return !b.holds(id2) && len(b.List(Filter{ResidentID: res})) == 0
	})
	if b.openCount.Load() != 0 {
		t.Fatalf("B counts %d open alerts after the erasure", b.openCount.Load())
	}
}

// TestAckOnStaleCopy: the leader A escalates an alert B's copy does not
// know of yet; B's acknowledgement is refused by KV, then decided again on
// the escalated record, with the next seq. A double action on a stale copy
// is the conflict a local one is. Each transition is published once, and
// both Managers end with the same record.
func TestAckOnStaleCopy(t *testing.T) {
	ea := newEnv(t)
	eb := envOn(t, ea.ns)
	clk := newClock()
	ctx := ctxT(t)
	sub := ea.subscribe(t, model.SubjectAlertsAll)
	a := ea.manager(t, Options{Clock: clk.Now})
	res := testenv.ID("r")
	if err := a.Signal(ctx, sig(res, "heart_rate", "critical")); err != nil {
		t.Fatal(err)
	}
	id := onlyAlert(t, a, res).ID
	b := eb.manager(t, Options{Clock: clk.Now, Leads: leads(false).Leads}) // loads the raise; B's Run is not running yet
	clk.Advance(CriticalStep)
	if err := a.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := b.Acknowledge(ctx, id, "u2", "on my way")
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != 3 || got.EscalationLevel != 2 || got.Status != StatusAcknowledged {
		t.Fatalf("acknowledged %+v, want seq 3 at level 2", got)
	}
	if n := b.staleWrites.Value(); n != 1 {
		t.Fatalf("%v stale writes, want 1", n)
	}
	want := id + ":raised:1 " + id + ":escalated:2 " + id + ":acknowledged:3"
	testenv.WaitFor(t, 5*time.Second, "3 transitions", func() bool { return sub.count() >= 3 })
	flush(t, eb, ea)
	if got := strings.Join(sub.ids(), " "); got != want {
		t.Fatalf("published %s, want %s", got, want)
	}
	if n := inStream(t, ea.js, model.AlertSubject(res, "critical")); n != 3 {
		t.Fatalf("CARE_ALERTS holds %d messages, want 3", n)
	}
	// A's copy (A's Run is not running) is still the escalated, open
	// alert. Acting on it meets B's writes in KV and ends as the same
	// action on a fresh copy would: ErrConflict, nothing published.
	if _, err := a.Acknowledge(ctx, id, "u1", ""); !errors.Is(err, ErrConflict) {
		t.Fatalf("A acknowledged an alert B had acknowledged: %v", err)
	}
	if _, err := b.Resolve(ctx, id, "u2", OutcomeVisited, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Resolve(ctx, id, "u1", OutcomeFalseAlarm, ""); !errors.Is(err, ErrConflict) {
		t.Fatalf("A resolved an alert B had resolved: %v", err)
	}
	if n := a.staleWrites.Value(); n != 2 {
		t.Fatalf("A found its copy stale %v times, want 2", n)
	}
	run(t, a)
	testenv.WaitFor(t, 5*time.Second, "A to agree with B", func() bool {
		ga, err := a.Get(id)
		return err == nil && ga.Seq == 4 && ga.Outcome == OutcomeVisited && !a.holds(id)
	})
	testenv.WaitFor(t, 5*time.Second, "4 transitions", func() bool { return sub.count() >= 4 })
	flush(t, eb, ea)
	if got := strings.Join(sub.ids(), " "); got != want+" "+id+":resolved:4" {
		t.Fatalf("published %s", got)
	}
}

// TestConcurrentAckAndEscalation races B's acknowledgements against the
// leader A's escalation of the same alerts. Whichever wins, every alert is
// acknowledged once, escalated at most once (never after the
// acknowledgement), its seqs are 1..n without gaps, each transition is
// published once, and both Managers agree on the final record.
func TestConcurrentAckAndEscalation(t *testing.T) {
	ea := newEnv(t)
	eb := envOn(t, ea.ns)
	clk := newClock()
	ctx := ctxT(t)
	sub := ea.subscribe(t, model.SubjectAlertsAll)
	a := ea.manager(t, Options{Clock: clk.Now, Leads: leads(true).Leads})
	b := eb.manager(t, Options{Clock: clk.Now, Leads: leads(false).Leads})
	run(t, a)
	run(t, b)
	const n = 8
	var ids []string
	for range n {
		res := testenv.ID("r")
		if err := a.Signal(ctx, sig(res, "heart_rate", "critical")); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, onlyAlert(t, a, res).ID)
	}
	testenv.WaitFor(t, 5*time.Second, "B to know every alert", func() bool {
		for _, id := range ids {
			if !b.holds(id) {
				return false
			}
		}
		return true
	})
	clk.Advance(CriticalStep)
	var wg sync.WaitGroup
	errs := make(chan error, n+1)
	wg.Add(2)
	go func() { defer wg.Done(); errs <- a.Tick(ctx) }()
	go func() {
		defer wg.Done()
		for _, id := range ids {
			if _, err := b.Acknowledge(ctx, id, "u2", ""); err != nil {
				errs <- fmt.Errorf("ack %s: %w", id, err)
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, id := range ids {
			ga, errA := a.Get(id)
			gb, errB := b.Get(id)
			t.Logf("%s A seq %d %s lvl %d (%v) B seq %d %s lvl %d (%v) msgs %v", id, ga.Seq, ga.Status, ga.EscalationLevel, errA, gb.Seq, gb.Status, gb.EscalationLevel, errB, idsOf(sub, id))
		}
		t.Logf("stale A %v B %v pending A %d B %d", a.staleWrites.Value(), b.staleWrites.Value(), a.pendingOut.Load(), b.pendingOut.Load())
	})
	testenv.WaitFor(t, 10*time.Second, "both Managers to agree", func() bool {
		for _, id := range ids {
			ga, errA := a.Get(id)
			gb, errB := b.Get(id)
			if errA != nil || errB != nil || ga.Seq != gb.Seq || ga.Status != StatusAcknowledged || gb.Status != StatusAcknowledged ||
				ga.EscalationLevel != gb.EscalationLevel || len(idsOf(sub, id)) != int(ga.Seq) {
				return false
			}
		}
		return true
	})
	flush(t, eb, ea)
	for _, id := range ids {
		got := idsOf(sub, id)
		final, _ := a.Get(id)
		want := []string{id + ":raised:1"}
		if final.EscalationLevel == 2 {
			want = append(want, id+":escalated:2")
		}
		want = append(want, fmt.Sprintf("%s:acknowledged:%d", id, len(want)+1))
		if strings.Join(got, " ") != strings.Join(want, " ") || final.Seq != uint64(len(want)) {
			t.Fatalf("alert %s: published %v, want %v (final seq %d, level %d)", id, got, want, final.Seq, final.EscalationLevel)
		}
	}
}

// TestOnlyLeaderEscalates: Tick on an instance that does not lead does
// nothing even when a step is due; when leadership moves, the new leader
// takes the due step exactly once and the old one no longer does.
func TestOnlyLeaderEscalates(t *testing.T) {
	ea := newEnv(t)
	eb := envOn(t, ea.ns)
	clk := newClock()
	ctx := ctxT(t)
	sub := ea.subscribe(t, model.SubjectAlertsAll)
	la, lb := leads(true), leads(false)
	a := ea.manager(t, Options{Clock: clk.Now, Leads: la.Leads})
	b := eb.manager(t, Options{Clock: clk.Now, Leads: lb.Leads})
	run(t, a)
	run(t, b)
	res := testenv.ID("r")
	if err := a.Signal(ctx, sig(res, "heart_rate", "critical")); err != nil {
		t.Fatal(err)
	}
	id := onlyAlert(t, a, res).ID
	testenv.WaitFor(t, 5*time.Second, "B to know the alert", func() bool { return b.holds(id) })
	clk.Advance(CriticalStep + time.Second)
	if err := b.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Get(id); got.EscalationLevel != 1 || got.Seq != 1 {
		t.Fatalf("a follower escalated: level %d seq %d", got.EscalationLevel, got.Seq)
	}

	la.v.Store(false)
	lb.v.Store(true)
	for range 3 {
		if err := a.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		if err := b.Tick(ctx); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, 5*time.Second, "A to follow B's escalation", func() bool {
		got, err := a.Get(id)
		return err == nil && got.EscalationLevel == 2 && got.Seq == 2
	})
	if err := a.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "the escalation message", func() bool { return sub.count() >= 2 })
	flush(t, eb, ea)
	if got, want := strings.Join(idsOf(sub, id), " "), id+":raised:1 "+id+":escalated:2"; got != want {
		t.Fatalf("published %s, want %s", got, want)
	}
}

// TestLeaderAdoptsStrandedOutbox: A stores a transition and dies before
// publishing it (its publishes fail, and it never runs again). B, a
// follower, leaves it to its author; once B leads it publishes it, once,
// and records the delivery.
func TestLeaderAdoptsStrandedOutbox(t *testing.T) {
	ea := newEnv(t)
	eb := envOn(t, ea.ns)
	clk := newClock()
	ctx := ctxT(t)
	sub := ea.subscribe(t, model.SubjectAlertsAll)
	broken := &failingJS{JetStream: ea.js, fail: true}
	a := ea.manager(t, Options{JS: broken, Clock: clk.Now, Leads: leads(false).Leads})
	lb := leads(false)
	b := eb.manager(t, Options{Clock: clk.Now, Leads: lb.Leads})
	b.adoptAfter, b.minRetryWait = 0, 20*time.Millisecond // no grace: only leadership decides
	run(t, b)
	res := testenv.ID("r")
	if err := a.Signal(ctx, sig(res, "spo2", "high")); err != nil {
		t.Fatal(err)
	}
	id := onlyAlert(t, a, res).ID
	testenv.WaitFor(t, 5*time.Second, "B to see the unsent transition", func() bool { return b.holds(id) && b.pendingOut.Load() == 1 })
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	flush(t, eb, ea)
	if sub.count() != 0 {
		t.Fatalf("a follower published another instance's transition: %v", sub.ids())
	}

	lb.v.Store(true)
	testenv.WaitFor(t, 5*time.Second, "the leader to publish it", func() bool { return sub.count() == 1 })
	testenv.WaitFor(t, 5*time.Second, "the delivery recorded", func() bool { return b.pendingOut.Load() == 0 })
	kv, err := ea.js.KeyValue(ctx, model.BucketAlerts)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := kv.Get(ctx, kvKey(id))
	if err != nil {
		t.Fatal(err)
	}
	var stored record
	if err := json.Unmarshal(entry.Value(), &stored); err != nil || len(stored.Outbox) != 0 {
		t.Fatalf("stored outbox after adoption: %+v (%v)", stored.Outbox, err)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	flush(t, eb, ea)
	if got := sub.ids(); len(got) != 1 || got[0] != id+":raised:1" {
		t.Fatalf("published %v, want %s:raised:1 once", got, id)
	}
}

// TestFollowAfterServerRestart restarts NATS under two running Managers:
// B watches the bucket again and follows what A writes after the restart.
func TestFollowAfterServerRestart(t *testing.T) {
	port, dir := testenv.FreePort(t), t.TempDir()
	ns := testenv.NATSAt(t, port, dir)
	clk := newClock()
	ctx := ctxT(t)
	a, b := runningPair(t, ns, clk, nil, leads(false).Leads)
	res := testenv.ID("r")
	if err := a.Signal(ctx, sig(res, "spo2", "high")); err != nil {
		t.Fatal(err)
	}
	id := onlyAlert(t, a, res).ID
	testenv.WaitFor(t, 5*time.Second, "the raise on B", func() bool { return b.holds(id) })

	ns.Shutdown()
	ns.WaitForShutdown()
	testenv.NATSAt(t, port, dir)
	testenv.WaitFor(t, 15*time.Second, "A to resolve after the restart", func() bool {
		_, err := a.Resolve(ctx, id, "u1", OutcomeFalseAlarm, "")
		return err == nil
	})
	testenv.WaitFor(t, 10*time.Second, "B to follow the resolution", func() bool { return !b.holds(id) })
	if err := a.Signal(ctx, sig(res, "spo2", "high")); err != nil {
		t.Fatal(err)
	}
	id2 := latest(t, a, res).ID
	testenv.WaitFor(t, 5*time.Second, "B to follow a raise after the restart", func() bool {
		got, err := b.Get(id2)
		return err == nil && got.Status == StatusOpen && b.holds(id2)
	})
}
