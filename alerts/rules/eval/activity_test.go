package eval

import (
	"testing"
	"time"

	"github.com/carehub/carehub/alerts/rules"
)

func TestInactivityTiers(t *testing.T) {
	h := time.Hour
	e := newEval(t, nil)
	e.Reading(reading("pir", "motion", t0, "motion", 3), "")
	steps := []struct {
		at   time.Duration
		want string
	}{
		{7*h + 59*time.Minute, ""},
		{8 * h, "inactivity:info"},
		{11 * h, ""},
		{12 * h, "inactivity:warning"},
		{24 * h, "inactivity:high"},
		{35 * h, ""},
		{36 * h, "inactivity:critical"},
		{37 * h, ""},
	}
	for _, s := range steps {
		// Keep the sensor alive so only inactivity speaks.
		e.Status(status("pir", "motion", t0.Add(s.at-time.Minute), true))
		expect(t, "tick "+s.at.String(), only(e.Tick(t0.Add(s.at)), rules.RuleInactivity), s.want)
	}
	expect(t, "motion clears", e.Reading(reading("pir", "motion", t0.Add(38*h), "motion", 1), ""), "inactivity:clear")
}

func TestInactivityActivitySources(t *testing.T) {
	h := time.Hour
	cases := []struct {
		name string
		feed func(e *Evaluator, at time.Time)
		acts bool
	}{
		{"motion event", func(e *Evaluator, at time.Time) { e.Event(event("pir", "motion", "motion", at, "")) }, true},
		{"toilet flush", func(e *Evaluator, at time.Time) { e.Event(event("wc", "motion", "toilet_flush", at, "")) }, true},
		{"bed exit", func(e *Evaluator, at time.Time) { e.Event(event("bed", "bed", "bed_exit", at, "")) }, true},
		{"door close", func(e *Evaluator, at time.Time) { e.Event(event("door", "door", "door_close", at, "")) }, true},
		{"presence change", func(e *Evaluator, at time.Time) { e.Reading(reading("radar", "radar", at, "presence", 0), "") }, true},
		{"steady presence is no activity", func(e *Evaluator, at time.Time) { e.Reading(reading("radar", "radar", at, "presence", 1), "") }, false},
		{"motion 0 is no activity", func(e *Evaluator, at time.Time) { e.Reading(reading("pir", "motion", at, "motion", 0), "") }, false},
		{"in_bed change", func(e *Evaluator, at time.Time) { e.Reading(reading("bed", "bed", at, "in_bed", 0), "") }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEval(t, settingsMap{res: {ReportIntervals: map[string]time.Duration{"motion": 0, "radar": 0, "bed": 0, "door": 0}}})
			e.Reading(reading("radar", "radar", t0, "presence", 1), "")
			e.Reading(reading("bed", "bed", t0, "in_bed", 1), "")
			expect(t, "8h", only(e.Tick(t0.Add(8*h)), rules.RuleInactivity), "inactivity:info")
			tc.feed(e, t0.Add(9*h))
			want := ""
			if !tc.acts {
				want = "inactivity:warning"
			}
			expect(t, "12h", only(e.Tick(t0.Add(12*h)), rules.RuleInactivity), want)
		})
	}
}

func TestInactivityPausedInAwayMode(t *testing.T) {
	h := time.Hour
	set := settingsMap{res: {ReportIntervals: map[string]time.Duration{"motion": 0}}}
	e := newEval(t, set)
	e.Reading(reading("pir", "motion", t0, "motion", 1), "")
	expect(t, "12h", only(e.Tick(t0.Add(12*h)), rules.RuleInactivity), "inactivity:warning")
	set[res] = rules.Settings{Mode: rules.ModeAway, ModeUntil: t0.Add(40 * h), ReportIntervals: map[string]time.Duration{"motion": 0}}
	expect(t, "away clears", only(e.Tick(t0.Add(13*h)), rules.RuleInactivity), "inactivity:clear")
	expect(t, "away 39h", only(e.Tick(t0.Add(39*h)), rules.RuleInactivity), "")
	// The mode has ended (ModeUntil): the clock restarts from the last paused tick.
	expect(t, "back, 7h later", only(e.Tick(t0.Add(46*h)), rules.RuleInactivity), "")
	expect(t, "back, 8h later", only(e.Tick(t0.Add(47*h)), rules.RuleInactivity), "inactivity:info")
}

func TestNightExit(t *testing.T) {
	loc := seoul(t)
	m := time.Minute
	night := time.Date(2025, 3, 10, 23, 30, 0, 0, loc)
	quiet := settingsMap{res: {ReportIntervals: map[string]time.Duration{"motion": 0, "door": 0}}}
	cases := []struct {
		name   string
		open   time.Time
		motion time.Duration // motion inside after the door opened; 0 = none
		want   string        // at open+15 min
	}{
		{"23:30, no motion → high", night, 0, "night_exit:high"},
		{"05:59, no motion → high", time.Date(2025, 3, 11, 5, 59, 0, 0, loc), 0, "night_exit:high"},
		{"22:00 → high", time.Date(2025, 3, 10, 22, 0, 0, 0, loc), 0, "night_exit:high"},
		{"21:59 is day", time.Date(2025, 3, 10, 21, 59, 0, 0, loc), 0, ""},
		{"06:00 is day", time.Date(2025, 3, 11, 6, 0, 0, 0, loc), 0, ""},
		{"motion inside at 5 min → nothing", night, 5 * m, ""},
		{"hall motion at 30 s is the walk out", night, 30 * time.Second, "night_exit:high"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEval(t, quiet)
			e.Reading(reading("pir", "motion", tc.open.Add(-time.Minute), "motion", 2), "")
			e.Event(event("door", "door", "door_open", tc.open, ""))
			if tc.motion > 0 {
				e.Event(event("pir", "motion", "motion", tc.open.Add(tc.motion), ""))
			}
			e.Event(event("door", "door", "door_close", tc.open.Add(20*time.Second), ""))
			expect(t, "14 min", only(e.Tick(tc.open.Add(14*m)), rules.RuleNightExit), "")
			expect(t, "15 min", only(e.Tick(tc.open.Add(15*m)), rules.RuleNightExit), tc.want)
			if tc.want != "" {
				expect(t, "motion clears", only(e.Event(event("pir", "motion", "motion", tc.open.Add(40*m), "")), rules.RuleNightExit), "night_exit:clear")
			}
		})
	}
	t.Run("door_open reading 0→1", func(t *testing.T) {
		e := newEval(t, quiet)
		e.Reading(reading("door", "door", night.Add(-time.Hour), "door_open", 0), "")
		e.Reading(reading("door", "door", night, "door_open", 1), "")
		expect(t, "15 min", only(e.Tick(night.Add(15*m)), rules.RuleNightExit), "night_exit:high")
	})
	t.Run("paused in hospital mode", func(t *testing.T) {
		e := newEval(t, settingsMap{res: {Mode: rules.ModeHospital}})
		e.Event(event("door", "door", "door_open", night, ""))
		expect(t, "15 min", only(e.Tick(night.Add(15*m)), rules.RuleNightExit), "")
	})
}

func TestBathroomStay(t *testing.T) {
	m := time.Minute
	set := settingsMap{res: {BathroomDeviceIDs: []string{"bath"}, ReportIntervals: map[string]time.Duration{"radar": 0, "motion": 0}}}
	e := newEval(t, set)
	e.Reading(reading("bath", "radar", t0.Add(-m), "presence", 0), "")
	e.Reading(reading("bath", "radar", t0, "presence", 1), "")
	for i := 1; i <= 6; i++ { // the radar keeps saying "present"
		e.Reading(reading("bath", "radar", t0.Add(time.Duration(i)*10*m), "presence", 1), "")
	}
	expect(t, "60 min", only(e.Tick(t0.Add(60*m)), rules.RuleBathroomStay), "")
	expect(t, "61 min", only(e.Tick(t0.Add(61*m)), rules.RuleBathroomStay), "bathroom_stay:high")
	expect(t, "left", only(e.Reading(reading("bath", "radar", t0.Add(70*m), "presence", 0), ""), rules.RuleBathroomStay), "bathroom_stay:clear")

	// Motion elsewhere ends a stay too.
	e.Reading(reading("bath", "radar", t0.Add(80*m), "presence", 1), "")
	e.Event(event("pir", "motion", "motion", t0.Add(90*m), ""))
	expect(t, "moved elsewhere", only(e.Tick(t0.Add(150*m)), rules.RuleBathroomStay), "")
}

// Found by the alert-quality benchmark: the bathroom PIR reports its motion
// count for the last 5 minutes after the resident has gone to bed; the
// stay it started paged "in the bathroom for over 1 h" about a sleeping
// resident. A resident the bed sensor reports in bed is not in the
// bathroom.
func TestBathroomStayNotWhileInBed(t *testing.T) {
	m := time.Minute
	set := settingsMap{res: {BathroomDeviceIDs: []string{"bath"}}}
	e := newEval(t, set)
	e.Reading(reading("bath", "motion", t0, "motion", 4), "")
	e.Event(event("bed", "bed", "bed_enter", t0.Add(2*m), ""))
	e.Reading(reading("bed", "bed", t0.Add(2*m), "in_bed", 1), "")
	e.Reading(reading("bath", "motion", t0.Add(3*m), "motion", 2), "") // the count of the minutes before bed
	var sigs []rules.Signal
	for i := 5; i <= 120; i += 5 {
		e.Reading(reading("bed", "bed", t0.Add(time.Duration(i)*m), "in_bed", 1), "")
		sigs = append(sigs, e.Tick(t0.Add(time.Duration(i)*m))...)
	}
	expect(t, "asleep after the bathroom", only(sigs, rules.RuleBathroomStay), "")

	// Out of bed to the bathroom at night, and staying there, still pages.
	e.Event(event("bed", "bed", "bed_exit", t0.Add(130*m), ""))
	e.Reading(reading("bed", "bed", t0.Add(130*m), "in_bed", 0), "")
	e.Reading(reading("bath", "motion", t0.Add(131*m), "motion", 3), "")
	expect(t, "night trip over 60 min", only(e.Tick(t0.Add(192*m)), rules.RuleBathroomStay), "bathroom_stay:high")
}
