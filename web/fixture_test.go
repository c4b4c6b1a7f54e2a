package web_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/devices"
)

// careHomes builds the care program the browser test and its screenshots
// show: four homes with the labels a Korean care agency gives them, their
// residents, and devices in every state the device health page tells
// apart, with the alerts the rule engine would have raised for them:
//
//   - h-r1 김영희: band and motion sensor online; the SOS button online
//     with 12 % battery (low_battery); the door contact offline for 5 h
//     after its Last Will (device_offline).
//   - h-r2 박철수: band online but not worn for an hour
//     (wearable_not_worn); motion sensor online; heart rate until 2 h ago.
//   - h-r3 이순자: both sensors offline since last night: cannot be
//     monitored (cannot_monitor).
//   - h-r4 최말순: enrolled today, nothing installed yet: cannot be
//     monitored either.
func (h *harness) careHomes() {
	h.t.Helper()
	ctx := context.Background()
	for _, x := range []struct {
		rid, name, label string
		born             int
	}{
		{"r1", "김영희", "행복빌라 201호", 1941},
		{"r2", "박철수", "소망아파트 105동 1203호", 1938},
		{"r3", "이순자", "은행나무마을 3단지 402호", 1944},
		{"r4", "최말순", "새봄주택 2층", 1936},
	} {
		if _, err := h.reg.CreateHome(ctx, devices.Home{ID: "h-" + x.rid, Name: x.label}); err != nil {
			h.t.Fatal(err)
		}
		if _, err := h.reg.CreateResident(ctx, devices.Resident{ID: x.rid, Name: x.name, HomeID: "h-" + x.rid, BirthYear: x.born}); err != nil {
			h.t.Fatal(err)
		}
	}
	now := time.Now()
	pct := func(v float64) *float64 { return &v }
	for _, d := range []struct {
		id, kind, rid string
		online        bool
		seen          time.Duration // before now
		battery       *float64
	}{
		{"band-r1", "wearable", "r1", true, 2 * time.Minute, pct(78)},
		{"pir-r1", "motion", "r1", true, 9 * time.Minute, pct(64)},
		{"sos-r1", "sos", "r1", true, 3 * time.Hour, pct(12)},
		{"door-r1", "door", "r1", false, 5 * time.Hour, pct(41)},
		{"band-r2", "wearable", "r2", true, time.Minute, pct(55)},
		{"pir-r2", "motion", "r2", true, 25 * time.Minute, pct(90)},
		{"pir-r3", "motion", "r3", false, 19 * time.Hour, pct(3)},
		{"door-r3", "door", "r3", false, 19 * time.Hour, nil},
	} {
		if _, _, err := h.reg.RegisterDevice(ctx, d.id, d.kind, d.rid); err != nil {
			h.t.Fatal(err)
		}
		h.pres.Report(devices.Presence{DeviceID: d.id, HomeID: "h-" + d.rid, Online: d.online, LastSeen: now.Add(-d.seen), BatteryPct: d.battery})
	}
	for _, s := range []rules.Signal{
		{ResidentID: "r1", DeviceID: "sos-r1", Rule: rules.RuleLowBattery, Severity: rules.SeverityInfo, Metric: "battery_pct", Value: 12, Threshold: 20,
			Message: "battery 12 %", At: now.Add(-3 * time.Hour)},
		{ResidentID: "r1", DeviceID: "door-r1", Rule: rules.RuleDeviceOffline, Severity: rules.SeverityHigh,
			Message: "device offline: Last Will received", At: now.Add(-5*time.Hour + 10*time.Minute)},
		{ResidentID: "r2", DeviceID: "band-r2", Rule: rules.RuleWearableNotWorn, Severity: rules.SeverityInfo,
			Message: "no heart rate from the wearable for over 1h0m0s", At: now.Add(-time.Hour)},
		{ResidentID: "r3", Rule: rules.RuleCannotMonitor, Severity: rules.SeverityHigh, Value: 1,
			Message: "the home's only motion sensor is offline or out of battery", At: now.Add(-16 * time.Hour)},
	} {
		s.HomeID, s.Active = "h-"+s.ResidentID, true
		h.signal(s)
	}
	// r2's band gave heart rate until it came off, two hours ago.
	var b strings.Builder
	for at := h.now.Add(-26 * time.Hour).Truncate(time.Hour); at.Before(h.now.Add(-2 * time.Hour)); at = at.Add(10 * time.Minute) {
		fmt.Fprintf(&b, "readings,resident_id=r2,home_id=h-r2,device_id=band-r2,device_kind=wearable heart_rate=%d %d\n", 71+at.Minute()/10, at.UnixMilli())
	}
	if err := h.in.WriteLines(ctx, []byte(b.String())); err != nil {
		h.t.Fatal(err)
	}
}

// pastWeeks gives the statistics page the three weeks before this one:
// alerts of r1 and r2 acknowledged by the care workers (cg: r1, kb: r2,
// co: either) in 20 s to 6 min (critical ones within a minute, but for
// one answered late in week 2, so the 60 s share is not all 100 %), and
// resolved after a visit or a call.
func (h *harness) pastWeeks() {
	h.t.Helper()
	ctx := context.Background()
	asOf := func(t time.Time, f func() error) {
		h.back.Store(int64(time.Since(t)))
		defer h.back.Store(0)
		if err := f(); err != nil {
			h.t.Fatal(err)
		}
	}
	kinds := []struct{ rule, sev, msg string }{
		{rules.RuleSOS, "critical", "SOS button pressed"},
		{rules.RuleHeartRate, "high", "heart_rate 135 /min for 5m0s (≥ 131)"},
		{rules.RuleInactivity, "warning", "no activity for 12h36m0s"},
		{rules.RuleSpO2, "high", "spo2 89 % for 5m0s (≤ 91)"},
	}
	for week := 3; week >= 1; week-- {
		for i := range 4 + week {
			raised := time.Now().Add(-time.Duration(week)*7*24*time.Hour + time.Duration(i)*31*time.Hour)
			k := kinds[(i+week)%len(kinds)]
			rid, who := "r1", "cg"
			switch i % 3 {
			case 1:
				rid, who = "r2", "kb"
			case 2:
				who = "co"
			}
			a := h.raise(rid, k.rule, k.sev, k.msg, raised)
			ackIn := time.Duration(20+(i*week*53)%340) * time.Second
			switch {
			case k.sev == "critical" && week == 2:
				ackIn = 4*time.Minute + 10*time.Second
			case k.sev == "critical":
				ackIn = time.Duration(25+i*6) * time.Second
			}
			outcome := []string{"visited", "ok_by_phone", "false_alarm"}[i%3]
			asOf(raised.Add(ackIn), func() error { _, err := h.mgr.Acknowledge(ctx, a.ID, who, ""); return err })
			asOf(raised.Add(ackIn+time.Duration(12+i*9)*time.Minute), func() error { _, err := h.mgr.Resolve(ctx, a.ID, who, outcome, ""); return err })
		}
	}
}
