package api

import (
	"testing"
	"time"

	"github.com/carehub/carehub/internal/influx/flux"
)

// driftDays gives 14 baseline days of b and 3 recent days of r.
func driftDays(b, r float64) []flux.DayValue {
	var out []flux.DayValue
	for i := 0; i < driftBaselineDays+driftRecentDays; i++ {
		v := b
		if i >= driftBaselineDays {
			v = r
		}
		out = append(out, flux.DayValue{Day: i, V: v})
	}
	return out
}

// TestJudgeDriftThresholds pins the edges of issue 4's thresholds: steps
// below 60 % of the baseline, resting heart rate up 10/min or more, night
// SpO2 down 2 points or more, and enough days to judge.
func TestJudgeDriftThresholds(t *testing.T) {
	rule := map[string]driftRule{}
	for _, r := range driftRules {
		rule[r.metric] = r
	}
	for _, tc := range []struct {
		name   string
		metric string
		values []flux.DayValue
		want   bool
	}{
		{"steps at 60 %", "steps", driftDays(5000, 3000), false},
		{"steps just below 60 %", "steps", driftDays(5000, 2999), true},
		{"no steps in the baseline", "steps", driftDays(0, 0), false},
		{"heart rate up 9.9", "heart_rate", driftDays(60, 69.9), false},
		{"heart rate up 10", "heart_rate", driftDays(60, 70), true},
		{"heart rate down 20", "heart_rate", driftDays(60, 40), false},
		{"spo2 down 1.9", "spo2", driftDays(96, 94.1), false},
		{"spo2 down 2", "spo2", driftDays(96, 94), true},
		{"spo2 up 3", "spo2", driftDays(94, 97), false},
		{"6 baseline days", "steps", driftDays(5000, 100)[driftBaselineDays-6:], false},
		{"7 baseline days", "steps", driftDays(5000, 100)[driftBaselineDays-7:], true},
		{"1 recent day", "steps", driftDays(5000, 100)[:driftBaselineDays+1], false},
		{"2 recent days", "steps", driftDays(5000, 100)[:driftBaselineDays+2], true},
		{"days out of range are ignored", "steps", append(driftDays(5000, 5000), flux.DayValue{Day: 17, V: 0}, flux.DayValue{Day: -1, V: 0}), false},
	} {
		d, got := judgeDrift(rule[tc.metric], tc.values)
		if got != tc.want {
			t.Errorf("%s: drifting %v (%+v), want %v", tc.name, got, d, tc.want)
		}
		if got && (d.Metric != tc.metric || d.Reason == "" || d.Change != round1(d.Recent-d.Baseline)) {
			t.Errorf("%s: %+v", tc.name, d)
		}
	}
}

// TestDriftQueryLocalDays: the overview's days end at today's local
// midnight and its nights at 06:00 today, in the configured zone, also in
// the two weeks after a daylight-saving change (Berlin, 25 October 2026).
func TestDriftQueryLocalDays(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 3, 15, 0, 0, 0, berlin)
	for _, r := range driftRules {
		q := driftQuery(r, now, berlin)
		wantFrom, wantTo := time.Date(2026, 10, 17, 0, 0, 0, 0, berlin), time.Date(2026, 11, 3, 0, 0, 0, 0, berlin)
		if r.night {
			wantFrom, wantTo = time.Date(2026, 10, 17, 22, 0, 0, 0, berlin), time.Date(2026, 11, 3, 6, 0, 0, 0, berlin)
		}
		if !q.From.Equal(wantFrom) || !q.To.Equal(wantTo) || q.Location != berlin {
			t.Errorf("%s: from %s to %s in %v, want %s to %s in Europe/Berlin", r.metric, q.From, q.To, q.Location, wantFrom, wantTo)
		}
	}
}
