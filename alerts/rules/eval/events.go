package eval

import (
	"encoding/json"
	"time"

	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/model"
)

// Device events: alarms, their cancels and everyday events.

// StaleEventAge is how old an event may be when it reaches carehub and
// still raise an escalating alert (issue 9 item 11). An SOS, fall, smoke
// or gas event that a device queued through an outage and sends half an
// hour later is history: it is stored and shown with the resident's
// events, but paging a care worker and calling 119 for it would send help
// to an emergency that has already been answered or has not been seen by
// anyone for half an hour, and a forged or replayed old event must not
// start the chain either. Five minutes leaves room for a device's
// retries and a gateway's reconnect.
const StaleEventAge = 5 * time.Minute

// Event applies one device event, as EventAt without an arrival time (no
// staleness check).
func (e *Evaluator) Event(ev model.Event) []rules.Signal { return e.EventAt(ev, time.Time{}) }

// EventAt applies one device event that reached carehub at arrived. An
// event older than StaleEventAge at arrival raises nothing: it still
// counts as the device being seen and as activity, and a stale cancel
// still cancels, but it starts no alert, fall window or night-exit watch.
// Cancels (sos_cancel, fall_cancel) count only from the device that raised
// the alert: a cancel from another device of the home is ignored.
func (e *Evaluator) EventAt(ev model.Event, arrived time.Time) []rules.Signal {
	st := e.settings.Settings(ev.ResidentID)
	e.mu.Lock()
	defer e.mu.Unlock()
	rs := e.resident(ev.ResidentID, ev.HomeID, ev.TS)
	d := rs.device(ev.DeviceID, ev.DeviceKind, ev.TS)
	out := e.seen(rs, st, d, ev.TS, nil)
	ts := ev.TS
	if !arrived.IsZero() && arrived.Sub(ts) > StaleEventAge {
		switch ev.Type {
		case catalog.EventSOS, catalog.EventFall, catalog.EventSmoke, catalog.EventGas,
			catalog.EventWaterLeak, catalog.EventCO:
			return out
		case catalog.EventDoorOpen:
			out = e.activity(rs, st, d, ts, false, out)
			d.Door = 1
			return out
		}
	}
	switch ev.Type {
	case catalog.EventSOS:
		rs.SOSAt, rs.SOSDev = ts, d.ID
		c := cond{rule: rules.RuleSOS, src: d.ID, sev: sevCritical, msg: "SOS button pressed"}
		before := len(out)
		out = e.fire(rs, st, ts, c, true, out)
		if len(out) > before && rs.open(rules.RuleSOS, "") < 0 {
			rs.Open = append(rs.Open, openCond{Rule: rules.RuleSOS, Sev: sevCritical})
		}
	case catalog.EventSOSCancel:
		// domain.md: cancelled by sos_cancel within 30 s → auto-cleared. A
		// later cancel changes nothing: a person must resolve the alert.
		// Only the button that raised it can cancel it (an older snapshot
		// without SOSDev accepts any).
		w := st.Limit(rules.RuleSOS).Window
		if !rs.SOSAt.IsZero() && !ts.Before(rs.SOSAt) && ts.Sub(rs.SOSAt) <= w && (rs.SOSDev == "" || rs.SOSDev == d.ID) {
			out = e.report(rs, st, ts, cond{rule: rules.RuleSOS, src: d.ID, msg: "SOS cancelled at the button"}, out)
			rs.SOSAt, rs.SOSDev = time.Time{}, ""
		}
	case catalog.EventFall:
		if rs.FallAt.IsZero() {
			rs.FallAt, rs.FallDev = ts, d.ID
		}
	case catalog.EventFallCancel:
		if !rs.FallAt.IsZero() && !ts.Before(rs.FallAt) && ts.Sub(rs.FallAt) <= st.Limit(rules.RuleFall).Window && d.ID == rs.FallDev {
			rs.FallAt, rs.FallDev = time.Time{}, ""
		}
	case catalog.EventSmoke:
		out = e.fire(rs, st, ts, cond{rule: rules.RuleSmoke, src: d.ID, sev: sevCritical, msg: "smoke detected"}, true, out)
	case catalog.EventGas:
		out = e.fire(rs, st, ts, cond{rule: rules.RuleGas, src: d.ID, sev: sevCritical, msg: "gas detected"}, true, out)
	case catalog.EventWaterLeak:
		// Design choice: a leak is property damage and a slip hazard, worth
		// a look today, not a page at night: warning.
		out = e.fire(rs, st, ts, cond{rule: rules.RuleWaterLeak, src: d.ID, sev: sevWarning, msg: "water leak detected"}, false, out)
	case catalog.EventCO:
		sev, v, thr := coEventSeverity(ev.Data, st.Limit(rules.RuleCO))
		rs.thr(rules.RuleCO, d.ID).force(sev, v, thr)
		out = e.reportThr(rs, st, rules.RuleCO, ts, d.ID, out)
	case catalog.EventDoorOpen:
		out = e.activity(rs, st, d, ts, false, out)
		d.Door = 1
		e.doorOpened(rs, st, d, ts)
	case catalog.EventDoorClose:
		d.Door = 0
		out = e.activity(rs, st, d, ts, false, out)
	case catalog.EventMotion, catalog.EventToilet:
		out = e.activity(rs, st, d, ts, true, out)
	case catalog.EventBedExit, catalog.EventBedEnter:
		d.InBed = 0
		if ev.Type == catalog.EventBedEnter {
			d.InBed = 1
		}
		out = e.activity(rs, st, d, ts, false, out)
	}
	return out
}

// coEventSeverity reads a CO detector's alarm: high, or the CO bands'
// severity for the ppm in data ({"ppm": 250} or {"value": 250}) when higher.
func coEventSeverity(data json.RawMessage, l rules.Limit) (sev int8, v, thr float64) {
	sev = sevHigh
	var d struct {
		PPM   *float64 `json:"ppm"`
		Value *float64 `json:"value"`
	}
	if len(data) == 0 || json.Unmarshal(data, &d) != nil {
		return sev, 0, 0
	}
	p := d.PPM
	if p == nil {
		p = d.Value
	}
	if p == nil {
		return sev, 0, 0
	}
	v = *p
	for _, b := range l.Bands {
		if b.Crossed(v) && sevRank(b.Severity) >= sev {
			sev, thr = sevRank(b.Severity), b.Value
		}
	}
	return sev, v, thr
}
