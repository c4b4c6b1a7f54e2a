package eval

import (
	"slices"
	"time"

	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/internal/catalog"
)

// The clock: rules whose signal is an input that did not come.

// Tick runs the time-based rules at now, where an absent input is the
// signal: inactivity, night exit, bathroom stay, a fall not cancelled,
// devices gone silent, a wearable not worn, cannot monitor. It also
// re-reports threshold conditions, so a snooze ending or a rule being
// disabled takes effect without waiting for a reading. Call it every few
// seconds; the rules' resolution is the tick interval.
func (e *Evaluator) Tick(now time.Time) []rules.Signal {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []rules.Signal
	for _, rs := range e.residents {
		out = e.tick(rs, e.settings.Settings(rs.ID), now, out)
	}
	return out
}

func (e *Evaluator) tick(rs *resident, st rules.Settings, now time.Time, out []rules.Signal) []rules.Signal {
	if rs.FirstSeen.IsZero() {
		rs.FirstSeen = now
	}
	for _, d := range rs.Devs {
		if d.KnownSince.IsZero() {
			d.KnownSince = now
		}
	}

	// Activity and routine rules, paused by a mode. The pause moves the
	// inactivity and bathroom clocks: back from hospital is not 3 days idle.
	if st.ModeActive(now) {
		rs.PausedAt, rs.DoorAt, rs.NightExit = now, time.Time{}, false
		for _, r := range [...]string{rules.RuleInactivity, rules.RuleNightExit, rules.RuleBathroomStay} {
			if e.changes(rs, st, now, r, "", sevNone) {
				out = e.report(rs, st, now, cond{rule: r, msg: "paused: " + st.Mode + " mode"}, out)
			}
		}
	} else {
		if rs.hasMotionDevice() {
			base := latest(rs.LastActivity, rs.FirstSeen, rs.PausedAt)
			idle := now.Sub(base)
			c := cond{rule: rules.RuleInactivity}
			for _, b := range st.Limit(rules.RuleInactivity).Bands {
				if idle >= b.For && sevRank(b.Severity) > c.sev {
					c.sev, c.threshold = sevRank(b.Severity), b.For.Hours()
				}
			}
			if e.changes(rs, st, now, c.rule, "", c.sev) {
				c.value = idle.Hours()
				c.msg = idleMsg(idle)
				out = e.report(rs, st, now, c, out)
			}
		}
		nl := st.Limit(rules.RuleNightExit)
		if !rs.DoorAt.IsZero() && now.Sub(rs.DoorAt) >= nl.Window {
			rs.NightExit, rs.DoorAt = true, time.Time{}
			out = e.report(rs, st, now, cond{rule: rules.RuleNightExit, src: rs.DoorDev, sev: sevHigh,
				msg: "door opened at night, no motion inside since"}, out)
		}
		if !rs.BathSince.IsZero() && now.Sub(latest(rs.BathSince, rs.PausedAt)) > st.Limit(rules.RuleBathroomStay).Window {
			out = e.report(rs, st, now, cond{rule: rules.RuleBathroomStay, sev: sevHigh,
				value: now.Sub(rs.BathSince).Minutes(), msg: "in the bathroom for over " + st.Limit(rules.RuleBathroomStay).Window.String()}, out)
		}
	}

	if !rs.FallAt.IsZero() && now.Sub(rs.FallAt) >= st.Limit(rules.RuleFall).Window {
		out = e.fire(rs, st, now, cond{rule: rules.RuleFall, src: rs.FallDev, sev: sevCritical,
			msg: "fall detected, not cancelled"}, false, out)
		rs.FallAt, rs.FallDev = time.Time{}, ""
	}

	// Devices.
	missed := st.Limit(rules.RuleDeviceOffline).Count
	worn := st.Limit(rules.RuleWearableNotWorn).Window
	for _, d := range rs.Devs {
		iv := st.ReportInterval(d.ID, d.Kind)
		base := latest(d.LastSeen, d.KnownSince)
		d.Off = (d.LWT && now.Sub(d.LWTAt) >= rules.WillGrace(st, d.Kind)) || (iv > 0 && now.Sub(base) > time.Duration(missed)*iv)
		c := cond{rule: rules.RuleDeviceOffline, dev: d.ID, msg: "device reporting again"}
		if d.Off {
			c.sev = sevHigh
		}
		if e.changes(rs, st, now, c.rule, c.dev, c.sev) {
			if d.Off {
				c.msg = "device offline: " + silentMsg(now.Sub(base), d.LWT)
			}
			out = e.report(rs, st, now, c, out)
		}
		if d.Kind == catalog.KindWearable {
			c := cond{rule: rules.RuleWearableNotWorn, dev: d.ID, msg: "wearable worn again"}
			if !d.Off && now.Sub(latest(d.LastHR, d.KnownSince)) > worn {
				c.sev = sevInfo
			}
			if e.changes(rs, st, now, c.rule, c.dev, c.sev) {
				if c.sev > sevNone {
					c.msg = "no heart rate from the wearable for over " + worn.String()
				}
				out = e.report(rs, st, now, c, out)
			}
		}
	}
	// Conditions of devices no longer in the registry end.
	for i := 0; i < len(rs.Open); i++ {
		c := rs.Open[i]
		if c.Dev == "" {
			continue
		}
		if !rs.hasDevice(c.Dev) {
			out = e.report(rs, st, now, cond{rule: c.Rule, dev: c.Dev, msg: "device removed"}, out)
			i--
		}
	}
	out = e.monitor(rs, st, now, out)

	for i, s := range rs.Thr {
		if firstOfRule(rs.Thr[:i], s.Rule) {
			out = e.reportThr(rs, st, s.Rule, now, "", out)
		}
	}
	if !e.changes(rs, st, now, rules.RuleNEWS2, "", rs.News2Sev) {
		return out
	}
	return e.report(rs, st, now, cond{rule: rules.RuleNEWS2, metric: rules.RuleNEWS2, sev: rs.News2Sev,
		value: float64(rs.News2Total), msg: news2Msg(rs.News2Total, false, 0)}, out)
}

func firstOfRule(before []*thrState, rule string) bool {
	return !slices.ContainsFunc(before, func(s *thrState) bool { return s.Rule == rule })
}

func (rs *resident) hasDevice(id string) bool {
	return slices.ContainsFunc(rs.Devs, func(d *devState) bool { return d.ID == id })
}

func latest(ts ...time.Time) time.Time {
	var m time.Time
	for _, t := range ts {
		if t.After(m) {
			m = t
		}
	}
	return m
}
