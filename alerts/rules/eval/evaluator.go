// Package eval decides, per resident, whether an alert condition holds: the
// threshold, NEWS2, event, inactivity, routine and device rules of domain.md,
// as package rules defines them and a resident's rules.Settings tune them.
// It is pure logic over readings, events, device status and a clock.
package eval

import (
	"sync"
	"time"

	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/internal/catalog"
)

// Evaluator holds every resident's rule state and turns readings, events,
// device status and clock ticks into Signals. Time comes only from the
// inputs' TS and from Tick's now, never from the wall clock, so tests move
// the clock and a replay after a restart decides as the original run did.
//
// It is safe for concurrent use; one mutex guards all state, as each call
// is a few map lookups and comparisons. State per resident is bounded by
// the resident's devices and rules, whatever the input rate.
type Evaluator struct {
	loc      *time.Location
	settings rules.SettingsSource

	mu        sync.Mutex
	residents map[string]*resident
}

// DeviceInfo is a registry device, told to the evaluator so that a device
// that never reported is still known (and can be found offline).
type DeviceInfo struct {
	ID     string
	Kind   string
	HomeID string
}

// New returns an evaluator that reads local times (night exit) in
// loc, Asia/Seoul when nil (contract §5 CARE_TIMEZONE default), and asks
// settings for each resident's limits.
func New(loc *time.Location, settings rules.SettingsSource) *Evaluator {
	if loc == nil {
		var err error
		if loc, err = time.LoadLocation("Asia/Seoul"); err != nil {
			loc = time.FixedZone("KST", 9*60*60) // Korea keeps no daylight saving
		}
	}
	return &Evaluator{loc: loc, settings: settings, residents: make(map[string]*resident)}
}

// Timing constants the domain leaves open.
const (
	// nightExitGrace: motion in the first minute after the door opened at
	// night is the resident walking out past the hall sensor, not someone
	// inside, so it does not cancel the night-exit watch.
	nightExitGrace = time.Minute
	// outOfBatteryPct: at or below this a sensor browns out and its reports
	// cannot be trusted, so for "cannot monitor" it counts as offline.
	outOfBatteryPct = 5
)

// vital is the latest value of one NEWS2 parameter, and since when the
// parameter's readings have scored at least 1, 2 and 3 without a break
// (Since[k-1]; zero when the latest reading scored below k). A score counts
// in NEWS2 only once it has held for the limit's persistence, as a vital's
// own rule does: one artefact reading must not page anyone.
type vital struct {
	V     float64      `json:"v"`
	TS    time.Time    `json:"ts,omitzero"`
	Since [3]time.Time `json:"since,omitzero"`
}

// record applies a reading of the parameter scoring sc. A gap longer than
// maxGap since its previous reading restarts the runs: a value seen again
// an hour later has not persisted for an hour.
func (v *vital) record(val float64, ts time.Time, sc int, maxGap time.Duration) {
	if !v.TS.IsZero() && ts.Sub(v.TS) > maxGap {
		v.Since = [3]time.Time{}
	}
	for k := 1; k <= 3; k++ {
		switch {
		case sc < k:
			v.Since[k-1] = time.Time{}
		case v.Since[k-1].IsZero():
			v.Since[k-1] = ts
		}
	}
	v.V, v.TS = val, ts
}

// held is the highest score the parameter's readings have kept for at
// least persist, up to its latest reading.
func (v *vital) held(persist time.Duration) int {
	for k := 3; k >= 1; k-- {
		if s := v.Since[k-1]; !s.IsZero() && v.TS.Sub(s) >= persist {
			return k
		}
	}
	return 0
}

// devState is what the evaluator knows of one device of a resident.
type devState struct {
	ID         string    `json:"id"`
	Kind       string    `json:"kind,omitempty"`
	KnownSince time.Time `json:"known_since,omitzero"` // first input or first tick after SetDevices
	LastSeen   time.Time `json:"last_seen,omitzero"`
	LWT        bool      `json:"lwt,omitempty"`   // its last status was offline (Last Will)
	LWTAt      time.Time `json:"lwt_at,omitzero"` // when that Last Will was sent
	Off        bool      `json:"off,omitempty"`   // offline as of the last check
	Battery    float64   `json:"battery"`         // -1 unknown
	LowBatt    int8      `json:"low_batt,omitempty"`
	LastHR     time.Time `json:"last_hr,omitzero"`
	// Last 0/1 values of presence, door_open and in_bed; -1 unknown.
	Presence int8 `json:"presence"`
	Door     int8 `json:"door"`
	InBed    int8 `json:"in_bed"`
}

// openCond is a condition the evaluator has signalled Active and not yet
// cleared, at the severity last signalled.
type openCond struct {
	Rule string `json:"rule"`
	Dev  string `json:"dev,omitempty"`
	Sev  int8   `json:"sev"`
}

// resident is one resident's rule state.
type resident struct {
	ID           string      `json:"id"`
	Home         string      `json:"home,omitempty"`
	FirstSeen    time.Time   `json:"first_seen,omitzero"`
	Devs         []*devState `json:"devs,omitempty"`
	Thr          []*thrState `json:"thr,omitempty"`
	Vitals       [5]vital    `json:"vitals"` // news2Params order
	News2Sev     int8        `json:"news2_sev,omitempty"`
	News2Total   int         `json:"news2_total,omitempty"`
	LastActivity time.Time   `json:"last_activity,omitzero"`
	PausedAt     time.Time   `json:"paused_at,omitzero"` // last moment a mode paused activity rules
	SOSAt        time.Time   `json:"sos_at,omitzero"`
	SOSDev       string      `json:"sos_dev,omitempty"` // the button that raised it: only it can cancel
	FallAt       time.Time   `json:"fall_at,omitzero"`  // a fall waiting for its cancel window
	FallDev      string      `json:"fall_dev,omitempty"`
	DoorAt       time.Time   `json:"door_at,omitzero"` // a night-time door opening being watched
	DoorDev      string      `json:"door_dev,omitempty"`
	NightExit    bool        `json:"night_exit,omitempty"`
	BathSince    time.Time   `json:"bath_since,omitzero"`
	BathDev      string      `json:"bath_dev,omitempty"`
	Open         []openCond  `json:"open,omitempty"`
}

func (e *Evaluator) resident(id, home string, ts time.Time) *resident {
	rs := e.residents[id]
	if rs == nil {
		rs = &resident{ID: id, FirstSeen: ts}
		e.residents[id] = rs
	}
	if home != "" {
		rs.Home = home
	}
	return rs
}

func newDev(id, kind string, ts time.Time) *devState {
	return &devState{ID: id, Kind: kind, KnownSince: ts, Battery: -1, Presence: -1, Door: -1, InBed: -1}
}

func (rs *resident) device(id, kind string, ts time.Time) *devState {
	for _, d := range rs.Devs {
		if d.ID == id {
			if d.Kind == "" {
				d.Kind = kind
			}
			return d
		}
	}
	d := newDev(id, kind, ts)
	rs.Devs = append(rs.Devs, d)
	return d
}

func (rs *resident) thr(rule, dev string) *thrState {
	for _, s := range rs.Thr {
		if s.Rule == rule && s.Dev == dev {
			return s
		}
	}
	s := &thrState{Rule: rule, Dev: dev}
	rs.Thr = append(rs.Thr, s)
	return s
}

func (rs *resident) open(rule, dev string) int {
	for i, c := range rs.Open {
		if c.Rule == rule && c.Dev == dev {
			return i
		}
	}
	return -1
}

// inBed reports whether a bed sensor's latest state is occupied.
func (rs *resident) inBed() bool {
	for _, d := range rs.Devs {
		if d.InBed == 1 {
			return true
		}
	}
	return false
}

func (rs *resident) hasMotionDevice() bool {
	for _, d := range rs.Devs {
		if catalog.MotionType(d.Kind) {
			return true
		}
	}
	return false
}

// cond is a rule's condition as a rule computes it; report turns changes of
// it into signals.
type cond struct {
	rule, dev, metric string
	src               string // the signal's DeviceID when dev (part of the key) is empty
	sev               int8
	value, threshold  float64
	msg               string
}

// changes reports whether report would signal anything for a condition at
// sev, so callers build a message only when one is needed (Tick visits
// every resident every few seconds).
func (e *Evaluator) changes(rs *resident, st rules.Settings, at time.Time, rule, dev string, sev int8) bool {
	if st.Disabled[rule] {
		sev = sevNone
	}
	cur := sevNone
	if i := rs.open(rule, dev); i >= 0 {
		cur = rs.Open[i].Sev
	}
	switch {
	case sev > cur:
		return sev >= sevCritical || !st.SnoozedAt(rule, at)
	case sev == sevNone && cur > sevNone:
		return true
	}
	return false
}

// report signals a condition's change: Active when its severity rises above
// what was last signalled, !Active when it ended. A disabled rule's
// condition is treated as ended. A snoozed rule raises nothing new below
// critical until the snooze ends (then the next tick raises it), but still
// clears.
func (e *Evaluator) report(rs *resident, st rules.Settings, at time.Time, c cond, out []rules.Signal) []rules.Signal {
	if st.Disabled[c.rule] {
		c.sev = sevNone
	}
	i := rs.open(c.rule, c.dev)
	cur := sevNone
	if i >= 0 {
		cur = rs.Open[i].Sev
	}
	switch {
	case c.sev > cur:
		if c.sev < sevCritical && st.SnoozedAt(c.rule, at) {
			return out
		}
		if i >= 0 {
			rs.Open[i].Sev = c.sev
		} else {
			rs.Open = append(rs.Open, openCond{Rule: c.rule, Dev: c.dev, Sev: c.sev})
		}
		return append(out, e.signal(rs, at, c, true, false))
	case c.sev == sevNone && cur > sevNone:
		rs.Open = append(rs.Open[:i], rs.Open[i+1:]...)
		return append(out, e.signal(rs, at, c, false, false))
	}
	return out
}

// fire signals one occurrence of an event rule (sos, smoke, gas, fall,
// water_leak). Each occurrence is a signal: the lifecycle counts a repeat
// of an open alert. Snooze holds back only what is neither critical nor
// all-tiers.
func (e *Evaluator) fire(rs *resident, st rules.Settings, at time.Time, c cond, allTiers bool, out []rules.Signal) []rules.Signal {
	if st.Disabled[c.rule] || (c.sev < sevCritical && !allTiers && st.SnoozedAt(c.rule, at)) {
		return out
	}
	return append(out, e.signal(rs, at, c, true, allTiers))
}

func (e *Evaluator) signal(rs *resident, at time.Time, c cond, active, allTiers bool) rules.Signal {
	s := rules.Signal{
		ResidentID: rs.ID, HomeID: rs.Home, DeviceID: c.dev, Rule: c.rule, Active: active,
		Metric: c.metric, Value: c.value, Threshold: c.threshold, Message: c.msg,
		AllTiers: allTiers, At: at,
	}
	if s.DeviceID == "" {
		s.DeviceID = c.src
	}
	if active {
		s.Severity = sevNames[c.sev]
	}
	return s
}
