package rules

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/carehub/carehub/internal/catalog"
)

// Band is one severity band of a rule: the condition holds at Severity when
// the value compares to Value by Op for at least For, on at least Repeat
// consecutive readings. Inactivity bands use For alone: the time without
// activity.
type Band struct {
	Severity string        `json:"severity"`
	Op       string        `json:"op,omitempty"` // "<", "<=", ">", ">="
	Value    float64       `json:"value,omitempty"`
	For      time.Duration `json:"for,omitempty"`    // persistence; 0 = the first reading
	Repeat   int           `json:"repeat,omitempty"` // consecutive readings; 0 or 1 = one
}

// Low reports whether the band raises below its value (< or <=).
func (b Band) Low() bool { return b.Op == "<" || b.Op == "<=" }

// Crossed reports whether v is on the band's raise side.
func (b Band) Crossed(v float64) bool {
	switch b.Op {
	case "<":
		return v < b.Value
	case "<=":
		return v <= b.Value
	case ">":
		return v > b.Value
	case ">=":
		return v >= b.Value
	}
	return false
}

// Limit is one rule's limits. A rule reads only the fields its kind uses
// (see DefaultLimit and RuleNames); Validate rejects the others' misuse.
//
//   - threshold rules (heart_rate … co): Bands, ClearLow (a low-side
//     condition clears at value ≥ ClearLow), ClearHigh (a high-side one at
//     value ≤ ClearHigh), ClearFor (how long the value must stay past the clear
//     level), MaxGap (a longer gap between readings restarts persistence and
//     repeat counts: a "repeat reading" an evening later is not a repeat).
//   - news2: Bands on the total score (the largest For is how long each
//     parameter's score must hold before it counts), ClearHigh, Window = how
//     close in time the scored vitals must be (of the newest one).
//   - sos, fall: Window = the cancel window.
//   - inactivity: Bands with For = time without activity.
//   - night_exit: From, To (local "HH:MM"), Window = time without motion.
//   - bathroom_stay, wearable_not_worn: Window.
//   - device_offline: Count = missed expected reports, Window = how long
//     after a Last Will the device has to come back (a quarter of it for
//     SOS buttons and smoke, gas and CO detectors); 0 = the default 2 min.
//   - low_battery: Bands ("<" or "<=" a percentage), ClearLow.
type Limit struct {
	Bands     []Band        `json:"bands,omitempty"`
	ClearLow  float64       `json:"clear_low,omitempty"`
	ClearHigh float64       `json:"clear_high,omitempty"`
	ClearFor  time.Duration `json:"clear_for,omitempty"`
	MaxGap    time.Duration `json:"max_gap,omitempty"`
	Window    time.Duration `json:"window,omitempty"`
	Count     int           `json:"count,omitempty"`
	From      string        `json:"from,omitempty"`
	To        string        `json:"to,omitempty"`
}

// HasLow reports whether any band raises below its value.
func (l Limit) HasLow() bool {
	for _, b := range l.Bands {
		if b.Low() {
			return true
		}
	}
	return false
}

// HasHigh reports whether any band raises above its value.
func (l Limit) HasHigh() bool {
	for _, b := range l.Bands {
		if !b.Low() {
			return true
		}
	}
	return false
}

// Snooze holds back new alerts of one rule until Until, for a reason a person
// gave. It never holds back a critical or all-tiers signal: a snoozed heart
// rate that turns critical still raises.
type Snooze struct {
	Until  time.Time `json:"until"`
	Reason string    `json:"reason"`
}

// Modes (domain.md "Suppression"). Each pauses the activity and routine rules
// (inactivity, night_exit, bathroom_stay): in away and hospital mode nobody
// is home to move, in quiet mode a care worker is there and their movements
// are not the resident's.
const (
	ModeAway     = "away"
	ModeHospital = "hospital"
	ModeQuiet    = "quiet"
)

// Settings are one resident's rule settings. The zero value works and means
// the defaults (SpO2 scale 1, no mode, nothing disabled).
type Settings struct {
	Disabled  map[string]bool  `json:"disabled,omitempty"`
	Limits    map[string]Limit `json:"limits,omitempty"` // an override replaces the rule's whole default Limit
	SpO2Scale int              `json:"spo2_scale,omitempty"`
	Mode      string           `json:"mode,omitempty"`
	ModeUntil time.Time        `json:"mode_until,omitempty"` // zero: until changed
	// ModeReason and ModeBy record why and by whom a mode was set: every
	// suppression has a reason and is audited (domain.md "Suppression").
	ModeReason string            `json:"mode_reason,omitempty"`
	ModeBy     string            `json:"mode_by,omitempty"`
	Snoozed    map[string]Snooze `json:"snoozed,omitempty"`
	// BathroomDeviceIDs are the presence or motion devices in the bathroom:
	// the registry knows rooms, the evaluator does not.
	BathroomDeviceIDs []string `json:"bathroom_device_ids,omitempty"`
	// ReportIntervals overrides how often a device is expected to report,
	// keyed by device id or device kind (the id wins); 0 = not checked.
	ReportIntervals map[string]time.Duration `json:"report_intervals,omitempty"`
	// HeatWave is set on a heat-wave day (KMA warning): room_temp's high-side
	// warning band raises to high (domain.md "a heat-wave day raises to high").
	HeatWave bool `json:"heat_wave,omitempty"`
}

// SettingsSource gives a resident's settings; it returns DefaultSettings for
// a resident without stored settings. The evaluator asks it on every input
// and for every resident on every tick, so it must answer from memory.
type SettingsSource interface {
	Settings(residentID string) Settings
}

// DefaultSettings are the settings of a resident nobody has configured.
func DefaultSettings() Settings { return Settings{SpO2Scale: 1} }

// Limit returns the limit the evaluator applies for rule: the resident's
// override, or the default. The result shares memory with s or the defaults
// and must not be modified.
func (s Settings) Limit(rule string) Limit {
	if l, ok := s.Limits[rule]; ok {
		return l
	}
	if rule == RuleSpO2 && s.SpO2Scale == 2 {
		return defaultSpO2Scale2
	}
	return defaultLimits[rule]
}

// ModeActive reports whether a pausing mode is in force at t.
func (s Settings) ModeActive(t time.Time) bool {
	switch s.Mode {
	case ModeAway, ModeHospital, ModeQuiet:
		return s.ModeUntil.IsZero() || t.Before(s.ModeUntil)
	}
	return false
}

// SnoozedAt reports whether rule is snoozed at t.
func (s Settings) SnoozedAt(rule string, t time.Time) bool {
	z, ok := s.Snoozed[rule]
	return ok && t.Before(z.Until)
}

// Bathroom reports whether deviceID is one of the bathroom devices.
func (s Settings) Bathroom(deviceID string) bool {
	for _, id := range s.BathroomDeviceIDs {
		if id == deviceID {
			return true
		}
	}
	return false
}

// ReportInterval is how often a device is expected to report.
func (s Settings) ReportInterval(deviceID, kind string) time.Duration {
	if d, ok := s.ReportIntervals[deviceID]; ok {
		return d
	}
	if d, ok := s.ReportIntervals[kind]; ok {
		return d
	}
	return defaultReportIntervals[kind]
}

// DefaultLimit returns a copy of a rule's default limit for an SpO2 scale
// (1 or 2), and false for an unknown rule.
func DefaultLimit(rule string, spo2Scale int) (Limit, bool) {
	if _, ok := kindOf(rule); !ok {
		return Limit{}, false
	}
	l := Settings{SpO2Scale: spo2Scale}.Limit(rule)
	l.Bands = append([]Band(nil), l.Bands...)
	return l, true
}

// defaultReportIntervals: the device_offline rule raises after Count (3) of
// these pass in silence. They are heartbeat periods, not measurement periods:
// a PIR sensor or a door contact is quiet while nothing moves and checks in
// about hourly (Zigbee/Z-Wave practice), battery-powered buttons and leak
// sensors less often. Spot-measurement devices (BP monitor, glucometer,
// scale) are used when the resident wants: they are watched only through
// their Last Will.
var defaultReportIntervals = map[string]time.Duration{
	catalog.KindMotion:    time.Hour,
	catalog.KindRadar:     5 * time.Minute,
	catalog.KindDoor:      time.Hour,
	catalog.KindBed:       10 * time.Minute,
	catalog.KindSmoke:     time.Hour,
	catalog.KindGas:       time.Hour,
	catalog.KindCO:        time.Hour,
	catalog.KindSOS:       6 * time.Hour,
	catalog.KindWearable:  15 * time.Minute, // rings sync through a phone, in bursts
	catalog.KindEnv:       10 * time.Minute,
	catalog.KindPower:     5 * time.Minute,
	catalog.KindWaterLeak: 6 * time.Hour,
	catalog.KindGateway:   2 * time.Minute,
}

func ge(sev string, v float64, d time.Duration) Band {
	return Band{Severity: sev, Op: ">=", Value: v, For: d}
}
func gt(sev string, v float64, d time.Duration) Band {
	return Band{Severity: sev, Op: ">", Value: v, For: d}
}
func le(sev string, v float64, d time.Duration) Band {
	return Band{Severity: sev, Op: "<=", Value: v, For: d}
}
func lt(sev string, v float64, d time.Duration) Band {
	return Band{Severity: sev, Op: "<", Value: v, For: d}
}
func repeat(b Band, n int) Band { b.Repeat = n; return b }

// Persistence, clear levels and gaps where domain.md gives none. The vitals
// that wearables and radar measure continuously (heart rate, respiration,
// SpO2) persist 5 minutes, as domain.md asks of heart rate: one artefact
// reading must not page anyone. They clear 2 minutes inside a clear level
// set off the NEWS2 "0" range, and a gap over 10–15 minutes (a ring off the
// finger, a radar that lost the resident) restarts the count. Spot
// measurements (BP, temperature, glucose) act on the reading itself, or on a
// repeat where the sources say so. Room climate changes slowly and a window
// opened for a minute is not a hazard, so it persists 30 minutes; air
// quality 15 (CO2) and 30 (PM2.5) minutes.
const (
	vitalFor      = 5 * time.Minute
	vitalClearFor = 2 * time.Minute
	// news2Window: how close in time the vitals scored together must be,
	// and the longest gap between two readings of one parameter that
	// still continues its persistence.
	news2Window = 15 * time.Minute
	// defaultWillGrace: a Wi-Fi gateway or a phone-synced ring that drops
	// its MQTT connection is usually back within seconds to a minute (a
	// router or a DHCP lease renewing, a phone changing networks); two
	// minutes covers that, while a device truly gone still pages long
	// before the missed-report check (3 × its report interval) would.
	defaultWillGrace = 2 * time.Minute
)

var (
	defaultLimits = map[string]Limit{
		RuleHeartRate: {Bands: []Band{
			le(SeverityCritical, 40, vitalFor), ge(SeverityCritical, 131, vitalFor),
			le(SeverityHigh, 50, vitalFor), ge(SeverityHigh, 111, vitalFor),
			ge(SeverityWarning, 91, vitalFor),
		}, ClearLow: 55, ClearHigh: 85, ClearFor: vitalClearFor, MaxGap: 10 * time.Minute},
		RuleRespRate: {Bands: []Band{
			le(SeverityCritical, 8, vitalFor), ge(SeverityCritical, 25, vitalFor),
			ge(SeverityHigh, 21, vitalFor), le(SeverityWarning, 11, vitalFor),
		}, ClearLow: 12, ClearHigh: 20, ClearFor: vitalClearFor, MaxGap: 10 * time.Minute},
		// SpO2 scale 1: clears at 96 %, the start of NEWS2's 0 range.
		RuleSpO2: {Bands: []Band{
			le(SeverityCritical, 91, vitalFor), le(SeverityHigh, 93, vitalFor), le(SeverityWarning, 95, vitalFor),
		}, ClearLow: 96, ClearFor: vitalClearFor, MaxGap: 15 * time.Minute},
		// Systolic: NEWS2 extremes at once; AHA's hypertensive urgency
		// (≥ 180) only on a repeat reading within the hour.
		RuleSystolicBP: {Bands: []Band{
			le(SeverityCritical, 90, 0), ge(SeverityCritical, 220, 0),
			le(SeverityHigh, 100, 0), repeat(ge(SeverityHigh, 180, 0), 2),
		}, ClearLow: 105, ClearHigh: 160, MaxGap: time.Hour},
		RuleDiastolicBP: {Bands: []Band{
			repeat(ge(SeverityHigh, 120, 0), 2),
		}, ClearHigh: 100, MaxGap: time.Hour},
		// IDSA fever in long-term care: one reading > 37.8 or repeated
		// readings > 37.2 (repeat within 12 h).
		RuleBodyTemp: {Bands: []Band{
			le(SeverityCritical, 35.0, 0), ge(SeverityHigh, 39.1, 0),
			gt(SeverityWarning, 37.8, 0), repeat(gt(SeverityWarning, 37.2, 0), 2),
		}, ClearLow: 35.5, ClearHigh: 37.2, MaxGap: 12 * time.Hour},
		// ADA: a hypoglycaemia is over once glucose is back above 70 with a
		// margin; hyperglycaemia clears at 250.
		RuleGlucose: {Bands: []Band{
			lt(SeverityCritical, 54, 0), lt(SeverityHigh, 70, 0), gt(SeverityWarning, 300, 0),
		}, ClearLow: 80, ClearHigh: 250, MaxGap: 24 * time.Hour},
		RuleRoomTemp: {Bands: []Band{
			le(SeverityHigh, 16, 30*time.Minute), ge(SeverityHigh, 28, 30*time.Minute),
			le(SeverityWarning, 18, 30*time.Minute), ge(SeverityWarning, 26, 30*time.Minute),
		}, ClearLow: 19, ClearHigh: 25, MaxGap: time.Hour},
		RuleHumidity: {Bands: []Band{
			lt(SeverityHigh, 25, 30*time.Minute), gt(SeverityHigh, 75, 30*time.Minute),
			lt(SeverityWarning, 30, 30*time.Minute), gt(SeverityWarning, 70, 30*time.Minute),
		}, ClearLow: 32, ClearHigh: 68, MaxGap: time.Hour},
		RuleCO2: {Bands: []Band{
			gt(SeverityWarning, 1000, 15*time.Minute),
		}, ClearHigh: 900, MaxGap: time.Hour},
		RulePM25: {Bands: []Band{
			gt(SeverityWarning, 35, 30*time.Minute),
		}, ClearHigh: 30, MaxGap: time.Hour},
		// CO: ≥ 50 ppm for 15 min high, ≥ 200 ppm critical at once; clears
		// at 25 ppm (the 8-hour occupational limit's order of magnitude).
		RuleCO: {Bands: []Band{
			ge(SeverityCritical, 200, 0), ge(SeverityHigh, 50, 15*time.Minute),
		}, ClearHigh: 25, MaxGap: time.Hour},
		// NEWS2 total: ≥ 7 critical, ≥ 5 high (any single parameter scoring
		// 3 is high too, built in). Each parameter counts at the score it
		// has held for 5 minutes (vitalFor, as the vital-sign rules), and
		// only vitals measured within 15 minutes of the newest one are
		// scored together: a nurse's NEWS2 is one set of observations, not
		// this morning's pressure with tonight's pulse.
		RuleNEWS2: {Bands: []Band{
			ge(SeverityCritical, 7, vitalFor), ge(SeverityHigh, 5, vitalFor),
		}, ClearHigh: 4, Window: news2Window},
		RuleSOS:  {Window: 30 * time.Second},
		RuleFall: {Window: 60 * time.Second},
		// Inactivity: the city program's tiers; "beyond 24 h" is 36 h, half
		// a day past the alarm tier, so that danger is a distinct step.
		RuleInactivity: {Bands: []Band{
			{Severity: SeverityInfo, For: 8 * time.Hour},
			{Severity: SeverityWarning, For: 12 * time.Hour},
			{Severity: SeverityHigh, For: 24 * time.Hour},
			{Severity: SeverityCritical, For: 36 * time.Hour},
		}},
		RuleNightExit:       {From: "22:00", To: "06:00", Window: 15 * time.Minute},
		RuleBathroomStay:    {Window: 60 * time.Minute},
		RuleWearableNotWorn: {Window: 12 * time.Hour},
		// device_offline: 3 missed reports, or a Last Will not followed by
		// the device's return within 2 minutes (see WillGrace).
		RuleDeviceOffline: {Count: 3, Window: defaultWillGrace},
		// Low battery below 20 %; clears at 25 % so a battery hovering at
		// 19–20 % with temperature does not flap.
		RuleLowBattery: {Bands: []Band{lt(SeverityInfo, 20, 0)}, ClearLow: 25},
	}
	// defaultSpO2Scale2 is NEWS2 scale 2 for hypercapnic (COPD) residents,
	// target 88–92 %: ≤ 83 scores 3, 84–85 scores 2, 86–87 scores 1; it
	// clears at 88, the bottom of the target range.
	defaultSpO2Scale2 = Limit{Bands: []Band{
		le(SeverityCritical, 83, vitalFor), le(SeverityHigh, 85, vitalFor), le(SeverityWarning, 87, vitalFor),
	}, ClearLow: 88, ClearFor: vitalClearFor, MaxGap: 15 * time.Minute}
)

// Validate checks settings before they are stored, and names the field at
// fault: unknown rule names, out-of-range limits, a clear level on the wrong
// side of its raise level, negative durations, unknown modes.
func (s Settings) Validate() error {
	var ps problems
	bad := ps.add
	for rule := range s.Disabled {
		if _, ok := kindOf(rule); !ok {
			bad("disabled."+rule, "unknown rule (see RuleNames)")
		}
	}
	for rule, z := range s.Snoozed {
		if _, ok := kindOf(rule); !ok {
			bad("snoozed."+rule, "unknown rule (see RuleNames)")
		}
		if z.Until.IsZero() {
			bad("snoozed."+rule+".until", "required")
		}
		if strings.TrimSpace(z.Reason) == "" {
			bad("snoozed."+rule+".reason", "required (suppression is audited with its reason)")
		}
	}
	switch s.SpO2Scale {
	case 0, 1, 2:
	default:
		bad("spo2_scale", "%d is not 1 or 2 (NEWS2 SpO2 scales)", s.SpO2Scale)
	}
	switch s.Mode {
	case "", ModeAway, ModeHospital, ModeQuiet:
	default:
		bad("mode", "%q is not one of away, hospital, quiet", s.Mode)
	}
	for _, id := range s.BathroomDeviceIDs {
		if !catalog.ValidID(id) {
			bad("bathroom_device_ids", "%q is not a device id", id)
		}
	}
	for k, d := range s.ReportIntervals {
		switch {
		case d < 0:
			bad("report_intervals."+k, "negative duration %s", d.String())
		case d > 0 && d < minReportInterval:
			bad("report_intervals."+k, "%s is below the floor of %s (0 = not checked)", d.String(), minReportInterval.String())
		}
	}
	for rule, l := range s.Limits {
		kind, ok := kindOf(rule)
		if !ok {
			bad("limits."+rule, "unknown rule (see RuleNames)")
			continue
		}
		lp := problems{prefix: "limits." + rule}
		validateLimit(&lp, rule, kind, l)
		ps.list = append(ps.list, lp.list...)
	}
	return errors.Join(ps.list...)
}

func validateLimit(ps *problems, rule string, kind ruleKind, l Limit) {
	bad := ps.add
	for name, d := range map[string]time.Duration{"clear_for": l.ClearFor, "max_gap": l.MaxGap, "window": l.Window} {
		if d < 0 {
			bad(name, "negative duration %s", d.String())
		}
	}
	if l.Count < 0 {
		bad("count", "negative")
	}
	needBands := func(lo, hi float64, ops string) {
		if len(l.Bands) == 0 {
			bad("bands", "at least one band is required")
		}
		for i, b := range l.Bands {
			if !validSeverity(b.Severity) {
				bad(band(i, "severity"), "%q is not info, warning, high or critical", b.Severity)
			}
			if !strings.Contains(ops, " "+b.Op+" ") {
				bad(band(i, "op"), "%q is not one of%s", b.Op, ops)
			}
			if b.Value < lo || b.Value > hi {
				bad(band(i, "value"), "%g is outside %g–%g", b.Value, lo, hi)
			}
			if b.For < 0 {
				bad(band(i, "for"), "negative duration %s", b.For.String())
			}
			if b.Repeat < 0 {
				bad(band(i, "repeat"), "negative")
			}
		}
	}
	// clearSides checks the hysteresis: a clear level must lie outside every
	// band of its side, or the condition could never clear.
	clearSides := func(lowAllowed bool) {
		for i, b := range l.Bands {
			switch {
			case b.Low() && !lowAllowed:
			case b.Low() && (l.ClearLow < b.Value || (b.Op == "<=" && l.ClearLow == b.Value)):
				bad("clear_low", "%g is on the raise side of band %d (%s %g); it must be above it", l.ClearLow, i+1, b.Op, b.Value)
			case !b.Low() && (l.ClearHigh > b.Value || (b.Op == ">=" && l.ClearHigh == b.Value)):
				bad("clear_high", "%g is on the raise side of band %d (%s %g); it must be below it", l.ClearHigh, i+1, b.Op, b.Value)
			}
		}
	}
	switch kind {
	case kindThreshold:
		m, _ := catalog.LookupMetric(rule)
		needBands(m.Min, m.Max, " < <= > >= ")
		clearSides(true)
	case kindNEWS2:
		needBands(0, 20, " > >= ")
		clearSides(false)
		if l.Window <= 0 {
			bad("window", "the staleness of a vital must be positive")
		}
	case kindBattery:
		needBands(0, 100, " < <= ")
		clearSides(true)
	case kindInactivity:
		if len(l.Bands) == 0 {
			bad("bands", "at least one tier is required")
		}
		var prev time.Duration
		for i, b := range l.Bands {
			if !validSeverity(b.Severity) {
				bad(band(i, "severity"), "%q is not info, warning, high or critical", b.Severity)
			}
			if b.For <= 0 {
				bad(band(i, "for"), "the time without activity must be positive")
			}
			if b.For <= prev {
				bad(band(i, "for"), "tiers must be in increasing order of time")
			}
			prev = b.For
		}
	case kindCancelable, kindWindow:
		if l.Window <= 0 {
			bad("window", "must be positive")
		}
	case kindNightExit:
		if _, err := ParseClock(l.From); err != nil {
			bad("from", "%q is not HH:MM", l.From)
		}
		if _, err := ParseClock(l.To); err != nil {
			bad("to", "%q is not HH:MM", l.To)
		}
		if l.Window <= 0 {
			bad("window", "must be positive")
		}
	case kindOffline:
		if l.Count < 1 {
			bad("count", "at least one missed report")
		}
	case kindEvent, kindNoLimit:
		if len(l.Bands) > 0 || l.Window != 0 || l.Count != 0 {
			bad("", "rule %s has no limits to override", rule)
		}
	}
	checkFloors(ps, rule, kind, l)
}

// band is the field path of band i's key.
func band(i int, key string) string { return "bands." + strconv.Itoa(i) + "." + key }

// Floors of durations in settings: below them a limit would turn a
// resident into a stream of pages (an inactivity tier of seconds, a
// night-exit watch that ends before the resident is through the door) or
// make a cancel impossible. A persistence, clear time or gap of 0 keeps its
// meaning (the first reading; at once; no gap check); a positive one
// shorter than its floor is almost surely seconds typed for minutes.
const (
	minReportInterval = time.Minute
	minPersistence    = time.Minute      // threshold and NEWS2 bands' for
	minClearFor       = 30 * time.Second // threshold clear_for
	minMaxGap         = time.Minute      // threshold max_gap
)

// windowFloor is the least Window, or inactivity tier, a rule accepts.
var windowFloor = map[string]time.Duration{
	RuleInactivity:      time.Hour,
	RuleBathroomStay:    15 * time.Minute,
	RuleNightExit:       5 * time.Minute,
	RuleWearableNotWorn: time.Hour,
	RuleSOS:             10 * time.Second, // time to press cancel
	RuleFall:            30 * time.Second, // time to answer "are you OK?"
	RuleNEWS2:           5 * time.Minute,
	RuleDeviceOffline:   time.Minute, // the Will's grace (SOS and detectors: a quarter)
}

func checkFloors(ps *problems, rule string, kind ruleKind, l Limit) {
	below := func(field string, d, floor time.Duration, zeroOK bool) {
		if d < 0 || (d == 0 && zeroOK) || d >= floor {
			return
		}
		ps.add(field, "%s is below the floor of %s for %s", d.String(), floor.String(), rule)
	}
	switch kind {
	case kindThreshold, kindNEWS2:
		for i, b := range l.Bands {
			below(band(i, "for"), b.For, minPersistence, true)
		}
		if kind == kindThreshold {
			below("clear_for", l.ClearFor, minClearFor, true)
			below("max_gap", l.MaxGap, minMaxGap, true)
		}
	case kindInactivity:
		for i, b := range l.Bands {
			if b.For > 0 {
				below(band(i, "for"), b.For, windowFloor[rule], false)
			}
		}
	}
	if f, ok := windowFloor[rule]; ok && kind != kindInactivity && l.Window > 0 {
		below("window", l.Window, f, false)
	}
}

// ParseClock parses a local "HH:MM" into minutes after midnight.
func ParseClock(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) != 2 || len(m) != 2 {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	return hh*60 + mm, nil
}

// WillGrace is how long after a device's Last Will the device_offline rule
// waits for it to come back before it raises: the device_offline limit's
// Window (2 min by default), and a quarter of it (30 s) for the devices
// whose silence is an emergency unseen: SOS buttons and smoke, gas and CO
// detectors.
func WillGrace(st Settings, kind string) time.Duration {
	g := st.Limit(RuleDeviceOffline).Window
	if g <= 0 {
		g = defaultWillGrace
	}
	switch kind {
	case catalog.KindSOS, catalog.KindSmoke, catalog.KindGas, catalog.KindCO:
		return g / 4
	}
	return g
}
