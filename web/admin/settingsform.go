package admin

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/internal/catalog"
)

// The settings form shows every field of rules.Settings as an input; the
// names are the JSON paths of PUT /residents/{id}/settings ("limits.spo2.
// bands.0.value"), from which console.js builds the body. Durations are a
// number and a unit (s, m, h), sent as a Go duration string ("15m").

// The choices the form's selects offer, in order.
var (
	scales     = []int{1, 2}
	modes      = []string{rules.ModeAway, rules.ModeHospital, rules.ModeQuiet}
	severities = []string{rules.SeverityInfo, rules.SeverityWarning, rules.SeverityHigh, rules.SeverityCritical}
	units      = []string{"s", "m", "h"}
)

// dur is a duration as the form shows it.
type dur struct{ N, U string }

func durOf(d time.Duration) dur {
	switch {
	case d == 0:
		return dur{"0", "m"}
	case d%time.Hour == 0:
		return dur{strconv.FormatInt(int64(d/time.Hour), 10), "h"}
	case d%time.Minute == 0:
		return dur{strconv.FormatInt(int64(d/time.Minute), 10), "m"}
	}
	return dur{strconv.FormatFloat(d.Seconds(), 'f', -1, 64), "s"}
}

func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// unset shows a clear level of 0 (none) as an empty field.
func unset(v float64) string {
	if v == 0 {
		return ""
	}
	return num(v)
}

// band is one row of a rule's bands; Sev "" is the empty row that adds one.
type band struct {
	N                      int // 1 for the first; 0 for the empty row
	Sev, Op, Value, Repeat string
	For                    dur
}

// field is one of a limit's other fields, by its JSON name.
type field struct {
	Key   string // clear_low, clear_high, clear_for, max_gap, window, count, from, to
	Type  string // float, int, dur, time
	Value string
	Dur   dur
}

// limitForm is a rule's own limits: the stored override, or the defaults
// (for the resident's SpO2 scale) to start one from.
type limitForm struct {
	Own            bool
	Ops            []string // the band operators the rule reads; none: bands are times without activity
	Bands          []band
	Min, Max, Unit string // of a band's value
	Fields         []field
}

// limitFormOf lays out rule's limits: the fields its default limit uses
// (which are the ones its kind reads), and for a metric's threshold rule
// all four operators and both clear levels. Nil for a rule without limits.
func limitFormOf(rule string, st rules.Settings) *limitForm {
	def, _ := rules.DefaultLimit(rule, st.SpO2Scale)
	l, own := st.Limits[rule]
	if !own {
		l = def
	}
	f := &limitForm{Own: own}
	m, metric := catalog.LookupMetric(rule)
	switch {
	case metric:
		f.Ops, f.Min, f.Max, f.Unit = []string{"<", "<=", ">", ">="}, num(m.Min), num(m.Max), m.Unit
	case rule == rules.RuleLowBattery:
		f.Ops, f.Min, f.Max, f.Unit = []string{"<", "<="}, "0", "100", "%"
	case rule == rules.RuleNEWS2:
		f.Ops, f.Min, f.Max = []string{">", ">="}, "0", "20"
	}
	if len(def.Bands) > 0 {
		for i, b := range append(l.Bands, rules.Band{}) {
			r := band{Sev: b.Severity, Op: b.Op, For: durOf(b.For)}
			if b.Severity != "" {
				r.N, r.Value = i+1, num(b.Value)
			}
			if b.Repeat > 0 {
				r.Repeat = strconv.Itoa(b.Repeat)
			}
			f.Bands = append(f.Bands, r)
		}
	}
	if metric || def.ClearLow != 0 || l.ClearLow != 0 {
		f.Fields = append(f.Fields, field{Key: "clear_low", Type: "float", Value: unset(l.ClearLow)})
	}
	if metric || def.ClearHigh != 0 || l.ClearHigh != 0 {
		f.Fields = append(f.Fields, field{Key: "clear_high", Type: "float", Value: unset(l.ClearHigh)})
	}
	for _, d := range []struct {
		key      string
		def, cur time.Duration
	}{{"clear_for", def.ClearFor, l.ClearFor}, {"max_gap", def.MaxGap, l.MaxGap}, {"window", def.Window, l.Window}} {
		if d.def != 0 || (metric && d.key != "window") || d.cur != 0 {
			f.Fields = append(f.Fields, field{Key: d.key, Type: "dur", Dur: durOf(d.cur)})
		}
	}
	if def.Count != 0 || l.Count != 0 {
		f.Fields = append(f.Fields, field{Key: "count", Type: "int", Value: strconv.Itoa(l.Count)})
	}
	if def.From != "" {
		f.Fields = append(f.Fields, field{Key: "from", Type: "time", Value: l.From}, field{Key: "to", Type: "time", Value: l.To})
	}
	if len(f.Bands) == 0 && len(f.Fields) == 0 {
		return nil // smoke, gas, water_leak, cannot_monitor: nothing to set
	}
	return f
}

// interval is one row of the report intervals: a device kind (its default
// as the placeholder) or a device id with its own interval.
type interval struct {
	Key     string
	Kind    bool
	Default dur
	Value   dur
	Set     bool
}

func intervalsOf(st rules.Settings) []interval {
	var out []interval
	for _, k := range catalog.Kinds() {
		d, set := st.ReportIntervals[k]
		out = append(out, interval{Key: k, Kind: true, Default: durOf(rules.Settings{}.ReportInterval("", k)), Value: durOf(d), Set: set})
	}
	var ids []string
	for k := range st.ReportIntervals {
		if !catalog.ValidKind(k) {
			ids = append(ids, k)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		out = append(out, interval{Key: id, Value: durOf(st.ReportIntervals[id]), Set: true})
	}
	return out
}

// snoozeJSON is a snooze as the value of its "keep" checkbox.
func snoozeJSON(z rules.Snooze) string {
	b, _ := json.Marshal(z)
	return string(b)
}
