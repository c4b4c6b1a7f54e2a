package eval

import (
	"testing"
	"time"

	"github.com/carehub/carehub/alerts/rules"
)

// TestThresholdRules runs every threshold rule of domain.md's table through
// a sequence of readings at injected times: no raise before the persistence,
// the right band after it, escalation, and the hysteresis clear.
func TestThresholdRules(t *testing.T) {
	type step struct {
		at   time.Duration
		v    float64
		want string // "" none, a severity, or "clear"
	}
	m := time.Minute
	cases := []struct {
		name, metric, kind string
		set                rules.Settings
		steps              []step
	}{
		{"hr warning after 5 min, not before", "heart_rate", "wearable", rules.Settings{}, []step{
			{0, 95, ""}, {2 * m, 96, ""}, {4*m + 59*time.Second, 95, ""}, {5 * m, 95, "warning"}, {6 * m, 97, ""}}},
		{"hr escalates warning→high→critical", "heart_rate", "wearable", rules.Settings{}, []step{
			{0, 115, ""}, {4 * m, 112, ""}, {5 * m, 115, "high"}, {6 * m, 135, ""}, {10 * m, 140, ""}, {11 * m, 135, "critical"}}},
		{"hr high side first reaches warning band", "heart_rate", "wearable", rules.Settings{}, []step{
			{0, 95, ""}, {5 * m, 95, "warning"}, {6 * m, 115, ""}, {11 * m, 115, "high"}}},
		{"hr low bands", "heart_rate", "radar", rules.Settings{}, []step{
			{0, 45, ""}, {5 * m, 48, "high"}, {6 * m, 38, ""}, {11 * m, 40, "critical"}}},
		{"hr hysteresis: clears below 85 after 2 min", "heart_rate", "wearable", rules.Settings{}, []step{
			{0, 95, ""}, {5 * m, 95, "warning"}, {6 * m, 88, ""}, {7 * m, 84, ""}, {8 * m, 86, ""}, {9 * m, 84, ""}, {11 * m, 80, "clear"}}},
		{"hr severity stays at its peak until cleared", "heart_rate", "wearable", rules.Settings{}, []step{
			{0, 135, ""}, {5 * m, 135, "critical"}, {6 * m, 95, ""}, {12 * m, 95, ""}, {13 * m, 70, ""}, {15 * m, 70, "clear"}}},
		{"hr interrupted persistence restarts", "heart_rate", "wearable", rules.Settings{}, []step{
			{0, 95, ""}, {3 * m, 80, ""}, {4 * m, 95, ""}, {8 * m, 95, ""}, {9 * m, 95, "warning"}}},
		{"hr gap over 10 min restarts persistence", "heart_rate", "wearable", rules.Settings{}, []step{
			{0, 95, ""}, {11 * m, 95, ""}, {16 * m, 95, "warning"}}},
		{"hr stale or repeated reading ignored", "heart_rate", "wearable", rules.Settings{}, []step{
			{0, 95, ""}, {5 * m, 95, "warning"}, {4 * m, 60, ""}, {5 * m, 60, ""}}},
		{"hr override", "heart_rate", "wearable", rules.Settings{Limits: map[string]rules.Limit{"heart_rate": {
			Bands: []rules.Band{{Severity: "high", Op: ">=", Value: 100, For: time.Minute}}, ClearHigh: 90}}}, []step{
			{0, 100, ""}, {m, 101, "high"}, {2 * m, 90, "clear"}}},
		{"resp high 21-24", "resp_rate", "radar", rules.Settings{}, []step{{0, 22, ""}, {5 * m, 23, "high"}, {6 * m, 20, ""}, {8 * m, 18, "clear"}}},
		{"resp warning 9-11", "resp_rate", "radar", rules.Settings{}, []step{{0, 10, ""}, {5 * m, 11, "warning"}, {6 * m, 8, ""}, {11 * m, 8, "critical"}}},
		{"resp critical ≥25", "resp_rate", "radar", rules.Settings{}, []step{{0, 25, ""}, {5 * m, 30, "critical"}}},
		{"spo2 scale 1 bands", "spo2", "wearable", rules.Settings{}, []step{
			{0, 95, ""}, {5 * m, 95, "warning"}, {6 * m, 93, ""}, {11 * m, 92, "high"}, {12 * m, 91, ""}, {17 * m, 90, "critical"}}},
		{"spo2 scale 1 clears at 96", "spo2", "wearable", rules.Settings{}, []step{
			{0, 93, ""}, {5 * m, 93, "high"}, {6 * m, 95, ""}, {7 * m, 96, ""}, {9 * m, 97, "clear"}}},
		{"spo2 scale 2: 88-92 is the target", "spo2", "wearable", rules.Settings{SpO2Scale: 2}, []step{
			{0, 89, ""}, {5 * m, 88, ""}, {10 * m, 92, ""}}},
		{"spo2 scale 2 bands", "spo2", "wearable", rules.Settings{SpO2Scale: 2}, []step{
			{0, 87, ""}, {5 * m, 86, "warning"}, {6 * m, 85, ""}, {11 * m, 84, "high"}, {12 * m, 83, ""}, {17 * m, 80, "critical"}, {18 * m, 88, ""}, {20 * m, 89, "clear"}}},
		{"systolic ≤90 critical at once", "systolic_bp", "bp", rules.Settings{}, []step{{0, 88, "critical"}}},
		{"systolic 91-100 high at once", "systolic_bp", "bp", rules.Settings{}, []step{{0, 95, "high"}, {10 * m, 103, ""}, {20 * m, 106, "clear"}}},
		{"systolic ≥220 critical", "systolic_bp", "bp", rules.Settings{}, []step{{0, 225, "critical"}}},
		{"systolic ≥180 only on a repeat", "systolic_bp", "bp", rules.Settings{}, []step{{0, 185, ""}, {10 * m, 182, "high"}}},
		{"systolic ≥180 repeat next day is no repeat", "systolic_bp", "bp", rules.Settings{}, []step{{0, 185, ""}, {2 * time.Hour, 185, ""}}},
		{"diastolic ≥120 on a repeat", "diastolic_bp", "bp", rules.Settings{}, []step{{0, 125, ""}, {5 * m, 121, "high"}, {30 * m, 95, "clear"}}},
		{"temp >37.8 once", "body_temp", "wearable", rules.Settings{}, []step{{0, 37.9, "warning"}, {time.Hour, 37.3, ""}, {2 * time.Hour, 37.2, "clear"}}},
		{"temp >37.2 repeated", "body_temp", "wearable", rules.Settings{}, []step{{0, 37.5, ""}, {4 * time.Hour, 37.4, "warning"}}},
		{"temp ≥39.1 high, ≤35 critical", "body_temp", "wearable", rules.Settings{}, []step{{0, 39.1, "high"}, {time.Hour, 34.9, "critical"}}},
		{"glucose bands", "glucose", "glucometer", rules.Settings{}, []step{{0, 65, "high"}, {m, 50, "critical"}, {20 * m, 75, ""}, {30 * m, 85, "clear"}}},
		{"glucose >300 warning", "glucose", "glucometer", rules.Settings{}, []step{{0, 300, ""}, {m, 310, "warning"}}},
		{"room temp warning after 30 min", "room_temp", "env", rules.Settings{}, []step{
			{0, 27, ""}, {29 * m, 27, ""}, {30 * m, 26, "warning"}, {40 * m, 28, ""}, {70 * m, 29, "high"}, {80 * m, 25, "clear"}}},
		{"room temp cold", "room_temp", "env", rules.Settings{}, []step{{0, 17, ""}, {30 * m, 18, "warning"}, {40 * m, 15, ""}, {70 * m, 16, "high"}}},
		{"room temp heat wave raises to high", "room_temp", "env", rules.Settings{HeatWave: true}, []step{{0, 27, ""}, {30 * m, 27, "high"}}},
		{"humidity bands", "humidity", "env", rules.Settings{}, []step{
			{0, 72, ""}, {30 * m, 71, "warning"}, {40 * m, 80, ""}, {70 * m, 76, "high"}, {80 * m, 68, "clear"}}},
		{"humidity dry", "humidity", "env", rules.Settings{}, []step{{0, 28, ""}, {30 * m, 29, "warning"}, {40 * m, 20, ""}, {70 * m, 24, "high"}}},
		{"co2 >1000 for 15 min", "co2", "env", rules.Settings{}, []step{{0, 1000, ""}, {15 * m, 1100, ""}, {30 * m, 1200, "warning"}, {40 * m, 900, "clear"}}},
		{"pm2.5 >35", "pm2_5", "env", rules.Settings{}, []step{{0, 40, ""}, {30 * m, 36, "warning"}, {40 * m, 30, "clear"}}},
		{"co ≥50 for 15 min, ≥200 at once", "co", "co", rules.Settings{}, []step{
			{0, 60, ""}, {14 * m, 55, ""}, {15 * m, 50, "high"}, {16 * m, 210, "critical"}, {20 * m, 30, ""}, {30 * m, 20, "clear"}}},
		{"co ≥200 critical at once", "co", "co", rules.Settings{}, []step{{0, 250, "critical"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEval(t, settingsMap{res: tc.set})
			for i, s := range tc.steps {
				got := e.Reading(reading("d1", tc.kind, t0.Add(s.at), tc.metric, s.v), "")
				want := ""
				switch s.want {
				case "":
				case "clear":
					want = tc.metric + ":clear"
				default:
					want = tc.metric + ":" + s.want
				}
				expect(t, "step "+itoa(i)+" "+s.at.String(), got, want)
				for _, g := range got {
					if g.ResidentID != res || g.HomeID != "h1" || g.DeviceID != "d1" || g.Metric != tc.metric || g.Message == "" {
						t.Fatalf("step %d: signal %+v lacks ids, metric or message", i, g)
					}
					if g.Active && (g.Value != s.v || g.Threshold == 0) {
						t.Fatalf("step %d: value %g threshold %g, want value %g and a threshold", i, g.Value, g.Threshold, s.v)
					}
				}
			}
		})
	}
}

func itoa(i int) string { return string(rune('0'+i/10)) + string(rune('0'+i%10)) }

// TestRoomRulesPerDevice: two rooms do not mix their persistence, and the
// rule clears only when no room is out of range.
func TestRoomRulesPerDevice(t *testing.T) {
	e := newEval(t, nil)
	m := time.Minute
	for i := 0; i <= 30; i += 10 {
		expectNone := e.Reading(reading("bedroom", "env", t0.Add(time.Duration(i)*m), "room_temp", 27), "")
		e.Reading(reading("kitchen", "env", t0.Add(time.Duration(i)*m+time.Second), "room_temp", 22), "")
		if i < 30 {
			expect(t, "bedroom before 30 min", expectNone, "")
		} else {
			expect(t, "bedroom at 30 min", expectNone, "room_temp:warning")
			if expectNone[0].DeviceID != "bedroom" {
				t.Fatalf("device %q, want bedroom", expectNone[0].DeviceID)
			}
		}
	}
	// The kitchen is fine, the bedroom still warm: nothing clears.
	expect(t, "kitchen fine", e.Reading(reading("kitchen", "env", t0.Add(35*m), "room_temp", 21), ""), "")
	expect(t, "bedroom cooled", e.Reading(reading("bedroom", "env", t0.Add(36*m), "room_temp", 24), ""), "room_temp:clear")
}

// TestCOEvent: a detector's own alarm raises at once, at high, or critical
// for the ppm it reports; readings below the clear level clear it.
func TestCOEvent(t *testing.T) {
	e := newEval(t, nil)
	got := e.Event(event("co1", "co", "co", t0, ""))
	expect(t, "co event", got, "co:high")
	got = e.Event(event("co1", "co", "co", t0.Add(time.Minute), `{"ppm": 250}`))
	expect(t, "co event 250 ppm", got, "co:critical")
	if got[0].Value != 250 || got[0].Threshold != 200 {
		t.Fatalf("value %g threshold %g", got[0].Value, got[0].Threshold)
	}
	expect(t, "co reading low", e.Reading(reading("co1", "co", t0.Add(2*time.Minute), "co", 10), ""), "co:clear")
}

// Found by the alert-quality benchmark: residents whose sleeping pulse
// sits at 46–50 (common and benign at their age) paged "heart_rate high"
// most nights from the bed radar. In bed, the low-side high band is a
// warning; ≤ 40 stays critical; awake, 41–50 stays high.
func TestHeartRateLowWhileInBed(t *testing.T) {
	m := time.Minute
	e := newEval(t, nil)
	e.Reading(reading("bed", "bed", t0, "in_bed", 0), "")
	e.Reading(reading("bed", "bed", t0.Add(m), "in_bed", 1), "")
	var sigs []rules.Signal
	for i := 2; i <= 8; i++ {
		sigs = append(sigs, e.Reading(reading("rad", "radar", t0.Add(time.Duration(i)*m), "heart_rate", 48), "")...)
	}
	expect(t, "asleep at 48/min", only(sigs, rules.RuleHeartRate), "heart_rate:warning")
	sigs = nil
	for i := 9; i <= 15; i++ {
		sigs = append(sigs, e.Reading(reading("rad", "radar", t0.Add(time.Duration(i)*m), "heart_rate", 38), "")...)
	}
	expect(t, "asleep at 38/min", only(sigs, rules.RuleHeartRate), "heart_rate:critical")

	e2 := newEval(t, nil)
	sigs = nil
	for i := 0; i <= 6; i++ {
		sigs = append(sigs, e2.Reading(reading("w", "wearable", t0.Add(time.Duration(i)*m), "heart_rate", 48), "")...)
	}
	expect(t, "awake at 48/min", only(sigs, rules.RuleHeartRate), "heart_rate:high")
}
