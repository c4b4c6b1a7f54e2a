package eval

import (
	"time"

	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/model"
)

// Readings: vital-sign thresholds, the NEWS2 score and battery levels.

// Reading applies one normalized reading. devKind is the device's registry
// kind (the reading's own DeviceKind when empty).
func (e *Evaluator) Reading(r model.Reading, devKind string) []rules.Signal {
	st := e.settings.Settings(r.ResidentID)
	if devKind == "" {
		devKind = r.DeviceKind
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	rs := e.resident(r.ResidentID, r.HomeID, r.TS)
	d := rs.device(r.DeviceID, devKind, r.TS)
	out := e.seen(rs, st, d, r.TS, nil)

	for _, rule := range thresholdRules {
		v, ok := r.Values[rule]
		if !ok {
			continue
		}
		dev := ""
		if perDeviceMetric(rule) {
			dev = d.ID
		}
		rs.thr(rule, dev).apply(v, r.TS, st.Limit(rule), st.HeatWave, rule == rules.RuleHeartRate && rs.inBed())
		out = e.reportThr(rs, st, rule, r.TS, d.ID, out)
	}

	fresh := false
	nl := st.Limit(rules.RuleNEWS2)
	for i, p := range news2Params {
		if v, ok := r.Values[p]; ok && r.TS.After(rs.Vitals[i].TS) {
			rs.Vitals[i].record(v, r.TS, news2Score(i, v, st.SpO2Scale), nl.Window)
			fresh = true
		}
	}
	if fresh {
		out = e.news2(rs, st, r.TS, d.ID, out)
	}
	if v, ok := r.Values["battery_pct"]; ok {
		out = e.battery(rs, st, d, v, r.TS, out)
	}
	if _, ok := r.Values["heart_rate"]; ok && d.Kind == catalog.KindWearable && r.TS.After(d.LastHR) {
		d.LastHR = r.TS
		out = e.report(rs, st, r.TS, cond{rule: rules.RuleWearableNotWorn, dev: d.ID, msg: "wearable worn again"}, out)
	}

	// Activity: motion, or a change of presence, door or bed (domain.md
	// inactivity). A device's first 0/1 value is no change: after a
	// restart without a snapshot a steady "present" is not movement.
	activity, doorOpened, bath := false, false, false
	if v, ok := r.Values["motion"]; ok && v > 0 {
		activity, bath = true, true
	}
	if v, ok := r.Values["presence"]; ok {
		p := bit(v)
		if d.Presence >= 0 && p != d.Presence {
			activity = true
		}
		d.Presence = p
		bath = bath || p == 1
		if p == 0 && st.Bathroom(d.ID) && rs.BathDev == d.ID {
			rs.BathSince = time.Time{}
			out = e.report(rs, st, r.TS, cond{rule: rules.RuleBathroomStay, msg: "left the bathroom"}, out)
		}
	}
	if v, ok := r.Values["door_open"]; ok {
		o := bit(v)
		if d.Door >= 0 && o != d.Door {
			activity = true
			doorOpened = o == 1
		}
		d.Door = o
	}
	if v, ok := r.Values["in_bed"]; ok {
		b := bit(v)
		if d.InBed >= 0 && b != d.InBed {
			activity = true
		}
		d.InBed = b
	}
	if activity {
		out = e.activity(rs, st, d, r.TS, bath, out)
	} else if bath && st.Bathroom(d.ID) {
		e.enterBathroom(rs, d, r.TS)
	}
	if doorOpened {
		e.doorOpened(rs, st, d, r.TS)
	}
	return out
}

func bit(v float64) int8 {
	if v >= 0.5 {
		return 1
	}
	return 0
}

// reportThr reports a threshold rule at the highest severity over its
// states (one per device for room metrics, one for vitals). The condition
// is keyed by the rule alone, one per resident as the lifecycle keeps one
// alert per (resident, rule); the signal names the device: the one whose
// state is highest, or src, whose reading it was, for vitals.
func (e *Evaluator) reportThr(rs *resident, st rules.Settings, rule string, at time.Time, src string, out []rules.Signal) []rules.Signal {
	var top *thrState
	for _, s := range rs.Thr {
		if s.Rule == rule && (top == nil || s.Sev > top.Sev) {
			top = s
		}
	}
	if top == nil {
		return out
	}
	if !e.changes(rs, st, at, rule, "", top.Sev) {
		return out
	}
	if top.Dev != "" {
		src = top.Dev
	}
	c := cond{rule: rule, src: src, metric: rule, sev: top.Sev, value: top.Value, threshold: top.Threshold}
	if top.Sev > sevNone {
		c.msg = thresholdMsg(rule, top.Value, top.Op, top.Threshold, top.Held)
	} else {
		c.msg = rule + " back to normal"
	}
	return e.report(rs, st, at, c, out)
}

// news2 scores the resident's vitals (domain.md NEWS2 total), once at
// least minNEWS2Params of them were measured close in time: within the
// limit's Window of the newest vital (and of at). A parameter scoring 3
// on one reading among normal ones is an artefact as often as not, so the
// score that raises counts each parameter at the score it has held for the
// limit's persistence (news2Persist), like the vital-sign rules; the alert
// clears on the latest readings' score (hysteresis: a single better
// reading does not end it unless it brings the total to ClearHigh).
func (e *Evaluator) news2(rs *resident, st rules.Settings, at time.Time, src string, out []rules.Signal) []rules.Signal {
	l := st.Limit(rules.RuleNEWS2)
	persist := news2Persist(l)
	var newest time.Time
	for _, v := range rs.Vitals {
		newest = latest(newest, v.TS)
	}
	if at.Sub(newest) > l.Window {
		return out
	}
	n, total, raw, single3, raw3 := 0, 0, 0, false, false
	for i, v := range rs.Vitals {
		if v.TS.IsZero() || newest.Sub(v.TS) > l.Window {
			continue
		}
		n++
		h := v.held(persist)
		total += h
		single3 = single3 || h == 3
		sc := news2Score(i, v.V, st.SpO2Scale)
		raw += sc
		raw3 = raw3 || sc == 3
	}
	if n < minNEWS2Params {
		return out
	}
	want, thr := sevNone, 0.0
	for _, b := range l.Bands {
		if b.Crossed(float64(total)) && sevRank(b.Severity) > want {
			want, thr = sevRank(b.Severity), b.Value
		}
	}
	if single3 && want < sevHigh {
		want, thr = sevHigh, 3
	}
	shown := total
	switch {
	case want > rs.News2Sev:
		rs.News2Sev = want
	case rs.News2Sev > sevNone && float64(raw) <= l.ClearHigh && !raw3:
		rs.News2Sev = sevNone
		shown = raw
	}
	rs.News2Total = shown
	if !e.changes(rs, st, at, rules.RuleNEWS2, "", rs.News2Sev) {
		return out
	}
	c := cond{rule: rules.RuleNEWS2, src: src, metric: rules.RuleNEWS2, sev: rs.News2Sev, value: float64(shown), threshold: thr}
	c.msg = news2Msg(shown, single3, n)
	return e.report(rs, st, at, c, out)
}

// news2Persist is how long a parameter's score must hold before it counts:
// the largest For of the NEWS2 bands (5 min by default, as the continuous
// vital-sign rules).
func news2Persist(l rules.Limit) time.Duration {
	var d time.Duration
	for _, b := range l.Bands {
		d = max(d, b.For)
	}
	return d
}

// battery applies a battery level from a reading or a status report.
func (e *Evaluator) battery(rs *resident, st rules.Settings, d *devState, v float64, at time.Time, out []rules.Signal) []rules.Signal {
	d.Battery = v
	l := st.Limit(rules.RuleLowBattery)
	want, thr := sevNone, 0.0
	for _, b := range l.Bands {
		if b.Crossed(v) && sevRank(b.Severity) > want {
			want, thr = sevRank(b.Severity), b.Value
		}
	}
	switch {
	case want > d.LowBatt:
		d.LowBatt = want
	case d.LowBatt > sevNone && v >= l.ClearLow:
		d.LowBatt = sevNone
	}
	if e.changes(rs, st, at, rules.RuleLowBattery, d.ID, d.LowBatt) {
		c := cond{rule: rules.RuleLowBattery, dev: d.ID, metric: "battery_pct", sev: d.LowBatt, value: v, threshold: thr}
		c.msg = batteryMsg(v, d.LowBatt > sevNone)
		out = e.report(rs, st, at, c, out)
	}
	return e.monitor(rs, st, at, out)
}
