package eval

import (
	"testing"
	"time"

	"github.com/carehub/carehub/alerts/rules"
)

func TestNEWS2Rule(t *testing.T) {
	cases := []struct {
		name  string
		scale int
		vals  []any
		want  string
		total float64
	}{
		{"total 6 → high", 1, []any{"resp_rate", 22, "spo2", 95, "systolic_bp", 105, "heart_rate", 95, "body_temp", 38.5}, "news2:high", 6},
		{"total 8 → critical", 1, []any{"resp_rate", 26, "spo2", 91, "heart_rate", 120}, "news2:critical", 8},
		{"single parameter 3 → high", 1, []any{"resp_rate", 14, "spo2", 97, "systolic_bp", 88}, "news2:high", 3},
		{"total 4 → nothing", 1, []any{"resp_rate", 22, "spo2", 95, "heart_rate", 95}, "", 0},
		{"two parameters are no score", 1, []any{"heart_rate", 135, "spo2", 90}, "", 0},
		{"scale 2: SpO2 89 scores 0", 2, []any{"resp_rate", 14, "spo2", 89, "heart_rate", 70}, "", 0},
		{"scale 1: SpO2 89 scores 3", 1, []any{"resp_rate", 14, "spo2", 89, "heart_rate", 70}, "news2:high", 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEval(t, settingsMap{res: {SpO2Scale: tc.scale}})
			expect(t, "first reading", only(e.Reading(reading("w", "wearable", t0, tc.vals...), ""), rules.RuleNEWS2), "")
			got := only(e.Reading(reading("w", "wearable", t0.Add(5*time.Minute), tc.vals...), ""), rules.RuleNEWS2)
			expect(t, "held 5 min", got, tc.want)
			if len(got) == 1 && got[0].Value != tc.total {
				t.Fatalf("total %g, want %g", got[0].Value, tc.total)
			}
		})
	}
}

func TestNEWS2StaleAndClear(t *testing.T) {
	e := newEval(t, nil)
	// Two vitals two hours ago and one now: only one is fresh, no score.
	e.Reading(reading("r", "radar", t0, "resp_rate", 26), "")
	e.Reading(reading("w", "wearable", t0.Add(time.Second), "spo2", 91), "")
	expect(t, "stale", only(e.Reading(reading("w", "wearable", t0.Add(2*time.Hour), "heart_rate", 120), ""), rules.RuleNEWS2), "")

	at := t0.Add(3 * time.Hour)
	e.Reading(reading("w", "wearable", at.Add(-5*time.Minute), "resp_rate", 26, "spo2", 91, "heart_rate", 120), "")
	got := only(e.Reading(reading("w", "wearable", at, "resp_rate", 26, "spo2", 91, "heart_rate", 120), ""), rules.RuleNEWS2)
	expect(t, "fresh", got, "news2:critical")
	expect(t, "total 5 stays open", only(e.Reading(reading("w", "wearable", at.Add(time.Minute), "resp_rate", 22, "spo2", 93, "heart_rate", 95), ""), rules.RuleNEWS2), "")
	expect(t, "total 3 clears", only(e.Reading(reading("w", "wearable", at.Add(2*time.Minute), "resp_rate", 22, "spo2", 97, "heart_rate", 95), ""), rules.RuleNEWS2), "news2:clear")
}

// An SpO2 of 89 between normal readings scores 3 in NEWS2, but it did not
// persist: the spo2 rule ignores it, and NEWS2 must too, even while the
// bed radar keeps refreshing pulse and respiration every minute (issue 10
// item 1: it paged at once).
func TestNEWS2OneReadingDoesNotPage(t *testing.T) {
	e := newEval(t, nil)
	var sigs []rules.Signal
	for m := 0; m <= 20; m++ {
		at := t0.Add(time.Duration(m) * time.Minute)
		sigs = append(sigs, e.Reading(reading("rad", "radar", at.Add(10*time.Second), "heart_rate", 64, "resp_rate", 14), "")...)
		if m%5 == 0 {
			spo2 := 97
			if m == 5 {
				spo2 = 89 // one artefact
			}
			sigs = append(sigs, e.Reading(reading("w", "wearable", at, "spo2", spo2, "heart_rate", 66, "body_temp", 36.6), "")...)
		}
		sigs = append(sigs, e.Tick(at.Add(30*time.Second))...)
	}
	expect(t, "one SpO2 89", only(sigs, rules.RuleNEWS2), "")

	// The same value held for 5 minutes does raise.
	at := t0.Add(30 * time.Minute)
	sigs = nil
	for m := 0; m <= 5; m++ {
		ts := at.Add(time.Duration(m) * time.Minute)
		sigs = append(sigs, e.Reading(reading("w", "wearable", ts, "spo2", 89, "heart_rate", 66, "body_temp", 36.6), "")...)
	}
	expect(t, "SpO2 89 for 5 min", only(sigs, rules.RuleNEWS2), "news2:high")
}

// A single extreme pulse on one reading among normal ones: no NEWS2 page.
func TestNEWS2SinglePulseSpike(t *testing.T) {
	e := newEval(t, nil)
	var sigs []rules.Signal
	for m := 0; m <= 15; m += 5 {
		hr := 70
		if m == 5 {
			hr = 140
		}
		sigs = append(sigs, e.Reading(reading("w", "wearable", t0.Add(time.Duration(m)*time.Minute), "heart_rate", hr, "spo2", 97, "body_temp", 36.6, "resp_rate", 14), "")...)
	}
	expect(t, "pulse 140 once", only(sigs, rules.RuleNEWS2), "")
}

// Vitals scored together must be close in time: a respiration rate of 26
// measured by the radar 40 minutes ago (the resident got up) is not part
// of the set the wearable measures now.
func TestNEWS2VitalsCloseInTime(t *testing.T) {
	e := newEval(t, nil)
	for m := 0; m <= 6; m++ {
		e.Reading(reading("rad", "radar", t0.Add(time.Duration(m)*time.Minute), "resp_rate", 26), "")
	}
	var sigs []rules.Signal
	for m := 40; m <= 50; m += 5 {
		sigs = append(sigs, e.Reading(reading("w", "wearable", t0.Add(time.Duration(m)*time.Minute), "heart_rate", 70, "spo2", 97, "body_temp", 36.6), "")...)
	}
	expect(t, "respiration from 40 min before", only(sigs, rules.RuleNEWS2), "")
}
