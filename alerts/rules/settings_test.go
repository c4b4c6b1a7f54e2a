package rules

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// t0 is 12:00 in Seoul.
var t0 = time.Date(2025, 3, 10, 3, 0, 0, 0, time.UTC)

func TestRuleNamesAndDefaults(t *testing.T) {
	names := RuleNames()
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			t.Fatalf("rule %q listed twice", n)
		}
		seen[n] = true
	}
	if len(names) != 25 {
		t.Fatalf("%d rules, want 25", len(names))
	}
	// Every default limit passes Validate when written out as an override,
	// on both SpO2 scales: the defaults obey the rules users are held to.
	for _, scale := range []int{1, 2} {
		s := Settings{SpO2Scale: scale, Limits: map[string]Limit{}}
		for _, n := range names {
			l, ok := DefaultLimit(n, scale)
			if !ok {
				t.Fatalf("no default limit for %q", n)
			}
			s.Limits[n] = l
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("defaults (scale %d) do not validate: %v", scale, err)
		}
	}
	if _, ok := DefaultLimit("nope", 1); ok {
		t.Fatal("unknown rule has a default")
	}
	if err := DefaultSettings().Validate(); err != nil {
		t.Fatal(err)
	}
	// DefaultLimit returns a copy: changing it leaves the defaults alone.
	l, _ := DefaultLimit(RuleHeartRate, 1)
	l.Bands[0].Value = 1
	if d, _ := DefaultLimit(RuleHeartRate, 1); d.Bands[0].Value == 1 {
		t.Fatal("DefaultLimit shares its bands")
	}
}

func TestSettingsValidate(t *testing.T) {
	hr := func(f func(l *Limit)) map[string]Limit {
		l, _ := DefaultLimit(RuleHeartRate, 1)
		f(&l)
		return map[string]Limit{RuleHeartRate: l}
	}
	cases := []struct {
		name string
		s    Settings
		want string // a substring of the error
	}{
		{"unknown disabled rule", Settings{Disabled: map[string]bool{"heartrate": true}}, `disabled["heartrate"]: unknown rule`},
		{"unknown limit rule", Settings{Limits: map[string]Limit{"bp": {}}}, `limits["bp"]: unknown rule`},
		{"unknown snoozed rule", Settings{Snoozed: map[string]Snooze{"x": {Until: t0, Reason: "r"}}}, `snoozed["x"]: unknown rule`},
		{"snooze without reason", Settings{Snoozed: map[string]Snooze{"sos": {Until: t0}}}, `snoozed["sos"].reason`},
		{"limit out of range", Settings{Limits: hr(func(l *Limit) { l.Bands[1].Value = 300 })}, `limits["heart_rate"].bands[1].value: 300 is outside 20–250`},
		{"bad op", Settings{Limits: hr(func(l *Limit) { l.Bands[0].Op = "=" })}, `bands[0].op`},
		{"bad severity", Settings{Limits: hr(func(l *Limit) { l.Bands[0].Severity = "urgent" })}, `bands[0].severity`},
		{"clear high on the raise side", Settings{Limits: hr(func(l *Limit) { l.ClearHigh = 95 })}, `limits["heart_rate"].clear_high: 95 is on the raise side`},
		{"clear high equal to a ≥ limit", Settings{Limits: hr(func(l *Limit) { l.ClearHigh = 91 })}, `clear_high: 91`},
		{"clear low on the raise side", Settings{Limits: hr(func(l *Limit) { l.ClearLow = 45 })}, `clear_low: 45`},
		{"negative persistence", Settings{Limits: hr(func(l *Limit) { l.Bands[2].For = -time.Minute })}, `bands[2].for: negative duration`},
		{"negative clear_for", Settings{Limits: hr(func(l *Limit) { l.ClearFor = -1 })}, `clear_for: negative duration`},
		{"no bands", Settings{Limits: map[string]Limit{RuleCO2: {ClearHigh: 900}}}, `limits["co2"].bands: at least one band`},
		{"spo2 scale 3", Settings{SpO2Scale: 3}, `spo2_scale: 3`},
		{"unknown mode", Settings{Mode: "holiday"}, `mode: "holiday"`},
		{"bad night window", Settings{Limits: map[string]Limit{RuleNightExit: {From: "25:00", To: "06:00", Window: time.Minute}}}, `limits["night_exit"].from: "25:00" is not HH:MM`},
		{"inactivity tiers out of order", Settings{Limits: map[string]Limit{RuleInactivity: {Bands: []Band{
			{Severity: "info", For: 8 * time.Hour}, {Severity: "warning", For: 4 * time.Hour}}}}}, `bands[1].for: tiers must be in increasing order`},
		{"zero missed reports", Settings{Limits: map[string]Limit{RuleDeviceOffline: {}}}, `limits["device_offline"].count`},
		{"sos window zero", Settings{Limits: map[string]Limit{RuleSOS: {}}}, `limits["sos"].window: must be positive`},
		{"smoke has no limits", Settings{Limits: map[string]Limit{RuleSmoke: {Window: time.Second}}}, `rule smoke has no limits`},
		{"negative report interval", Settings{ReportIntervals: map[string]time.Duration{"env": -time.Second}}, `report_intervals["env"]: negative`},
		{"bad bathroom device id", Settings{BathroomDeviceIDs: []string{"Bath Room"}}, `bathroom_device_ids`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.s.Validate()
			if err == nil {
				t.Fatalf("no error, want one containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

// Durations below a rule's floor are refused with the floor in the message
// (issue 10 item 3: "for": 28800 stored an inactivity tier of 28.8 µs).
func TestSettingsDurationFloors(t *testing.T) {
	cases := []struct {
		rule string
		l    Limit
		want string
	}{
		{RuleInactivity, Limit{Bands: []Band{{Severity: "info", For: 28800}}}, `limits["inactivity"].bands[0].for: 28.8µs is below the floor of 1h0m0s`},
		{RuleBathroomStay, Limit{Window: time.Minute}, `limits["bathroom_stay"].window: 1m0s is below the floor of 15m0s`},
		{RuleNightExit, Limit{From: "22:00", To: "06:00", Window: 30 * time.Second}, `below the floor of 5m0s`},
		{RuleSOS, Limit{Window: time.Second}, `limits["sos"].window: 1s is below the floor of 10s`},
		{RuleDeviceOffline, Limit{Count: 3, Window: 5 * time.Second}, `limits["device_offline"].window: 5s is below the floor of 1m0s`},
		{RuleHeartRate, Limit{Bands: []Band{ge("high", 120, 300)}, ClearHigh: 100}, `bands[0].for: 300ns is below the floor of 1m0s`},
		{RuleNEWS2, Limit{Bands: []Band{ge("high", 5, 0)}, ClearHigh: 4, Window: time.Minute}, `limits["news2"].window: 1m0s is below the floor of 5m0s`},
	}
	for _, tc := range cases {
		err := Settings{Limits: map[string]Limit{tc.rule: tc.l}}.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.rule, err, tc.want)
		}
	}
	if err := (Settings{ReportIntervals: map[string]time.Duration{"env": 10 * time.Second}}).Validate(); err == nil || !strings.Contains(err.Error(), "below the floor of 1m0s") {
		t.Errorf("report interval 10s: %v", err)
	}
	// At the floor, and 0 where 0 means "the first reading", pass.
	ok := Settings{Limits: map[string]Limit{
		RuleInactivity: {Bands: []Band{{Severity: "info", For: time.Hour}}},
		RuleHeartRate:  {Bands: []Band{ge("high", 120, 0)}, ClearHigh: 100},
	}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
}

// Durations are Go duration strings in JSON both ways; bare numbers other
// than 0 are refused for what a person writes, and still read (as the
// nanoseconds an older version stored) from the store.
func TestSettingsDurationJSON(t *testing.T) {
	in := `{"limits":{"inactivity":{"bands":[{"severity":"info","for":"8h"},{"severity":"high","for":"24h"}]},` +
		`"bathroom_stay":{"window":"90m"},"heart_rate":{"bands":[{"severity":"high","op":">=","value":120,"for":"5m"}],"clear_high":100,"clear_for":"90s"}},` +
		`"report_intervals":{"env":"10m"}}`
	if err := CheckDurationSyntax([]byte(in)); err != nil {
		t.Fatal(err)
	}
	var s Settings
	if err := json.Unmarshal([]byte(in), &s); err != nil {
		t.Fatal(err)
	}
	if s.Limits[RuleInactivity].Bands[0].For != 8*time.Hour || s.Limits[RuleBathroomStay].Window != 90*time.Minute ||
		s.Limits[RuleHeartRate].ClearFor != 90*time.Second || s.ReportIntervals["env"] != 10*time.Minute {
		t.Fatalf("decoded %+v", s)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(s)
	for _, want := range []string{`"for":"8h0m0s"`, `"window":"1h30m0s"`, `"clear_for":"1m30s"`, `"env":"10m0s"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("encoded %s, want %s in it", out, want)
		}
	}
	var back Settings
	if err := json.Unmarshal(out, &back); err != nil || back.Limits[RuleInactivity].Bands[1].For != 24*time.Hour {
		t.Fatalf("round trip: %v %+v", err, back)
	}

	err := CheckDurationSyntax([]byte(`{"limits":{"inactivity":{"bands":[{"severity":"info","for":28800}]}},"report_intervals":{"env":"ten minutes"}}`))
	if err == nil || !strings.Contains(err.Error(), `limits["inactivity"].bands[0].for: 28800 is a bare number; write a duration string`) ||
		!strings.Contains(err.Error(), `report_intervals["env"]: "ten minutes" is not a duration`) {
		t.Fatalf("bare number: %v", err)
	}
	if err := CheckDurationSyntax([]byte(`{"limits":{"heart_rate":{"bands":[{"severity":"high","op":">=","value":120,"for":0}]}}}`)); err != nil {
		t.Fatalf("0 is unambiguous: %v", err)
	}
	// An older version's stored nanoseconds still load.
	var old Settings
	if err := json.Unmarshal([]byte(`{"limits":{"bathroom_stay":{"window":5400000000000}}}`), &old); err != nil || old.Limits[RuleBathroomStay].Window != 90*time.Minute {
		t.Fatalf("stored nanoseconds: %v %+v", err, old)
	}
}

// TestProblems: each fault is a Problem a client can point at (the field as
// the console names its input) and translate (a fixed reason with its
// values apart), and the message reads as before.
func TestProblems(t *testing.T) {
	l, _ := DefaultLimit(RuleHeartRate, 1)
	l.Bands[1].Value = 300
	l.ClearLow = 45
	err := Settings{Limits: map[string]Limit{RuleHeartRate: l}, ReportIntervals: map[string]time.Duration{"env": 10 * time.Second}}.Validate()
	got := map[string]Problem{}
	for _, p := range Problems(err) {
		got[p.Field] = p
	}
	if len(got) != 3 {
		t.Fatalf("problems %+v, want 3 (from %v)", got, err)
	}
	v := got["limits.heart_rate.bands.1.value"]
	if v.Reason != "%g is outside %g–%g" || fmt.Sprint(v.Args) != "[300 20 250]" {
		t.Errorf("band value problem %+v", v)
	}
	if c := got["limits.heart_rate.clear_low"]; !strings.HasPrefix(c.Reason, "%g is on the raise side of band %d") {
		t.Errorf("clear_low problem %+v", c)
	}
	if r := got["report_intervals.env"]; fmt.Sprint(r.Args) != "[10s 1m0s]" {
		t.Errorf("report interval problem %+v: durations must travel as their strings", r)
	}
	for _, want := range []string{`limits["heart_rate"].bands[1].value: 300 is outside 20–250`, `report_intervals["env"]: 10s is below the floor of 1m0s`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
	if ps := Problems(errors.New("other")); ps != nil {
		t.Errorf("problems of another error: %v", ps)
	}
}
