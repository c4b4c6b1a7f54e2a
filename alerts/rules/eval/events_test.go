package eval

import (
	"testing"
	"time"

	"github.com/carehub/carehub/alerts/rules"
)

func TestSOS(t *testing.T) {
	s := time.Second
	cases := []struct {
		name     string
		cancelAt time.Duration
		want     string
	}{
		{"cancel within 30 s auto-clears", 20 * s, "sos:clear"},
		{"cancel at exactly 30 s auto-clears", 30 * s, "sos:clear"},
		{"cancel after 30 s changes nothing", 31 * s, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEval(t, nil)
			got := e.Event(event("btn", "sos", "sos", t0, ""))
			expect(t, "press", got, "sos:critical")
			if !got[0].AllTiers || got[0].DeviceID != "btn" {
				t.Fatalf("sos signal %+v: want AllTiers and DeviceID btn", got[0])
			}
			expect(t, "cancel", e.Event(event("btn", "sos", "sos_cancel", t0.Add(tc.cancelAt), "")), tc.want)
		})
	}
	t.Run("second press repeats", func(t *testing.T) {
		e := newEval(t, nil)
		e.Event(event("btn", "sos", "sos", t0, ""))
		expect(t, "again", e.Event(event("btn", "sos", "sos", t0.Add(time.Minute), "")), "sos:critical")
	})
}

func TestSmokeGasLeak(t *testing.T) {
	cases := []struct {
		typ, want string
		allTiers  bool
	}{
		{"smoke", "smoke:critical", true},
		{"gas", "gas:critical", true},
		{"water_leak", "water_leak:warning", false},
		{"tamper", "", false},
	}
	for _, tc := range cases {
		e := newEval(t, nil)
		got := e.Event(event("det", "smoke", tc.typ, t0, ""))
		expect(t, tc.typ, got, tc.want)
		if len(got) > 0 && got[0].AllTiers != tc.allTiers {
			t.Fatalf("%s: AllTiers %v, want %v", tc.typ, got[0].AllTiers, tc.allTiers)
		}
	}
}

func TestFall(t *testing.T) {
	s := time.Second
	t.Run("not cancelled: critical from the tick 60 s later", func(t *testing.T) {
		e := newEval(t, nil)
		expect(t, "fall", e.Event(event("w", "wearable", "fall", t0, "")), "")
		expect(t, "tick 59s", only(e.Tick(t0.Add(59*s)), rules.RuleFall), "")
		got := only(e.Tick(t0.Add(60*s)), rules.RuleFall)
		expect(t, "tick 60s", got, "fall:critical")
		if got[0].DeviceID != "w" {
			t.Fatalf("device %q", got[0].DeviceID)
		}
		expect(t, "once", only(e.Tick(t0.Add(90*s)), rules.RuleFall), "")
	})
	t.Run("cancelled within 60 s: nothing", func(t *testing.T) {
		e := newEval(t, nil)
		e.Event(event("w", "wearable", "fall", t0, ""))
		expect(t, "cancel", e.Event(event("w", "wearable", "fall_cancel", t0.Add(45*s), "")), "")
		expect(t, "tick", only(e.Tick(t0.Add(2*time.Minute)), rules.RuleFall), "")
	})
	t.Run("cancel after 60 s is too late", func(t *testing.T) {
		e := newEval(t, nil)
		e.Event(event("w", "wearable", "fall", t0, ""))
		e.Event(event("w", "wearable", "fall_cancel", t0.Add(61*s), ""))
		expect(t, "tick", only(e.Tick(t0.Add(62*s)), rules.RuleFall), "fall:critical")
	})
}

func TestSnoozeAndDisable(t *testing.T) {
	m := time.Minute
	set := settingsMap{res: {Snoozed: map[string]rules.Snooze{"heart_rate": {Until: t0.Add(20 * m), Reason: "known tachycardia"}}}}
	e := newEval(t, set)
	e.Reading(reading("w", "wearable", t0, "heart_rate", 115), "")
	expect(t, "snoozed high", e.Reading(reading("w", "wearable", t0.Add(5*m), "heart_rate", 115), ""), "")
	expect(t, "still snoozed", only(e.Tick(t0.Add(19*m)), rules.RuleHeartRate), "")
	expect(t, "snooze over", only(e.Tick(t0.Add(20*m)), rules.RuleHeartRate), "heart_rate:high")

	// Critical is never held back by a snooze.
	e2 := newEval(t, settingsMap{res: {Snoozed: map[string]rules.Snooze{"heart_rate": {Until: t0.Add(time.Hour), Reason: "x"}}}})
	e2.Reading(reading("w", "wearable", t0, "heart_rate", 140), "")
	expect(t, "critical through snooze", e2.Reading(reading("w", "wearable", t0.Add(5*m), "heart_rate", 140), ""), "heart_rate:critical")

	// Disabling an open rule clears it at the next tick; a disabled rule
	// raises nothing.
	set2 := settingsMap{}
	e3 := newEval(t, set2)
	e3.Event(event("det", "smoke", "water_leak", t0, ""))
	e3.Reading(reading("w", "wearable", t0, "heart_rate", 115), "")
	expect(t, "raise", e3.Reading(reading("w", "wearable", t0.Add(5*m), "heart_rate", 115), ""), "heart_rate:high")
	set2[res] = rules.Settings{Disabled: map[string]bool{"heart_rate": true, "water_leak": true}}
	expect(t, "disabled clears", only(e3.Tick(t0.Add(6*m)), rules.RuleHeartRate), "heart_rate:clear")
	expect(t, "disabled raises nothing", e3.Reading(reading("w", "wearable", t0.Add(7*m), "heart_rate", 140), ""), "")
	expect(t, "disabled event", e3.Event(event("det", "smoke", "water_leak", t0.Add(8*m), "")), "")
}

// A cancel counts only from the device that raised the alert: a second
// button (or a forged cancel from another device of the home) cannot clear
// an SOS or stop a fall's countdown (issue 9 item 11).
func TestCancelOnlyFromTheRaisingDevice(t *testing.T) {
	e := newEval(t, nil)
	expect(t, "press", e.Event(event("btn", "sos", "sos", t0, "")), "sos:critical")
	expect(t, "cancel from the wearable", e.Event(event("w", "wearable", "sos_cancel", t0.Add(5*time.Second), "")), "")
	expect(t, "cancel from the button", e.Event(event("btn", "sos", "sos_cancel", t0.Add(10*time.Second), "")), "sos:clear")

	e.Event(event("w", "wearable", "fall", t0, ""))
	e.Event(event("radar", "radar", "fall_cancel", t0.Add(10*time.Second), ""))
	expect(t, "fall cancelled by another device", only(e.Tick(t0.Add(61*time.Second)), rules.RuleFall), "fall:critical")

	e.Event(event("w", "wearable", "fall", t0.Add(time.Hour), ""))
	e.Event(event("w", "wearable", "fall_cancel", t0.Add(time.Hour+10*time.Second), ""))
	expect(t, "fall cancelled by its wearable", only(e.Tick(t0.Add(time.Hour+61*time.Second)), rules.RuleFall), "")
}

// An event older than StaleEventAge when it reaches carehub (queued through
// an outage, or replayed) is history: no SOS, smoke, gas or fall alert, no
// night-exit watch. It still counts as the device being seen.
func TestStaleEventRaisesNothing(t *testing.T) {
	e := newEval(t, nil)
	arrived := t0.Add(StaleEventAge + time.Second)
	var sigs []rules.Signal
	for _, ev := range []struct{ dev, kind, typ string }{
		{"btn", "sos", "sos"}, {"det", "smoke", "smoke"}, {"gas", "gas", "gas"}, {"w", "wearable", "fall"}, {"door", "door", "door_open"},
	} {
		sigs = append(sigs, e.EventAt(event(ev.dev, ev.kind, ev.typ, t0, ""), arrived)...)
	}
	sigs = append(sigs, e.Tick(arrived.Add(20*time.Minute))...)
	for _, s := range sigs {
		if s.Active && s.Rule != rules.RuleInactivity {
			t.Fatalf("stale event raised %s:%s", s.Rule, s.Severity)
		}
	}
	// Five minutes old at arrival is still news.
	expect(t, "5 min old", e.EventAt(event("btn", "sos", "sos", t0.Add(time.Hour), ""), t0.Add(time.Hour+StaleEventAge)), "sos:critical")
}
