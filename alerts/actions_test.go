package alerts

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/carehub/carehub/alerts/escalation"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/testenv"
)

// TestCommentAndAssign: comments and assignment are stored on the alert in
// KV (a restarted Manager sees them), publish nothing of their own (the
// next transition is seq 2), and the assignee stays first among the
// recipients when the alert escalates.
func TestCommentAndAssign(t *testing.T) {
	e := newEnv(t)
	clk := newClock()
	m := e.manager(t, Options{Clock: clk.Now})
	ctx := ctxT(t)
	res := testenv.ID("r")
	if err := m.Chains().Put(ctx, escalation.Chain{ResidentID: res, Tiers: []escalation.Tier{
		{Role: escalation.RoleCaregiver, UserIDs: []string{"u1"}}, {Role: escalation.RoleBackup, UserIDs: []string{"u2"}}}}); err != nil {
		t.Fatal(err)
	}
	sub := e.subscribe(t, model.SubjectAlertsAll)
	if err := m.Signal(ctx, sig(res, "heart_rate", "high")); err != nil {
		t.Fatal(err)
	}
	id := onlyAlert(t, m, res).ID

	clk.Advance(time.Second)
	a, err := m.Comment(ctx, id, "u1", "phoned, no answer")
	if err != nil {
		t.Fatal(err)
	}
	last := a.Notes[len(a.Notes)-1]
	if last.Transition != NoteComment || last.By != "u1" || last.Text != "phoned, no answer" || !last.At.Equal(clk.Now().UTC()) {
		t.Fatalf("comment note: %+v", last)
	}
	if a.Seq != 1 || a.Transition != TransitionRaised || a.Status != StatusOpen {
		t.Fatalf("a comment changed the state: %+v", a)
	}
	a, err = m.Assign(ctx, id, "u1", "u7")
	if err != nil {
		t.Fatal(err)
	}
	if a.AssignedTo != "u7" || len(a.Recipients) != 2 || a.Recipients[0] != "u7" || a.Recipients[1] != "u1" {
		t.Fatalf("assign: to %q recipients %v", a.AssignedTo, a.Recipients)
	}
	if got, _ := m.Get(id); got.AssignedTo != "u7" || len(got.Notes) != 3 || got.Notes[2].Transition != NoteAssigned {
		t.Fatalf("get after assign: %+v", got)
	}

	// High alerts escalate at 5 min: the assignee is still told, first.
	clk.Advance(5 * time.Minute)
	if err := m.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	a, _ = m.Get(id)
	if a.EscalationLevel != 2 || strings.Join(a.Recipients, ",") != "u7,u1,u2" {
		t.Fatalf("after escalation: level %d recipients %v", a.EscalationLevel, a.Recipients)
	}
	testenv.WaitFor(t, 5*time.Second, "2 alert messages", func() bool { return sub.count() >= 2 })
	if got := strings.Join(sub.ids(), " "); got != id+":raised:1 "+id+":escalated:2" {
		t.Fatalf("published %s: a comment or assignment was published", got)
	}
	if pub := sub.alerts(t)[1]; pub.AssignedTo != "u7" || len(pub.Notes) != 4 {
		t.Fatalf("the escalation message lacks the assignment or notes: %+v", pub)
	}

	// A Manager started on the same KV has it all.
	m2 := e.manager(t, Options{Clock: clk.Now})
	got, err := m2.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if got.AssignedTo != "u7" || len(got.Notes) != 4 || got.Notes[1].Text != "phoned, no answer" {
		t.Fatalf("after restart: %+v", got)
	}

	// Revision-checked: m changed nothing since m2 loaded, so m2 may write;
	// then m's copy is stale: its write is refused by KV, and the comment
	// is added again to the fresh record, keeping m2's.
	if _, err := m2.Comment(ctx, id, "u2", "on my way"); err != nil {
		t.Fatal(err)
	}
	if got, err := m.Comment(ctx, id, "u1", "later"); err != nil || len(got.Notes) != 6 {
		t.Fatalf("comment on a stale copy: %+v, %v", got, err)
	}
	m3 := e.manager(t, Options{Clock: clk.Now})
	if got, _ := m3.Get(id); len(got.Notes) != 6 || got.Notes[4].Text != "on my way" || got.Notes[5].Text != "later" {
		t.Fatalf("stored notes: %+v", got.Notes)
	}
}

func TestActionErrors(t *testing.T) {
	e := newEnv(t)
	clk := newClock()
	m := e.manager(t, Options{Clock: clk.Now})
	ctx := ctxT(t)
	res := testenv.ID("r")
	if err := m.Signal(ctx, sig(res, "heart_rate", "warning")); err != nil {
		t.Fatal(err)
	}
	id := onlyAlert(t, m, res).ID
	for name, err := range map[string]error{
		"empty note":    second(m.Comment(ctx, id, "u1", "  ")),
		"long note":     second(m.Comment(ctx, id, "u1", strings.Repeat("x", MaxNoteBytes+1))),
		"bad author":    second(m.Comment(ctx, id, SystemActor, "x")),
		"bad assignee":  second(m.Assign(ctx, id, "u1", "Not An Id")),
		"no reason":     second(m.RecordSnooze(ctx, id, "u1", clk.Now().Add(time.Hour), "")),
		"snooze past":   second(m.RecordSnooze(ctx, id, "u1", clk.Now().Add(-time.Minute), "visit")),
		"unknown alert": second(m.Comment(ctx, "al-nope", "u1", "x")),
	} {
		want := ErrInvalid
		if name == "unknown alert" {
			want = ErrNotFound
		}
		if !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", name, err, want)
		}
	}

	a, err := m.RecordSnooze(ctx, id, "u1", clk.Now().Add(30*time.Minute), "known tachycardia")
	if err != nil {
		t.Fatal(err)
	}
	if a.Suppressed == nil || a.Suppressed.Mode != ModeSnooze || a.Suppressed.Reason != "known tachycardia" ||
		!a.Suppressed.Until.Equal(clk.Now().Add(30*time.Minute)) || a.Notes[len(a.Notes)-1].Transition != NoteSnoozed {
		t.Fatalf("snooze: %+v", a)
	}

	if err := m.Signal(ctx, sig(res, "spo2", "critical")); err != nil {
		t.Fatal(err)
	}
	var crit Alert
	for _, x := range m.List(Filter{ResidentID: res, Severity: "critical"}) {
		crit = x
	}
	if _, err := m.RecordSnooze(ctx, crit.ID, "u1", clk.Now().Add(time.Hour), "x"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("snoozing a critical alert: %v", err)
	}

	if _, err := m.Resolve(ctx, id, "u1", OutcomeVisited, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Assign(ctx, id, "u1", "u2"); !errors.Is(err, ErrConflict) {
		t.Fatalf("assigning a resolved alert: %v", err)
	}
	if _, err := m.Comment(ctx, id, "u1", "follow-up visit booked"); err != nil {
		t.Fatalf("commenting a resolved alert: %v", err)
	}

	// The notes history is bounded.
	for i := 0; ; i++ {
		_, err := m.Comment(ctx, id, "u1", "n")
		if errors.Is(err, ErrInvalid) {
			if a, _ := m.Get(id); len(a.Notes) != MaxNotes {
				t.Fatalf("refused at %d notes, want %d", len(a.Notes), MaxNotes)
			}
			break
		}
		if err != nil || i > MaxNotes {
			t.Fatalf("comment %d: %v", i, err)
		}
	}
}

func second(_ Alert, err error) error { return err }
