package writer

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/testenv"
)

// testAlert is an alert transition as the alert manager publishes it: the
// contract's Alert JSON (the fields the point needs and a few more).
type testAlert struct {
	ID         string    `json:"id"`
	ResidentID string    `json:"resident_id"`
	DeviceID   string    `json:"device_id"`
	Rule       string    `json:"rule"`
	Severity   string    `json:"severity"`
	Status     string    `json:"status"`
	Transition string    `json:"transition"`
	Value      float64   `json:"value"`
	RaisedAt   time.Time `json:"raised_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	Seq        uint64    `json:"seq"`
}

// publishAlert publishes a on its subject with Nats-Msg-Id and, when
// pointMs is not zero, the point-time header; msgID "" leaves the id out
// (a transition republished after the stream's duplicate window).
func publishAlert(t *testing.T, js jetstream.JetStream, subject string, a testAlert, msgID string, pointMs int64) {
	t.Helper()
	msg := nats.NewMsg(subject)
	msg.Data, _ = json.Marshal(a)
	if msgID != "" {
		msg.Header.Set(jetstream.MsgIDHeader, msgID)
	}
	if pointMs != 0 {
		msg.Header.Set(model.HeaderPointTime, strconv.FormatInt(pointMs, 10))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
}

// alertRows returns a resident's points of the alerts measurement in time
// order, each as "ms transition severity rule value seconds_since_raised".
func alertRows(t *testing.T, in *testenv.Influx, db, residentID string) []string {
	t.Helper()
	out := in.QueryDB(t, db, `SELECT "transition", "severity", "rule", "value", "seconds_since_raised" FROM "alerts" WHERE "resident_id" = '`+residentID+`'`)
	var r struct {
		Results []struct {
			Series []struct {
				Values [][]any `json:"values"`
			} `json:"series"`
		} `json:"results"`
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.UseNumber() // times in ms print as integers
	if err := dec.Decode(&r); err != nil || len(r.Results) != 1 {
		t.Fatalf("query answer %s (%v)", out, err)
	}
	var rows []string
	for _, s := range r.Results[0].Series {
		for _, v := range s.Values {
			rows = append(rows, strings.TrimSpace(fmt.Sprintln(v...)))
		}
	}
	return rows
}

// TestWriterStoresAlertTransitions: the writer consumes CARE_ALERTS and
// stores each transition as one point of the alerts measurement (contract
// §2) in a real InfluxDB, at the time of its point-time header (updated_at
// without one), with seconds_since_raised from raised_at to updated_at. A
// transition delivered or republished again is the same point; two
// transitions in one millisecond stay two points; a forged or an erased
// resident's transition is dropped, and one that makes no point is
// dead-lettered.
func TestWriterStoresAlertTransitions(t *testing.T) {
	js, _ := writerJS(t)
	in := testenv.SharedInflux(t)
	store, db := openWriterInflux(t, in)
	erased := &erasedSet{ids: map[string]bool{}}
	w, _ := startWriter(t, Options{JS: js, Store: store, BatchSize: 100, BatchInterval: 20 * time.Millisecond, Erased: erased.Erased})

	res, other, gone := testenv.ID("r"), testenv.ID("r"), testenv.ID("r")
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second).UTC() // within the database's retention
	ms := t0.UnixMilli()
	a := testAlert{ID: "al-1", ResidentID: res, DeviceID: "wear-1", Rule: "heart_rate", Severity: "critical",
		Status: "open", Value: 135, RaisedAt: t0}
	subject := model.AlertSubject(res, "critical")
	step := func(transition string, seq uint64, updated time.Time, pointMs int64) testAlert {
		a.Transition, a.Seq, a.UpdatedAt = transition, seq, updated
		publishAlert(t, js, subject, a, fmt.Sprintf("%s:%s:%d", a.ID, transition, seq), pointMs)
		return a
	}
	raised := step("raised", 1, t0, ms)
	step("escalated", 2, t0.Add(time.Minute), ms+60_000)
	// Two steps due at one tick: the manager moved the second point on a
	// millisecond, so it does not overwrite the first.
	step("escalated", 3, t0.Add(time.Minute), ms+60_001)
	// Published without the header (another publisher): updated_at.
	step("acknowledged", 4, t0.Add(90*time.Second+500*time.Millisecond), 0)
	// The raise again, past the stream's duplicate window: the same point.
	publishAlert(t, js, subject, raised, "", ms)

	// Not stored: a body of another resident than its subject, a subject
	// of another severity, an erased resident's transition.
	publishAlert(t, js, model.AlertSubject(other, "critical"), raised, "forged-1", ms)
	publishAlert(t, js, model.AlertSubject(res, "info"), raised, "forged-2", ms)
	erased.add(gone)
	g := raised
	g.ResidentID = gone
	publishAlert(t, js, model.AlertSubject(gone, "critical"), g, "gone-1", ms)
	// No point: an unreadable header, a transition without a rule.
	msg := nats.NewMsg(subject)
	msg.Data, _ = json.Marshal(raised)
	msg.Header.Set(model.HeaderPointTime, "yesterday")
	if _, err := js.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	norule := raised
	norule.Rule = ""
	publishAlert(t, js, subject, norule, "no-rule", ms)

	testenv.WaitFor(t, 20*time.Second, "every alert message acked", func() bool { return writerSettled(t, js, model.StreamAlerts) })
	got := alertRows(t, in, db, res)
	want := []string{
		fmt.Sprintf("%d raised critical heart_rate 135 0", ms),
		fmt.Sprintf("%d escalated critical heart_rate 135 60", ms+60_000),
		fmt.Sprintf("%d escalated critical heart_rate 135 60", ms+60_001),
		fmt.Sprintf("%d acknowledged critical heart_rate 135 90.5", ms+90_500),
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("points\n got %q\nwant %q", got, want)
	}
	for _, id := range []string{other, gone} {
		if rows := alertRows(t, in, db, id); len(rows) != 0 {
			t.Errorf("points of %s: %q", id, rows)
		}
	}
	if got := w.dropped.With(model.StreamAlerts, DropSubjectMismatch).Value(); got != 2 {
		t.Errorf("subject_mismatch drops = %v, want 2", got)
	}
	if got := w.dropped.With(model.StreamAlerts, DropErasedResident).Value(); got != 1 {
		t.Errorf("erased_resident drops = %v, want 1", got)
	}
	for _, dl := range fetchDeadLetters(t, js, 2) {
		if dl.Reason != DeadReasonNotPoint || dl.Stream != model.StreamAlerts {
			t.Errorf("dead letter %+v", dl)
		}
	}
}
