package eval

import (
	"testing"
	"time"

	"github.com/carehub/carehub/alerts/rules"
)

func TestDeviceOfflineByMissedReports(t *testing.T) {
	h := time.Hour
	e := newEval(t, nil)
	e.Reading(reading("env1", "env", t0, "room_temp", 21), "") // expected every 10 min
	expect(t, "30 min", e.Tick(t0.Add(30*time.Minute)), "")
	got := e.Tick(t0.Add(30*time.Minute + time.Second))
	expect(t, "3 missed", got, "device_offline:high")
	if got[0].DeviceID != "env1" || got[0].HomeID != "h1" {
		t.Fatalf("signal %+v", got[0])
	}
	expect(t, "once", e.Tick(t0.Add(h)), "")
	expect(t, "reports again", e.Reading(reading("env1", "env", t0.Add(2*h), "room_temp", 21), ""), "device_offline:clear")

	// A per-device override of the interval.
	e2 := newEval(t, settingsMap{res: {ReportIntervals: map[string]time.Duration{"env1": h}}})
	e2.Reading(reading("env1", "env", t0, "room_temp", 21), "")
	expect(t, "override 2h", e2.Tick(t0.Add(2*h)), "")
	expect(t, "override 3h+", e2.Tick(t0.Add(3*h+time.Second)), "device_offline:high")
}

func TestDeviceOfflineByLastWill(t *testing.T) {
	e := newEval(t, nil)
	e.Reading(reading("w", "wearable", t0, "heart_rate", 70), "")
	expect(t, "last will", e.Status(status("w", "wearable", t0.Add(time.Minute), false)), "")
	expect(t, "within the grace", e.Tick(t0.Add(2*time.Minute)), "")
	expect(t, "not back after 2 min", e.Tick(t0.Add(3*time.Minute)), "device_offline:high")
	expect(t, "still offline on tick", e.Tick(t0.Add(4*time.Minute)), "")
	expect(t, "online", e.Status(status("w", "wearable", t0.Add(5*time.Minute), true)), "device_offline:clear")

	// A retained Last Will older than the device's latest report is stale.
	e.Reading(reading("w", "wearable", t0.Add(10*time.Minute), "heart_rate", 70), "")
	expect(t, "stale will", e.Status(status("w", "wearable", t0.Add(9*time.Minute), false)), "")
}

func TestCannotMonitor(t *testing.T) {
	e := newEval(t, nil)
	e.Reading(reading("pir", "motion", t0, "motion", 1), "")
	e.Reading(reading("radar", "radar", t0, "presence", 1), "")
	e.Reading(reading("env", "env", t0, "room_temp", 21), "")
	e.Status(status("pir", "motion", t0.Add(time.Minute), false))
	expect(t, "one motion device down", e.Tick(t0.Add(3*time.Minute)), "device_offline:high")
	e.Status(status("radar", "radar", t0.Add(3*time.Minute), false))
	expect(t, "both down", e.Tick(t0.Add(5*time.Minute)), "device_offline:high cannot_monitor:high")
	expect(t, "one back", e.Reading(reading("radar", "radar", t0.Add(6*time.Minute), "presence", 1), ""), "device_offline:clear cannot_monitor:clear")
	// Out of battery counts as down.
	expect(t, "radar out of battery", e.Status(status("radar", "radar", t0.Add(7*time.Minute), true, 3)),
		"low_battery:info cannot_monitor:high")
	expect(t, "battery replaced", e.Status(status("radar", "radar", t0.Add(8*time.Minute), true, 100)),
		"low_battery:clear cannot_monitor:clear")
}

func TestRegistryDevices(t *testing.T) {
	e := newEval(t, nil)
	e.SetDevices(res, []DeviceInfo{{ID: "door", Kind: "door", HomeID: "h1"}, {ID: "scale", Kind: "scale", HomeID: "h1"}})
	expect(t, "first tick", e.Tick(t0), "")
	// A door contact that never reported is offline after 3 h, and it is
	// the home's only motion-type sensor.
	got := e.Tick(t0.Add(3*time.Hour + time.Second))
	expect(t, "never reported", got, "device_offline:high cannot_monitor:high")
	if got[0].DeviceID != "door" || got[0].HomeID != "h1" {
		t.Fatalf("signal %+v", got[0])
	}
	// Removed from the registry: its conditions end.
	e.SetDevices(res, []DeviceInfo{{ID: "scale", Kind: "scale", HomeID: "h1"}})
	expect(t, "removed", e.Tick(t0.Add(4*time.Hour)), "device_offline:clear cannot_monitor:clear")
}

func TestLowBattery(t *testing.T) {
	e := newEval(t, nil)
	steps := []struct {
		pct  float64
		want string
	}{{25, ""}, {19, "low_battery:info"}, {18, ""}, {22, ""}, {25, "low_battery:clear"}, {20, ""}}
	for i, s := range steps {
		got := e.Status(status("btn", "sos", t0.Add(time.Duration(i)*time.Minute), true, s.pct))
		expect(t, "battery "+itoa(int(s.pct)), got, s.want)
	}
	expect(t, "battery_pct reading", e.Reading(reading("btn", "sos", t0.Add(time.Hour), "battery_pct", 10), ""), "low_battery:info")
}

func TestWearableNotWorn(t *testing.T) {
	m := time.Minute
	e := newEval(t, nil)
	e.Reading(reading("ring", "wearable", t0, "heart_rate", 70), "")
	var got []rules.Signal
	// The ring stays online (steps, battery) but measures no heart rate.
	for at := 30 * m; at <= 12*time.Hour+30*m; at += 30 * m {
		e.Reading(reading("ring", "wearable", t0.Add(at-m), "steps", 10), "")
		sigs := e.Tick(t0.Add(at))
		if at <= 12*time.Hour {
			expect(t, "tick "+at.String(), sigs, "")
		} else {
			got = sigs
		}
	}
	expect(t, "over 12 h", got, "wearable_not_worn:info")
	expect(t, "worn", e.Reading(reading("ring", "wearable", t0.Add(13*time.Hour), "heart_rate", 72), ""), "wearable_not_worn:clear")

	// An offline wearable is the offline rule's, not "not worn".
	e2 := newEval(t, nil)
	e2.Reading(reading("ring", "wearable", t0, "heart_rate", 70), "")
	expect(t, "silent ring", e2.Tick(t0.Add(13*time.Hour)), "device_offline:high")
}

// A gateway that drops its connection and is back 3 s later: its Last Will
// must not page (issue 10 item 2). Nor must the dropped home's "cannot
// monitor".
func TestLastWillReconnectWithinGrace(t *testing.T) {
	e := newEval(t, nil)
	e.Reading(reading("pir", "motion", t0, "motion", 1), "")
	var sigs []rules.Signal
	sigs = append(sigs, e.Status(status("pir", "motion", t0.Add(time.Minute), false))...)
	sigs = append(sigs, e.Tick(t0.Add(time.Minute+time.Second))...)
	sigs = append(sigs, e.Status(status("pir", "motion", t0.Add(time.Minute+3*time.Second), true))...)
	for s := 2; s <= 10; s++ {
		sigs = append(sigs, e.Tick(t0.Add(time.Duration(s)*time.Minute))...)
	}
	expect(t, "reconnect after 3 s", sigs, "")
}

// Silence of an SOS button or a smoke, gas or CO detector matters more: its
// Will pages after 30 s, a motion sensor's after 2 min; the grace is the
// device_offline limit's window.
func TestLastWillGraceByKind(t *testing.T) {
	e := newEval(t, nil)
	for _, k := range []string{"sos", "smoke", "motion"} {
		e.Status(status(k+"1", k, t0, true))
		e.Status(status(k+"1", k, t0.Add(time.Second), false))
	}
	expect(t, "29 s", e.Tick(t0.Add(30*time.Second)), "")
	got := e.Tick(t0.Add(31 * time.Second))
	expect(t, "31 s", got, "device_offline:high device_offline:high")
	if got[0].DeviceID != "sos1" || got[1].DeviceID != "smoke1" {
		t.Fatalf("devices %s, %s", got[0].DeviceID, got[1].DeviceID)
	}
	expect(t, "1 min 59 s", e.Tick(t0.Add(2*time.Minute)), "")
	expect(t, "2 min", e.Tick(t0.Add(2*time.Minute+time.Second)), "device_offline:high cannot_monitor:high")

	long := rules.Limit{Count: 3, Window: 10 * time.Minute}
	e2 := newEval(t, settingsMap{res: {Limits: map[string]rules.Limit{rules.RuleDeviceOffline: long}}})
	e2.Status(status("sos1", "sos", t0, true))
	e2.Status(status("sos1", "sos", t0, false))
	expect(t, "override: 2 min 29 s", e2.Tick(t0.Add(2*time.Minute+29*time.Second)), "")
	expect(t, "override: 2 min 30 s", e2.Tick(t0.Add(2*time.Minute+30*time.Second)), "device_offline:high")
}
