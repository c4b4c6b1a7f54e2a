package rules

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/model"
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
	settings SettingsSource

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

// NewEvaluator returns an evaluator that reads local times (night exit) in
// loc, Asia/Seoul when nil (contract §5 CARE_TIMEZONE default), and asks
// settings for each resident's limits.
func NewEvaluator(loc *time.Location, settings SettingsSource) *Evaluator {
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
func (e *Evaluator) changes(rs *resident, st Settings, at time.Time, rule, dev string, sev int8) bool {
	if st.Disabled[rule] {
		sev = sevNone
	}
	cur := sevNone
	if i := rs.open(rule, dev); i >= 0 {
		cur = rs.Open[i].Sev
	}
	switch {
	case sev > cur:
		return sev >= sevCritical || !st.snoozed(rule, at)
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
func (e *Evaluator) report(rs *resident, st Settings, at time.Time, c cond, out []Signal) []Signal {
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
		if c.sev < sevCritical && st.snoozed(c.rule, at) {
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
func (e *Evaluator) fire(rs *resident, st Settings, at time.Time, c cond, allTiers bool, out []Signal) []Signal {
	if st.Disabled[c.rule] || (c.sev < sevCritical && !allTiers && st.snoozed(c.rule, at)) {
		return out
	}
	return append(out, e.signal(rs, at, c, true, allTiers))
}

func (e *Evaluator) signal(rs *resident, at time.Time, c cond, active, allTiers bool) Signal {
	s := Signal{
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

// Reading applies one normalized reading. devKind is the device's registry
// kind (the reading's own DeviceKind when empty).
func (e *Evaluator) Reading(r model.Reading, devKind string) []Signal {
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
		rs.thr(rule, dev).apply(v, r.TS, st.Limit(rule), st.HeatWave, rule == RuleHeartRate && rs.inBed())
		out = e.reportThr(rs, st, rule, r.TS, d.ID, out)
	}

	fresh := false
	nl := st.Limit(RuleNEWS2)
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
		out = e.report(rs, st, r.TS, cond{rule: RuleWearableNotWorn, dev: d.ID, msg: "wearable worn again"}, out)
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
		if p == 0 && st.bathroom(d.ID) && rs.BathDev == d.ID {
			rs.BathSince = time.Time{}
			out = e.report(rs, st, r.TS, cond{rule: RuleBathroomStay, msg: "left the bathroom"}, out)
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
	} else if bath && st.bathroom(d.ID) {
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
func (e *Evaluator) reportThr(rs *resident, st Settings, rule string, at time.Time, src string, out []Signal) []Signal {
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
func (e *Evaluator) news2(rs *resident, st Settings, at time.Time, src string, out []Signal) []Signal {
	l := st.Limit(RuleNEWS2)
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
		if b.crossed(float64(total)) && sevRank(b.Severity) > want {
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
	if !e.changes(rs, st, at, RuleNEWS2, "", rs.News2Sev) {
		return out
	}
	c := cond{rule: RuleNEWS2, src: src, metric: RuleNEWS2, sev: rs.News2Sev, value: float64(shown), threshold: thr}
	c.msg = news2Msg(shown, single3, n)
	return e.report(rs, st, at, c, out)
}

// news2Persist is how long a parameter's score must hold before it counts:
// the largest For of the NEWS2 bands (5 min by default, as the continuous
// vital-sign rules).
func news2Persist(l Limit) time.Duration {
	var d time.Duration
	for _, b := range l.Bands {
		d = max(d, b.For)
	}
	return d
}

// battery applies a battery level from a reading or a status report.
func (e *Evaluator) battery(rs *resident, st Settings, d *devState, v float64, at time.Time, out []Signal) []Signal {
	d.Battery = v
	l := st.Limit(RuleLowBattery)
	want, thr := sevNone, 0.0
	for _, b := range l.Bands {
		if b.crossed(v) && sevRank(b.Severity) > want {
			want, thr = sevRank(b.Severity), b.Value
		}
	}
	switch {
	case want > d.LowBatt:
		d.LowBatt = want
	case d.LowBatt > sevNone && v >= l.ClearLow:
		d.LowBatt = sevNone
	}
	if e.changes(rs, st, at, RuleLowBattery, d.ID, d.LowBatt) {
		c := cond{rule: RuleLowBattery, dev: d.ID, metric: "battery_pct", sev: d.LowBatt, value: v, threshold: thr}
		c.msg = batteryMsg(v, d.LowBatt > sevNone)
		out = e.report(rs, st, at, c, out)
	}
	return e.monitor(rs, st, at, out)
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

// seen records that a device reported: it is online again.
func (e *Evaluator) seen(rs *resident, st Settings, d *devState, at time.Time, out []Signal) []Signal {
	if at.After(d.LastSeen) {
		d.LastSeen = at
	}
	if !d.Off && !d.LWT {
		return out
	}
	d.Off, d.LWT = false, false
	out = e.report(rs, st, at, cond{rule: RuleDeviceOffline, dev: d.ID, msg: "device reporting again"}, out)
	return e.monitor(rs, st, at, out)
}

// monitor raises "cannot monitor" when every motion-type device of the
// resident's home is offline or out of battery: nothing could then see an
// inactivity or a fall-to-the-floor, and only people can fix that.
func (e *Evaluator) monitor(rs *resident, st Settings, at time.Time, out []Signal) []Signal {
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
	c := cond{rule: RuleCannotMonitor, msg: "a motion sensor is working again"}
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
func (e *Evaluator) activity(rs *resident, st Settings, d *devState, ts time.Time, presenceLike bool, out []Signal) []Signal {
	if ts.After(rs.LastActivity) {
		rs.LastActivity = ts
	}
	out = e.report(rs, st, ts, cond{rule: RuleInactivity, msg: "activity seen"}, out)
	inside := d.Kind != catalog.KindDoor && d.ID != rs.DoorDev
	if inside {
		if !rs.DoorAt.IsZero() && ts.Sub(rs.DoorAt) >= nightExitGrace {
			rs.DoorAt = time.Time{}
		}
		if rs.NightExit {
			rs.NightExit = false
			out = e.report(rs, st, ts, cond{rule: RuleNightExit, msg: "motion inside after the night exit"}, out)
		}
	}
	if st.bathroom(d.ID) {
		if presenceLike {
			e.enterBathroom(rs, d, ts)
		}
	} else if !rs.BathSince.IsZero() && ts.After(rs.BathSince) {
		rs.BathSince = time.Time{}
		out = e.report(rs, st, ts, cond{rule: RuleBathroomStay, msg: "activity outside the bathroom"}, out)
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
func (e *Evaluator) doorOpened(rs *resident, st Settings, d *devState, ts time.Time) {
	if st.modeActive(ts) {
		return
	}
	l := st.Limit(RuleNightExit)
	from, err1 := parseClock(l.From)
	to, err2 := parseClock(l.To)
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
func (e *Evaluator) Event(ev model.Event) []Signal { return e.EventAt(ev, time.Time{}) }

// EventAt applies one device event that reached carehub at arrived. An
// event older than StaleEventAge at arrival raises nothing: it still
// counts as the device being seen and as activity, and a stale cancel
// still cancels, but it starts no alert, fall window or night-exit watch.
// Cancels (sos_cancel, fall_cancel) count only from the device that raised
// the alert: a cancel from another device of the home is ignored.
func (e *Evaluator) EventAt(ev model.Event, arrived time.Time) []Signal {
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
		c := cond{rule: RuleSOS, src: d.ID, sev: sevCritical, msg: "SOS button pressed"}
		before := len(out)
		out = e.fire(rs, st, ts, c, true, out)
		if len(out) > before && rs.open(RuleSOS, "") < 0 {
			rs.Open = append(rs.Open, openCond{Rule: RuleSOS, Sev: sevCritical})
		}
	case catalog.EventSOSCancel:
		// domain.md: cancelled by sos_cancel within 30 s → auto-cleared. A
		// later cancel changes nothing: a person must resolve the alert.
		// Only the button that raised it can cancel it (an older snapshot
		// without SOSDev accepts any).
		w := st.Limit(RuleSOS).Window
		if !rs.SOSAt.IsZero() && !ts.Before(rs.SOSAt) && ts.Sub(rs.SOSAt) <= w && (rs.SOSDev == "" || rs.SOSDev == d.ID) {
			out = e.report(rs, st, ts, cond{rule: RuleSOS, src: d.ID, msg: "SOS cancelled at the button"}, out)
			rs.SOSAt, rs.SOSDev = time.Time{}, ""
		}
	case catalog.EventFall:
		if rs.FallAt.IsZero() {
			rs.FallAt, rs.FallDev = ts, d.ID
		}
	case catalog.EventFallCancel:
		if !rs.FallAt.IsZero() && !ts.Before(rs.FallAt) && ts.Sub(rs.FallAt) <= st.Limit(RuleFall).Window && d.ID == rs.FallDev {
			rs.FallAt, rs.FallDev = time.Time{}, ""
		}
	case catalog.EventSmoke:
		out = e.fire(rs, st, ts, cond{rule: RuleSmoke, src: d.ID, sev: sevCritical, msg: "smoke detected"}, true, out)
	case catalog.EventGas:
		out = e.fire(rs, st, ts, cond{rule: RuleGas, src: d.ID, sev: sevCritical, msg: "gas detected"}, true, out)
	case catalog.EventWaterLeak:
		// Design choice: a leak is property damage and a slip hazard, worth
		// a look today, not a page at night: warning.
		out = e.fire(rs, st, ts, cond{rule: RuleWaterLeak, src: d.ID, sev: sevWarning, msg: "water leak detected"}, false, out)
	case catalog.EventCO:
		sev, v, thr := coEventSeverity(ev.Data, st.Limit(RuleCO))
		rs.thr(RuleCO, d.ID).force(sev, v, thr)
		out = e.reportThr(rs, st, RuleCO, ts, d.ID, out)
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
func coEventSeverity(data json.RawMessage, l Limit) (sev int8, v, thr float64) {
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
		if b.crossed(v) && sevRank(b.Severity) >= sev {
			sev, thr = sevRank(b.Severity), b.Value
		}
	}
	return sev, v, thr
}

// Status applies a device's status report or Last Will.
func (e *Evaluator) Status(s model.Status) []Signal {
	st := e.settings.Settings(s.ResidentID)
	e.mu.Lock()
	defer e.mu.Unlock()
	rs := e.resident(s.ResidentID, s.HomeID, s.TS)
	d := rs.device(s.DeviceID, s.DeviceKind, s.TS)
	var out []Signal
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

// Tick runs the time-based rules at now, where an absent input is the
// signal: inactivity, night exit, bathroom stay, a fall not cancelled,
// devices gone silent, a wearable not worn, cannot monitor. It also
// re-reports threshold conditions, so a snooze ending or a rule being
// disabled takes effect without waiting for a reading. Call it every few
// seconds; the rules' resolution is the tick interval.
func (e *Evaluator) Tick(now time.Time) []Signal {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Signal
	for _, rs := range e.residents {
		out = e.tick(rs, e.settings.Settings(rs.ID), now, out)
	}
	return out
}

func (e *Evaluator) tick(rs *resident, st Settings, now time.Time, out []Signal) []Signal {
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
	if st.modeActive(now) {
		rs.PausedAt, rs.DoorAt, rs.NightExit = now, time.Time{}, false
		for _, r := range [...]string{RuleInactivity, RuleNightExit, RuleBathroomStay} {
			if e.changes(rs, st, now, r, "", sevNone) {
				out = e.report(rs, st, now, cond{rule: r, msg: "paused: " + st.Mode + " mode"}, out)
			}
		}
	} else {
		if rs.hasMotionDevice() {
			base := latest(rs.LastActivity, rs.FirstSeen, rs.PausedAt)
			idle := now.Sub(base)
			c := cond{rule: RuleInactivity}
			for _, b := range st.Limit(RuleInactivity).Bands {
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
		nl := st.Limit(RuleNightExit)
		if !rs.DoorAt.IsZero() && now.Sub(rs.DoorAt) >= nl.Window {
			rs.NightExit, rs.DoorAt = true, time.Time{}
			out = e.report(rs, st, now, cond{rule: RuleNightExit, src: rs.DoorDev, sev: sevHigh,
				msg: "door opened at night, no motion inside since"}, out)
		}
		if !rs.BathSince.IsZero() && now.Sub(latest(rs.BathSince, rs.PausedAt)) > st.Limit(RuleBathroomStay).Window {
			out = e.report(rs, st, now, cond{rule: RuleBathroomStay, sev: sevHigh,
				value: now.Sub(rs.BathSince).Minutes(), msg: "in the bathroom for over " + st.Limit(RuleBathroomStay).Window.String()}, out)
		}
	}

	if !rs.FallAt.IsZero() && now.Sub(rs.FallAt) >= st.Limit(RuleFall).Window {
		out = e.fire(rs, st, now, cond{rule: RuleFall, src: rs.FallDev, sev: sevCritical,
			msg: "fall detected, not cancelled"}, false, out)
		rs.FallAt, rs.FallDev = time.Time{}, ""
	}

	// Devices.
	missed := st.Limit(RuleDeviceOffline).Count
	worn := st.Limit(RuleWearableNotWorn).Window
	for _, d := range rs.Devs {
		iv := st.reportInterval(d.ID, d.Kind)
		base := latest(d.LastSeen, d.KnownSince)
		d.Off = (d.LWT && now.Sub(d.LWTAt) >= WillGrace(st, d.Kind)) || (iv > 0 && now.Sub(base) > time.Duration(missed)*iv)
		c := cond{rule: RuleDeviceOffline, dev: d.ID, msg: "device reporting again"}
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
			c := cond{rule: RuleWearableNotWorn, dev: d.ID, msg: "wearable worn again"}
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
	if !e.changes(rs, st, now, RuleNEWS2, "", rs.News2Sev) {
		return out
	}
	return e.report(rs, st, now, cond{rule: RuleNEWS2, metric: RuleNEWS2, sev: rs.News2Sev,
		value: float64(rs.News2Total), msg: news2Msg(rs.News2Total, false, 0)}, out)
}

func firstOfRule(before []*thrState, rule string) bool {
	for _, s := range before {
		if s.Rule == rule {
			return false
		}
	}
	return true
}

func (rs *resident) hasDevice(id string) bool {
	for _, d := range rs.Devs {
		if d.ID == id {
			return true
		}
	}
	return false
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
