package eval

import (
	"time"

	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/model"
)

// Devices: who is online, the registry's device list, and whether the
// home can be monitored at all.

// seen records that a device reported: it is online again.
func (e *Evaluator) seen(rs *resident, st rules.Settings, d *devState, at time.Time, out []rules.Signal) []rules.Signal {
	if at.After(d.LastSeen) {
		d.LastSeen = at
	}
	if !d.Off && !d.LWT {
		return out
	}
	d.Off, d.LWT = false, false
	out = e.report(rs, st, at, cond{rule: rules.RuleDeviceOffline, dev: d.ID, msg: "device reporting again"}, out)
	return e.monitor(rs, st, at, out)
}

// monitor raises "cannot monitor" when every motion-type device of the
// resident's home is offline or out of battery: nothing could then see an
// inactivity or a fall-to-the-floor, and only people can fix that.
func (e *Evaluator) monitor(rs *resident, st rules.Settings, at time.Time, out []rules.Signal) []rules.Signal {
	n, down := 0, 0
	for _, d := range rs.Devs {
		if !catalog.MotionType(d.Kind) {
			continue
		}
		n++
		if d.Off || (d.Battery >= 0 && d.Battery <= outOfBatteryPct) {
			down++
		}
	}
	c := cond{rule: rules.RuleCannotMonitor, msg: "a motion sensor is working again"}
	if n > 0 && down == n {
		c.sev = sevHigh
		c.value = float64(n)
		c.msg = countMsg(n)
	}
	return e.report(rs, st, at, c, out)
}

// activity records movement seen by device d at ts: it ends inactivity, a
// night-exit watch (unless it is the door itself, or the resident walking
// out in the grace minute) and a bathroom stay (unless it is the bathroom).

// Status applies a device's status report or Last Will.
func (e *Evaluator) Status(s model.Status) []rules.Signal {
	st := e.settings.Settings(s.ResidentID)
	e.mu.Lock()
	defer e.mu.Unlock()
	rs := e.resident(s.ResidentID, s.HomeID, s.TS)
	d := rs.device(s.DeviceID, s.DeviceKind, s.TS)
	var out []rules.Signal
	if s.Online {
		out = e.seen(rs, st, d, s.TS, out)
	} else if !s.TS.Before(d.LastSeen) && !d.LWT {
		// A Last Will older than the device's latest report is a stale
		// retained message: the device has been back since. A fresh one
		// starts the Will's grace period (WillGrace): Tick raises
		// device_offline only if the device is not back by then, as most
		// Wills are a gateway or a Wi-Fi link dropping for seconds.
		d.LWT, d.LWTAt = true, s.TS
	}
	if s.BatteryPct != nil {
		out = e.battery(rs, st, d, *s.BatteryPct, s.TS, out)
	}
	return out
}

// SetDevices tells the evaluator a resident's complete device list from the
// registry, so that a device that never reported is known (and found
// offline after its missed reports, counted from the next Tick). Devices
// not in the list are forgotten; their open conditions clear on the next
// Tick.
func (e *Evaluator) SetDevices(residentID string, devs []DeviceInfo) {
	e.mu.Lock()
	defer e.mu.Unlock()
	home := ""
	if len(devs) > 0 {
		home = devs[0].HomeID
	}
	rs := e.resident(residentID, home, time.Time{})
	next := make([]*devState, 0, len(devs))
	for _, in := range devs {
		var d *devState
		for _, old := range rs.Devs {
			if old.ID == in.ID {
				d = old
			}
		}
		if d == nil {
			d = newDev(in.ID, in.Kind, time.Time{})
		}
		if in.Kind != "" {
			d.Kind = in.Kind
		}
		next = append(next, d)
	}
	rs.Devs = next
}
