package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/alerts/escalation"
	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/testenv"
)

// TestLifecycle walks the lifecycle of domain.md against a real NATS: each
// case is a sequence of steps on a fresh resident, then the alert it left.
func TestLifecycle(t *testing.T) {
	e := newEnv(t)
	clk := newClock()
	m := e.manager(t, Options{Clock: clk.Now})

	type step struct {
		signal  *rules.Signal // Active or not
		advance time.Duration
		ack     string
		resolve string // outcome
		wantErr error
	}
	const R = "RES" // replaced by the case's resident
	act := func(sev string) step { s := sig(R, "heart_rate", sev); return step{signal: &s} }
	actRule := func(rule, sev string) step { s := sig(R, rule, sev); return step{signal: &s} }
	clr := func(rule string) step { s := clearSig(R, rule); return step{signal: &s} }
	cases := []struct {
		name                      string
		steps                     []step
		wantStatus, wantTrans     string
		wantSeverity, wantOutcome string
		wantOcc                   int
		wantAlerts                int
	}{
		{"raise", []step{act("warning")}, StatusOpen, TransitionRaised, "warning", "", 1, 1},
		{"repeat", []step{act("warning"), act("warning")}, StatusOpen, TransitionRepeated, "warning", "", 2, 1},
		{"upgrade", []step{act("warning"), act("high")}, StatusOpen, TransitionRepeated, "high", "", 2, 1},
		{"no downgrade", []step{act("high"), act("warning")}, StatusOpen, TransitionRepeated, "high", "", 2, 1},
		{"auto-clear non-critical", []step{act("high"), clr("heart_rate")}, StatusResolved, TransitionAutoCleared, "high", OutcomeAutoCleared, 1, 1},
		{"raise again after auto-clear", []step{act("warning"), clr("heart_rate"), act("warning")}, StatusOpen, TransitionRaised, "warning", "", 1, 2},
		{"critical not auto-cleared", []step{act("critical"), clr("heart_rate")}, StatusOpen, TransitionRaised, "critical", "", 1, 1},
		{"sos cancelled within 30 s", []step{actRule("sos", "critical"), {advance: 20 * time.Second}, clr("sos")}, StatusResolved, TransitionAutoCleared, "critical", OutcomeAutoCleared, 1, 1},
		{"sos cancelled too late", []step{actRule("sos", "critical"), {advance: 31 * time.Second}, clr("sos")}, StatusOpen, TransitionRaised, "critical", "", 1, 1},
		{"acknowledged not auto-cleared", []step{act("warning"), {ack: "u1"}, clr("heart_rate")}, StatusAcknowledged, TransitionAcknowledged, "warning", "", 1, 1},
		{"clear with nothing open", []step{clr("heart_rate")}, "", "", "", "", 0, 0},
		{"ack", []step{act("critical"), {ack: "u1"}}, StatusAcknowledged, TransitionAcknowledged, "critical", "", 1, 1},
		{"repeat while acknowledged", []step{act("high"), {ack: "u1"}, act("high")}, StatusAcknowledged, TransitionRepeated, "high", "", 2, 1},
		{"double ack", []step{act("critical"), {ack: "u1"}, {ack: "u2", wantErr: ErrConflict}}, StatusAcknowledged, TransitionAcknowledged, "critical", "", 1, 1},
		{"ack by invalid user", []step{act("critical"), {ack: "Bad User", wantErr: ErrInvalid}}, StatusOpen, TransitionRaised, "critical", "", 1, 1},
		{"resolve", []step{act("critical"), {ack: "u1"}, {resolve: OutcomeVisited}}, StatusResolved, TransitionResolved, "critical", OutcomeVisited, 1, 1},
		{"resolve without ack", []step{act("high"), {resolve: OutcomeOKByPhone}}, StatusResolved, TransitionResolved, "high", OutcomeOKByPhone, 1, 1},
		{"resolve resolved", []step{act("high"), {resolve: OutcomeFalseAlarm}, {resolve: OutcomeVisited, wantErr: ErrConflict}}, StatusResolved, TransitionResolved, "high", OutcomeFalseAlarm, 1, 1},
		{"ack resolved", []step{act("high"), {resolve: OutcomeFalseAlarm}, {ack: "u1", wantErr: ErrConflict}}, StatusResolved, TransitionResolved, "high", OutcomeFalseAlarm, 1, 1},
		{"bad outcome", []step{act("high"), {resolve: "fine", wantErr: ErrInvalid}}, StatusOpen, TransitionRaised, "high", "", 1, 1},
		{"auto_cleared is not a person's outcome", []step{act("high"), {resolve: OutcomeAutoCleared, wantErr: ErrInvalid}}, StatusOpen, TransitionRaised, "high", "", 1, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			res := testenv.ID("r")
			for i, st := range tc.steps {
				var err error
				switch {
				case st.signal != nil:
					s := *st.signal
					s.ResidentID = res
					err = m.Signal(ctx, s)
				case st.advance > 0:
					clk.Advance(st.advance)
				case st.ack != "":
					_, err = m.Acknowledge(ctx, latest(t, m, res).ID, st.ack, "on my way")
				case st.resolve != "":
					_, err = m.Resolve(ctx, latest(t, m, res).ID, "u1", st.resolve, "")
				}
				if (st.wantErr == nil) != (err == nil) || (st.wantErr != nil && !errors.Is(err, st.wantErr)) {
					t.Fatalf("step %d: err = %v, want %v", i, err, st.wantErr)
				}
			}
			all := m.List(Filter{ResidentID: res})
			if len(all) != tc.wantAlerts {
				t.Fatalf("%d alerts, want %d", len(all), tc.wantAlerts)
			}
			if tc.wantAlerts == 0 {
				return
			}
			a := all[0]
			if a.Status != tc.wantStatus || a.Transition != tc.wantTrans || a.Severity != tc.wantSeverity ||
				a.Outcome != tc.wantOutcome || a.Occurrences != tc.wantOcc {
				t.Fatalf("got status=%s transition=%s severity=%s outcome=%q occurrences=%d, want %s %s %s %q %d",
					a.Status, a.Transition, a.Severity, a.Outcome, a.Occurrences,
					tc.wantStatus, tc.wantTrans, tc.wantSeverity, tc.wantOutcome, tc.wantOcc)
			}
			if want := int(a.Seq) - (a.Occurrences - 1); len(a.Notes) != want {
				t.Fatalf("seq %d, %d occurrences, but %d notes: every transition but a repeat records who and when", a.Seq, a.Occurrences, len(a.Notes))
			}
			if last := a.Notes[len(a.Notes)-1]; a.Transition != TransitionRepeated && (last.Transition != a.Transition || last.At != a.UpdatedAt) {
				t.Fatalf("last note %+v for transition %s", last, a.Transition)
			}
			got, err := m.Get(a.ID)
			if err != nil || got.Seq != a.Seq {
				t.Fatalf("Get = %+v, %v", got, err)
			}
		})
	}
	if _, err := m.Get("al-nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get unknown: %v", err)
	}
	if _, err := m.Acknowledge(ctxT(t), "al-nope", "u1", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Acknowledge unknown: %v", err)
	}
	if _, err := m.Resolve(ctxT(t), "al-nope", "u1", OutcomeVisited, ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Resolve unknown: %v", err)
	}
	if err := m.Signal(ctxT(t), sig("r1", "heart_rate", "severe")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Signal with unknown severity: %v", err)
	}
}

func latest(t *testing.T, m *Manager, res string) Alert {
	t.Helper()
	as := m.List(Filter{ResidentID: res, Limit: 1})
	if len(as) == 0 {
		t.Fatalf("no alert for %s", res)
	}
	return as[0]
}

// TestListFilterOrder checks List's filters and newest-first order.
func TestListFilterOrder(t *testing.T) {
	e := newEnv(t)
	clk := newClock()
	m := e.manager(t, Options{Clock: clk.Now})
	ctx := ctxT(t)
	res := testenv.ID("r")
	for i, rule := range []string{"spo2", "heart_rate", "glucose"} {
		sev := []string{"warning", "high", "critical"}[i]
		if err := m.Signal(ctx, sig(res, rule, sev)); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
	}
	got := m.List(Filter{ResidentID: res})
	if len(got) != 3 || got[0].Rule != "glucose" || got[2].Rule != "spo2" {
		t.Fatalf("order: %+v", got)
	}
	if got := m.List(Filter{ResidentID: res, Severity: "high"}); len(got) != 1 || got[0].Rule != "heart_rate" {
		t.Fatalf("severity filter: %+v", got)
	}
	if _, err := m.Acknowledge(ctx, got[0].ID, "u1", ""); err != nil {
		t.Fatal(err)
	}
	if got := m.List(Filter{ResidentID: res, Status: StatusOpen}); len(got) != 2 {
		t.Fatalf("status filter: %+v", got)
	}
	if got := m.List(Filter{ResidentID: res, Limit: 2}); len(got) != 2 {
		t.Fatalf("limit: %d", len(got))
	}
}

// TestTransitionsPublished: a plain nats.go subscriber on care.alerts.>
// receives raised → escalated (after the clock moved 60 s) → acknowledged →
// resolved, each with Nats-Msg-Id {alert_id}:{transition}:{seq} and the
// contract's JSON fields; the InfluxDB writer makes one point of each; the
// CARE_ALERTS stream keeps them for phones that were offline.
func TestTransitionsPublished(t *testing.T) {
	e := newEnv(t)
	clk := newClock()
	pts := &lineStore{}
	e.startWriter(t, pts)
	m := e.manager(t, Options{Clock: clk.Now})
	ctx := ctxT(t)
	sub := e.subscribe(t, model.SubjectAlertsAll)
	res := testenv.ID("r")

	if err := m.Signal(ctx, sig(res, "heart_rate", "critical")); err != nil {
		t.Fatal(err)
	}
	id := onlyAlert(t, m, res).ID
	clk.Advance(60 * time.Second)
	if err := m.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Acknowledge(ctx, id, "u1", "calling"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(10 * time.Minute)
	if _, err := m.Resolve(ctx, id, "u1", OutcomeOKByPhone, "fine"); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "4 alert messages", func() bool { return sub.count() >= 4 })
	want := []string{id + ":raised:1", id + ":escalated:2", id + ":acknowledged:3", id + ":resolved:4"}
	if got := sub.ids(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("Nats-Msg-Id = %v, want %v", got, want)
	}
	for _, msg := range sub.all() {
		if msg.Subject != model.AlertSubject(res, "critical") {
			t.Fatalf("subject %s", msg.Subject)
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(msg.Data, &raw); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"id", "resident_id", "home_id", "device_id", "rule", "severity", "status", "transition",
			"message", "metric", "value", "threshold", "occurrences", "escalation_level", "raised_at", "updated_at",
			"acknowledged_at", "acknowledged_by", "resolved_at", "resolved_by", "outcome"} {
			if _, ok := raw[f]; !ok {
				t.Fatalf("alert JSON lacks %q: %s", f, msg.Data)
			}
		}
	}
	as := sub.alerts(t)
	if as[1].EscalationLevel != 2 || as[2].Status != StatusAcknowledged || as[2].AcknowledgedBy != "u1" ||
		as[3].Outcome != OutcomeOKByPhone || as[3].ResolvedAt == nil {
		t.Fatalf("published alerts: %+v", as)
	}

	// The stream keeps them; and the same transition published again is
	// dropped by the stream's duplicate window (what makes the outbox safe).
	str, err := e.js.Stream(ctx, model.StreamAlerts)
	if err != nil {
		t.Fatal(err)
	}
	info, err := str.Info(ctx, jetstream.WithSubjectFilter(model.AlertSubject(res, "critical")))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Subjects[model.AlertSubject(res, "critical")]; n != 4 {
		t.Fatalf("CARE_ALERTS holds %d messages for the resident, want 4", n)
	}

	testenv.WaitFor(t, 10*time.Second, "the writer acked the transitions", func() bool { return e.writerSettled(t) })
	lines := pts.Lines()
	if len(lines) != 4 {
		t.Fatalf("%d points, want 4: %v", len(lines), lines)
	}
	raised := clk.Now().Add(-10*time.Minute - 60*time.Second)
	wantLine := fmt.Sprintf("alerts,resident_id=%s,rule=heart_rate,severity=critical,transition=escalated seconds_since_raised=60,value=135 %d",
		res, raised.Add(60*time.Second).UnixMilli())
	if lines[1] != wantLine {
		t.Fatalf("point\n got %s\nwant %s", lines[1], wantLine)
	}
	re := regexp.MustCompile(`^alerts,resident_id=[a-z0-9_-]+,rule=\w+,severity=\w+,transition=\w+ seconds_since_raised=[0-9.e+-]+,value=[0-9.e+-]+ \d+$`)
	for _, l := range lines {
		if !re.MatchString(l) {
			t.Fatalf("bad line protocol %q", l)
		}
	}
}

// TestEscalationSteps checks the schedule of domain.md with the default
// five-tier chain (critical: 60 s, then evenly to the top at 3 min; 119 at
// the top), a stored four-tier chain (every 60 s), high (5 and 15 min),
// warning (never), and that acknowledgement stops the chain.
func TestEscalationSteps(t *testing.T) {
	e := newEnv(t)
	clk := newClock()
	m := e.manager(t, Options{Clock: clk.Now})
	ctx := ctxT(t)
	em := e.subscribe(t, model.SubjectEmergencyAll)

	level := func(res string) int { return onlyAlert(t, m, res).EscalationLevel }
	at := func(start time.Time, d time.Duration) {
		t.Helper()
		clk.Advance(start.Add(d).Sub(clk.Now()))
		if err := m.Tick(ctx); err != nil {
			t.Fatal(err)
		}
	}

	crit, high, warn, acked := testenv.ID("c"), testenv.ID("h"), testenv.ID("w"), testenv.ID("a")
	t0 := clk.Now()
	for _, s := range []rules.Signal{sig(crit, "spo2", "critical"), sig(high, "spo2", "high"), sig(warn, "spo2", "warning"), sig(acked, "spo2", "critical")} {
		if err := m.Signal(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Acknowledge(ctx, onlyAlert(t, m, acked).ID, "u1", ""); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		at   time.Duration
		crit int
		high int
	}{
		{59 * time.Second, 1, 1}, {60 * time.Second, 2, 1}, {99 * time.Second, 2, 1}, {100 * time.Second, 3, 1},
		{140 * time.Second, 4, 1}, {179 * time.Second, 4, 1}, {180 * time.Second, 5, 1},
		{299 * time.Second, 5, 1}, {5 * time.Minute, 5, 2}, {15*time.Minute - time.Second, 5, 2},
		{15 * time.Minute, 5, 3}, {2 * time.Hour, 5, 3},
	}
	for _, st := range steps {
		at(t0, st.at)
		if c, h := level(crit), level(high); c != st.crit || h != st.high {
			t.Fatalf("at %s: critical level %d high level %d, want %d %d", st.at, c, h, st.crit, st.high)
		}
		if st.at == 140*time.Second && em.count() != 0 {
			t.Fatal("119 notified before the top tier")
		}
	}
	if level(warn) != 1 || level(acked) != 1 {
		t.Fatalf("warning level %d, acknowledged level %d: neither escalates", level(warn), level(acked))
	}
	if a := onlyAlert(t, m, crit); a.Seq != 5 || a.Tier != escalation.RoleEmergency {
		t.Fatalf("critical: seq %d tier %s, want 5 escalations-and-raise at the emergency tier", a.Seq, a.Tier)
	}
	testenv.WaitFor(t, 5*time.Second, "the 119 subject", func() bool { return em.count() == 1 })
	msg := em.all()[0]
	if msg.Subject != model.EmergencySubject(crit) || !strings.HasSuffix(msg.Header.Get(jetstream.MsgIDHeader), ":escalated:5") {
		t.Fatalf("119 message %s %v", msg.Subject, msg.Header)
	}

	// A stored chain of four tiers steps every 60 s and names its users.
	four := testenv.ID("f")
	if err := m.Chains().Put(ctx, escalation.Chain{ResidentID: four, Tiers: []escalation.Tier{
		{Role: escalation.RoleCaregiver, UserIDs: []string{"cw1"}}, {Role: escalation.RoleBackup, UserIDs: []string{"cw2"}},
		{Role: escalation.RoleGuardian, UserIDs: []string{"g1"}}, {Role: escalation.RoleEmergency},
	}}); err != nil {
		t.Fatal(err)
	}
	t1 := clk.Now()
	if err := m.Signal(ctx, sig(four, "fall", "critical")); err != nil {
		t.Fatal(err)
	}
	if a := onlyAlert(t, m, four); strings.Join(a.Recipients, ",") != "cw1" || a.Tier != escalation.RoleCaregiver {
		t.Fatalf("raised to %v (%s)", a.Recipients, a.Tier)
	}
	for i, want := range []int{2, 3, 4} {
		at(t1, time.Duration(i+1)*time.Minute)
		if got := level(four); got != want {
			t.Fatalf("four tiers at %d min: level %d, want %d", i+1, got, want)
		}
	}
	if a := onlyAlert(t, m, four); strings.Join(a.Recipients, ",") != "cw1,cw2,g1" {
		t.Fatalf("recipients at the top: %v", a.Recipients)
	}
	if err := m.Chains().Put(ctx, escalation.Chain{ResidentID: four, Tiers: []escalation.Tier{{Role: escalation.RoleEmergency}, {Role: escalation.RoleCaregiver}}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("emergency before caregiver accepted: %v", err)
	}
}

// TestAllTiers: smoke, gas and SOS raise at the top level at once; 119 gets
// the raise, and nothing escalates after.
func TestAllTiers(t *testing.T) {
	e := newEnv(t)
	clk := newClock()
	m := e.manager(t, Options{Clock: clk.Now})
	ctx := ctxT(t)
	em := e.subscribe(t, model.SubjectEmergencyAll)
	res := testenv.ID("r")
	s := sig(res, "smoke", "critical")
	s.AllTiers = true
	if err := m.Signal(ctx, s); err != nil {
		t.Fatal(err)
	}
	a := onlyAlert(t, m, res)
	if a.EscalationLevel != 5 || a.Tier != escalation.RoleEmergency || a.Transition != TransitionRaised {
		t.Fatalf("AllTiers raise: level %d tier %s transition %s", a.EscalationLevel, a.Tier, a.Transition)
	}
	testenv.WaitFor(t, 5*time.Second, "119 raise", func() bool { return em.count() == 1 })
	if id := em.ids()[0]; id != a.ID+":raised:1" {
		t.Fatalf("119 Nats-Msg-Id %s", id)
	}
	clk.Advance(time.Hour)
	if err := m.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if got := onlyAlert(t, m, res); got.Seq != 1 {
		t.Fatalf("an AllTiers alert escalated further: seq %d", got.Seq)
	}
	// A high alert that turns into an AllTiers one goes to the top too.
	res2 := testenv.ID("r")
	if err := m.Signal(ctx, sig(res2, "co", "high")); err != nil {
		t.Fatal(err)
	}
	s2 := sig(res2, "co", "critical")
	s2.AllTiers = true
	if err := m.Signal(ctx, s2); err != nil {
		t.Fatal(err)
	}
	if a := onlyAlert(t, m, res2); a.EscalationLevel != 5 || a.Severity != "critical" {
		t.Fatalf("upgrade to AllTiers: %+v", a)
	}
	testenv.WaitFor(t, 5*time.Second, "119 upgrade", func() bool { return em.count() == 2 })
}

// TestRestartMidEscalation stops a Manager with an open critical alert
// between two escalation steps and starts a new one on the same NATS: the
// next step fires exactly once, when due; the same signal after the restart
// repeats the alert instead of raising a second one.
func TestRestartMidEscalation(t *testing.T) {
	e := newEnv(t)
	clk := newClock()
	ctx := ctxT(t)
	sub := e.subscribe(t, model.SubjectAlertsAll)
	res := testenv.ID("r")
	t0 := clk.Now()

	m1 := e.manager(t, Options{Clock: clk.Now})
	if err := m1.Signal(ctx, sig(res, "heart_rate", "critical")); err != nil {
		t.Fatal(err)
	}
	clk.Advance(60 * time.Second)
	if err := m1.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	clk.Advance(30 * time.Second) // t0+90s: next step due at t0+100s
	m1 = nil                      // the process is gone; only KV and the stream remain

	m2 := e.manager(t, Options{Clock: clk.Now})
	if err := m2.Signal(ctx, sig(res, "heart_rate", "critical")); err != nil {
		t.Fatal(err)
	}
	a := onlyAlert(t, m2, res)
	if a.Transition != TransitionRepeated || a.Occurrences != 2 || a.EscalationLevel != 2 {
		t.Fatalf("after restart: %s occurrences %d level %d, want repeated 2 at level 2", a.Transition, a.Occurrences, a.EscalationLevel)
	}
	for _, d := range []time.Duration{90 * time.Second, 99 * time.Second, 100 * time.Second, 100 * time.Second, 101 * time.Second, 139 * time.Second} {
		clk.Advance(t0.Add(d).Sub(clk.Now()))
		if err := m2.Tick(ctx); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, 5*time.Second, "4 transitions", func() bool { return sub.count() >= 4 })
	id := a.ID
	want := []string{id + ":raised:1", id + ":escalated:2", id + ":repeated:3", id + ":escalated:4"}
	if got := sub.ids(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("Nats-Msg-Id = %v, want %v", got, want)
	}
	if got := sub.alerts(t)[3]; got.EscalationLevel != 3 || !got.UpdatedAt.Equal(t0.Add(100*time.Second)) {
		t.Fatalf("step after restart: level %d at %s, want 3 at t0+100s", got.EscalationLevel, got.UpdatedAt.Sub(t0))
	}
}

// TestOutboxAfterCrash: the transition is stored but its publish fails (as
// if the process died between the two). A new Manager publishes it once, with
// the same Nats-Msg-Id; delivered transitions are not sent again.
func TestOutboxAfterCrash(t *testing.T) {
	e := newEnv(t)
	clk := newClock()
	ctx := ctxT(t)
	sub := e.subscribe(t, model.SubjectAlertsAll)
	res := testenv.ID("r")

	pts := &lineStore{}
	e.startWriter(t, pts)
	broken := &failingJS{JetStream: e.js, fail: true}
	m1 := e.manager(t, Options{JS: broken, Clock: clk.Now})
	if err := m1.Signal(ctx, sig(res, "spo2", "high")); err != nil {
		t.Fatalf("a failed publish must not fail the signal once stored: %v", err)
	}
	if err := m1.Flush(ctx); err == nil {
		t.Fatal("Flush reported success while NATS fails")
	}
	if sub.count() != 0 {
		t.Fatal("published through a broken connection")
	}

	m2 := e.manager(t, Options{Clock: clk.Now})
	if err := m2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "the outbox publish", func() bool { return sub.count() == 1 })
	a := onlyAlert(t, m2, res)
	if got := sub.ids()[0]; got != a.ID+":raised:1" {
		t.Fatalf("Nats-Msg-Id %s", got)
	}
	testenv.WaitFor(t, 10*time.Second, "its point", func() bool { return len(pts.Lines()) == 1 })
	// Delivered: a third start sends nothing more.
	m3 := e.manager(t, Options{Clock: clk.Now})
	if err := m3.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the writer acked the stream", func() bool { return e.writerSettled(t) })
	if sub.count() != 1 || len(pts.Lines()) != 1 {
		t.Fatalf("delivered transition sent again: %d messages, %d points", sub.count(), len(pts.Lines()))
	}
}

// TestPublishRetry: while NATS refuses publishes, transitions wait in the
// outbox (stored in KV); Run publishes them in seq order once it is back,
// and empties the stored outbox. An alert is never dropped on a transient
// fault.
func TestPublishRetry(t *testing.T) {
	e := newEnv(t)
	clk := newClock()
	ctx := ctxT(t)
	sub := e.subscribe(t, model.SubjectAlertsAll)
	broken := &failingJS{JetStream: e.js, fail: true}
	m := e.manager(t, Options{JS: broken, Clock: clk.Now})
	res := testenv.ID("r")
	if err := m.Signal(ctx, sig(res, "spo2", "high")); err != nil {
		t.Fatal(err)
	}
	if err := m.Signal(ctx, sig(res, "spo2", "high")); err != nil {
		t.Fatal(err)
	}
	if n := m.pendingOut.Load(); n != 2 {
		t.Fatalf("%d transitions waiting, want 2", n)
	}
	m.minRetryWait = 10 * time.Millisecond
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Run(runCtx) }()
	testenv.WaitFor(t, 5*time.Second, "a failed retry", func() bool { return m.pubErrors.With("nats").Value() >= 3 })
	broken.mu.Lock()
	broken.fail = false
	broken.mu.Unlock()
	testenv.WaitFor(t, 10*time.Second, "both transitions published", func() bool { return sub.count() == 2 })
	testenv.WaitFor(t, 5*time.Second, "an empty outbox", func() bool { return m.pendingOut.Load() == 0 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	id := onlyAlert(t, m, res).ID
	if got, want := strings.Join(sub.ids(), " "), id+":raised:1 "+id+":repeated:2"; got != want {
		t.Fatalf("Nats-Msg-Id = %s, want %s", got, want)
	}
	kv, err := e.js.KeyValue(ctx, model.BucketAlerts)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := kv.Get(ctx, kvKey(id))
	if err != nil {
		t.Fatal(err)
	}
	var stored record
	if err := json.Unmarshal(entry.Value(), &stored); err != nil || len(stored.Outbox) != 0 {
		t.Fatalf("stored outbox after delivery: %+v (%v)", stored.Outbox, err)
	}
}

// TestTransitionTouchesKVTwice: a transition that is published at once is
// written to KV twice, before the publish (so the causing message may be
// acked) and after it (so a restart does not publish it again); nothing
// waits for InfluxDB, whose point the writer takes from the stream.
func TestTransitionTouchesKVTwice(t *testing.T) {
	e := newEnv(t)
	clk := newClock()
	ctx := ctxT(t)
	m := e.manager(t, Options{Clock: clk.Now})
	res := testenv.ID("r")
	if err := m.Signal(ctx, sig(res, "spo2", "high")); err != nil {
		t.Fatal(err)
	}
	if err := m.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	kv, err := e.js.KeyValue(ctx, model.BucketAlerts)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The bucket's stream counts every write; History 1 keeps only the last.
	info := st.(*jetstream.KeyValueBucketStatus).StreamInfo()
	if writes := info.State.LastSeq; writes != 2 {
		t.Fatalf("%d KV writes for one delivered transition, want 2", writes)
	}
}

// TestSuppression: a quiet-mode resident's high alert is raised and
// published with the suppression (the audit), but does not escalate until
// the suppression ends; a critical alert escalates regardless.
func TestSuppression(t *testing.T) {
	e := newEnv(t)
	clk := newClock()
	ctx := ctxT(t)
	set := &fakeSettings{}
	m := e.manager(t, Options{Clock: clk.Now, Settings: set})
	res := testenv.ID("r")
	set.set(res, &Suppression{Mode: ModeQuiet, Reason: "nurse visit", By: "n1"})
	if err := m.Signal(ctx, sig(res, "spo2", "high")); err != nil {
		t.Fatal(err)
	}
	if err := m.Signal(ctx, sig(res, "heart_rate", "critical")); err != nil {
		t.Fatal(err)
	}
	find := func(rule string) Alert {
		for _, a := range m.List(Filter{ResidentID: res}) {
			if a.Rule == rule {
				return a
			}
		}
		t.Fatalf("no %s alert", rule)
		return Alert{}
	}
	if a := find("spo2"); a.Suppressed == nil || a.Suppressed.Mode != ModeQuiet {
		t.Fatalf("suppression not recorded: %+v", a.Suppressed)
	}
	if a := find("heart_rate"); a.Suppressed != nil {
		t.Fatal("critical alert suppressed")
	}
	clk.Advance(6 * time.Minute)
	if err := m.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if a := find("spo2"); a.EscalationLevel != 1 {
		t.Fatalf("suppressed alert escalated to %d", a.EscalationLevel)
	}
	if a := find("heart_rate"); a.EscalationLevel != 5 {
		t.Fatalf("critical alert at level %d after 6 min", a.EscalationLevel)
	}
	set.set(res, nil)
	if err := m.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if a := find("spo2"); a.EscalationLevel != 2 || a.Suppressed != nil {
		t.Fatalf("after the suppression ended: level %d suppressed %v", a.EscalationLevel, a.Suppressed)
	}
}

// influxPoints is a writer.Store posting to a real InfluxDB's v2 write
// API (InfluxDB 1.8: bucket = db/autogen), as the production writer does.
type influxPoints struct{ url, bucket string }

func (p influxPoints) WriteLines(ctx context.Context, lines []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		p.url+"/api/v2/write?precision=ms&bucket="+url.QueryEscape(p.bucket), bytes.NewReader(lines))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("influx write: %s: %s", resp.Status, b)
	}
	return nil
}

// TestAlertPointsInInfluxDB: the alerts measurement of contract §2, as a
// real InfluxDB stores it through the writer: tags resident_id, rule,
// severity, transition; fields value and seconds_since_raised; one point
// per transition, at distinct times (the acknowledgement in the same
// millisecond as the escalation lands a millisecond later).
func TestAlertPointsInInfluxDB(t *testing.T) {
	in := testenv.SharedInflux(t)
	db := in.CreateDB(t)
	e := newEnv(t)
	clk := newClock()
	ctx := ctxT(t)
	e.startWriter(t, influxPoints{url: in.URL, bucket: db + "/autogen"})
	m := e.manager(t, Options{Clock: clk.Now})
	res := testenv.ID("r")
	if err := m.Signal(ctx, sig(res, "heart_rate", "critical")); err != nil {
		t.Fatal(err)
	}
	clk.Advance(60 * time.Second)
	if err := m.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Acknowledge(ctx, onlyAlert(t, m, res).ID, "u1", ""); err != nil {
		t.Fatal(err)
	}
	if err := m.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the writer acked the transitions", func() bool { return e.writerSettled(t) })
	out := in.QueryDB(t, db, `SELECT "transition", "severity", "rule", "value", "seconds_since_raised" FROM "alerts" WHERE "resident_id" = '`+res+`'`)
	var r struct {
		Results []struct {
			Series []struct {
				Values [][]any `json:"values"`
			} `json:"series"`
		} `json:"results"`
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.UseNumber() // times in ms print as integers
	if err := dec.Decode(&r); err != nil || len(r.Results) != 1 || len(r.Results[0].Series) != 1 {
		t.Fatalf("query answer %s (%v)", out, err)
	}
	var got []string
	for _, v := range r.Results[0].Series[0].Values {
		got = append(got, strings.TrimSpace(fmt.Sprintln(v...)))
	}
	ms := clk.Now().Add(-60 * time.Second).UnixMilli()
	want := []string{
		fmt.Sprintf("%d raised critical heart_rate 135 0", ms),
		fmt.Sprintf("%d escalated critical heart_rate 135 60", ms+60_000),
		fmt.Sprintf("%d acknowledged critical heart_rate 135 60", ms+60_001),
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("points %q, want %q", got, want)
	}
}

// TestLoadsOutboxOfEarlierVersion: a record stored by a version that kept
// published transitions until InfluxDB had their points loads without
// them: only the unpublished one is published, and the stored outbox ends
// empty.
func TestLoadsOutboxOfEarlierVersion(t *testing.T) {
	e := newEnv(t)
	clk := newClock()
	ctx := ctxT(t)
	sub := e.subscribe(t, model.SubjectAlertsAll)
	res := testenv.ID("r")
	// The buckets exist once a Manager has started.
	e.manager(t, Options{Clock: clk.Now})
	a := Alert{ID: "al-0000000000a-00000000", ResidentID: res, Rule: "spo2", Severity: "high", Status: StatusOpen,
		Transition: TransitionRepeated, Seq: 2, RaisedAt: clk.Now(), UpdatedAt: clk.Now()}
	data, _ := json.Marshal(a)
	old := map[string]any{"alert": a, "last_point_ms": clk.Now().UnixMilli() + 1, "outbox": []map[string]any{
		{"seq": 1, "msg_id": a.ID + ":raised:1", "subject": model.AlertSubject(res, "high"), "data": json.RawMessage(data), "line": "alerts,...", "published": true},
		{"seq": 2, "msg_id": a.ID + ":repeated:2", "subject": model.AlertSubject(res, "high"), "data": json.RawMessage(data), "line": "alerts,..."},
	}}
	b, _ := json.Marshal(old)
	kv, err := e.js.KeyValue(ctx, model.BucketAlerts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(ctx, kvKey(a.ID), b); err != nil {
		t.Fatal(err)
	}
	m := e.manager(t, Options{Clock: clk.Now})
	if err := m.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "the unpublished transition", func() bool { return sub.count() >= 1 })
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(sub.ids(), " "); got != a.ID+":repeated:2" {
		t.Fatalf("published %s, want only the repeat", got)
	}
	entry, err := kv.Get(ctx, kvKey(a.ID))
	if err != nil {
		t.Fatal(err)
	}
	var stored record
	if err := json.Unmarshal(entry.Value(), &stored); err != nil || len(stored.Outbox) != 0 {
		t.Fatalf("stored outbox %+v (%v)", stored.Outbox, err)
	}
}
