package eval

import (
	"testing"
	"time"

	"github.com/carehub/carehub/alerts/rules"
)

// TestSnapshotRestore stops an evaluator mid-duration (a heart rate 3 min
// into its 5 min, a fall waiting for its cancel window, a night-exit watch,
// an open device condition, hours of inactivity) and shows a new evaluator
// restored from its snapshot finishing each as the first would have.
func TestSnapshotRestore(t *testing.T) {
	m := time.Minute
	loc := seoul(t)
	night := time.Date(2025, 3, 10, 23, 0, 0, 0, loc)
	set := settingsMap{}
	a := newEval(t, set)
	a.Reading(reading("pir", "motion", night.Add(-4*time.Hour), "motion", 1), "")
	a.Status(status("pir", "motion", night, true)) // alive, but nothing moved
	a.Status(status("env", "env", night.Add(-time.Hour), false))
	expect(t, "will grace passes", a.Tick(night.Add(-time.Hour+3*m)), "device_offline:high")
	a.Reading(reading("w", "wearable", night, "heart_rate", 115), "")
	a.Reading(reading("w", "wearable", night.Add(3*m), "heart_rate", 116), "")
	a.Event(event("w", "wearable", "fall", night.Add(3*m), ""))
	a.Event(event("door", "door", "door_open", night.Add(3*m), ""))
	snap, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}

	b := newEval(t, set)
	if err := b.Restore(snap); err != nil {
		t.Fatal(err)
	}
	expect(t, "persistence carried over", b.Reading(reading("w", "wearable", night.Add(5*m), "heart_rate", 117), ""), "heart_rate:high")
	got := b.Tick(night.Add(18 * m))
	// The Last Will's open condition is not raised twice; the fall and the
	// night exit complete; the motion sensor still reports hourly.
	expect(t, "tick", got, "night_exit:high fall:critical")
	// The last activity was the door, before the snapshot.
	expect(t, "inactivity before 8 h", only(b.Tick(night.Add(3*m+8*time.Hour-time.Second)), rules.RuleInactivity), "")
	expect(t, "inactivity kept", only(b.Tick(night.Add(3*m+8*time.Hour)), rules.RuleInactivity), "inactivity:info")
	expect(t, "offline clears", b.Status(status("env", "env", night.Add(9*time.Hour), true)), "device_offline:clear")

	// The same snapshot twice gives the same state.
	snap2, _ := a.Snapshot()
	if string(snap) != string(snap2) {
		t.Fatal("snapshot is not stable")
	}
}

func TestRestoreRejectsBadInput(t *testing.T) {
	e := newEval(t, nil)
	e.Reading(reading("w", "wearable", t0, "heart_rate", 115), "")
	for _, in := range []string{`nope`, `{"version":99,"residents":{}}`, `{"version":1,"residents":{"r1":null}}`} {
		if err := e.Restore([]byte(in)); err == nil {
			t.Fatalf("Restore(%s) accepted", in)
		}
	}
	// State unchanged: the 5 min persistence still completes.
	expect(t, "unchanged", e.Reading(reading("w", "wearable", t0.Add(5*time.Minute), "heart_rate", 115), ""), "heart_rate:high")
}
