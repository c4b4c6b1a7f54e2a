package eval

import (
	"time"

	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/internal/catalog"
)

// Activity: movement that ends inactivity, night-exit and bathroom watches.

func (e *Evaluator) activity(rs *resident, st rules.Settings, d *devState, ts time.Time, presenceLike bool, out []rules.Signal) []rules.Signal {
	if ts.After(rs.LastActivity) {
		rs.LastActivity = ts
	}
	out = e.report(rs, st, ts, cond{rule: rules.RuleInactivity, msg: "activity seen"}, out)
	inside := d.Kind != catalog.KindDoor && d.ID != rs.DoorDev
	if inside {
		if !rs.DoorAt.IsZero() && ts.Sub(rs.DoorAt) >= nightExitGrace {
			rs.DoorAt = time.Time{}
		}
		if rs.NightExit {
			rs.NightExit = false
			out = e.report(rs, st, ts, cond{rule: rules.RuleNightExit, msg: "motion inside after the night exit"}, out)
		}
	}
	if st.Bathroom(d.ID) {
		if presenceLike {
			e.enterBathroom(rs, d, ts)
		}
	} else if !rs.BathSince.IsZero() && ts.After(rs.BathSince) {
		rs.BathSince = time.Time{}
		out = e.report(rs, st, ts, cond{rule: rules.RuleBathroomStay, msg: "activity outside the bathroom"}, out)
	}
	return out
}

// enterBathroom starts a bathroom stay, unless the bed says the resident
// is in bed: a motion sensor's count covers the minutes before its report,
// so the bathroom's report can arrive after the resident went to bed, and
// a stay started then would page an hour later about a sleeping resident.
func (e *Evaluator) enterBathroom(rs *resident, d *devState, ts time.Time) {
	if rs.inBed() {
		return
	}
	if rs.BathSince.IsZero() {
		rs.BathSince, rs.BathDev = ts, d.ID
	}
}

// doorOpened starts a night-exit watch when the door opens inside the
// night window (local time).
func (e *Evaluator) doorOpened(rs *resident, st rules.Settings, d *devState, ts time.Time) {
	if st.ModeActive(ts) {
		return
	}
	l := st.Limit(rules.RuleNightExit)
	from, err1 := rules.ParseClock(l.From)
	to, err2 := rules.ParseClock(l.To)
	if err1 != nil || err2 != nil {
		return
	}
	lt := ts.In(e.loc)
	m := lt.Hour()*60 + lt.Minute()
	in := m >= from && m < to
	if from > to { // the window spans midnight
		in = m >= from || m < to
	}
	if in {
		rs.DoorAt, rs.DoorDev = ts, d.ID
	}
}
