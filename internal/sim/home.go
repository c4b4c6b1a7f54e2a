package sim

import (
	"container/heap"
	"math"
	"math/rand"
	"time"

	"github.com/carehub/carehub/internal/catalog"
)

// Rooms a resident can be in. "bed" is in bed in the bedroom; "out" is away
// from home (the afternoon outing).
const (
	RoomBed     = "bed"
	RoomBath    = "bath"
	RoomKitchen = "kitchen"
	RoomLiving  = "living"
	RoomOut     = "out"
)

// Scenario names (-scenario). Each is a situation carehub's alert rules must
// catch (domain.md "Default alert rules").
const (
	ScenarioFall     = "fall"     // fall event, never cancelled; resident lies still
	ScenarioSOS      = "sos"      // SOS press, sometimes cancelled within 30 s
	ScenarioInactive = "inactive" // no motion, door or bed change for 26 h
	ScenarioFever    = "fever"    // body temperature up to 38.4-39.4 Cel for 12 h
	ScenarioLowSpO2  = "low_spo2" // SpO2 falling to 87-90 % for 3 h
	ScenarioOffline  = "offline"  // a motion-type device dies without DISCONNECT
	ScenarioSmoke    = "smoke"    // smoke alarm with a PM2.5 spike
)

// Scenarios lists every scenario, in the order "-scenario all" assigns them
// to homes.
func Scenarios() []string {
	return []string{ScenarioFall, ScenarioSOS, ScenarioInactive, ScenarioFever, ScenarioLowSpO2, ScenarioOffline, ScenarioSmoke}
}

// Tunables of the model. They are what a real home roughly does; none is
// contract.
const (
	// CatchUpBatch is how many missed samples go in one catch-up array: 60
	// one-minute samples stay near 8 KB, far below the 64 KiB limit (contract §1).
	CatchUpBatch = 60
	// MaxQueuedSamples bounds what a device keeps while offline (a day of
	// one-minute samples); older samples are dropped first, as a device with
	// a full buffer does.
	MaxQueuedSamples = 1440
	// MaxQueuedEvents bounds the events a device keeps while offline.
	MaxQueuedEvents = 100
	// fallLie is how long a fallen resident lies without moving.
	fallLie = 90 * time.Minute
	// inactiveFor passes every inactivity tier (8/12/24 h, then > 24 h).
	inactiveFor = 26 * time.Hour
	// offlineFor is how long the offline scenario keeps a device dead.
	offlineFor = 6 * time.Hour
)

// Options tune a Home.
type Options struct {
	Seed            int64
	Location        *time.Location // the residents' time zone; nil = Asia/Seoul
	IncidentsPerDay float64        // random scenarios per home per simulated day
	OutagesPerDay   float64        // random device outages per home per simulated day
}

// Home is one simulated home: its resident's routine and vitals and its
// devices, advanced minute by minute by Step. It is not safe for concurrent
// use; one goroutine owns a home.
type Home struct {
	Spec HomeSpec

	opt     Options
	loc     *time.Location
	rng     *rand.Rand
	next    time.Time // next minute to simulate
	seq     uint64
	pending msgHeap
	devs    map[string]*devState // by role
	order   []*devState
	started bool

	base       baseline
	room       string
	frozenRoom string
	planDate   int
	plan       dayPlan
	steps      float64
	sleepStart time.Time

	frozenUntil time.Time // fall or inactivity: no movement
	feverFrom   time.Time
	feverUntil  time.Time
	feverPeak   float64
	hypoxFrom   time.Time
	hypoxUntil  time.Time
	hypoxLow    float64
	smokeUntil  time.Time
	scheduled   []scheduled
}

type scheduled struct {
	name string
	at   time.Time
}

type devState struct {
	spec         DeviceSpec
	battery      float64 // percent; < 0 = mains powered
	drain        float64 // percent per day
	rssi         float64
	fw           string
	offline      bool
	offlineUntil time.Time
	queue        []Sample
	events       []EventPayload
	dropped      int
	motion       int
	offset       time.Duration // spreads periodic reports within the minute
}

type baseline struct {
	hr, spo2, rr, temp, sys, dia, glucose, weight float64
}

// dayPlan is one day's routine in minutes after local midnight.
type dayPlan struct {
	wake, sleep        int
	outStart, outEnd   int
	nightBath          int // 0 = slept through
	bpMorning, glucoAM int
}

// battery drain in percent per day by role; absent = mains powered.
var drainPerDay = map[string]float64{
	RolePIRLiving: 0.05, RolePIRKitchen: 0.05, RolePIRBath: 0.05, RoleDoor: 0.04,
	RoleBed: 0.1, RoleSmoke: 0.02, RoleGas: 0.02, RoleCO: 0.03, RoleSOS: 0.02,
	RoleWearable: 12, RoleBP: 0.3, RoleGluco: 0.2, RoleScale: 0.1,
}

// NewHome returns the home of spec at simulated time start (rounded down to
// the minute). Equal seeds, specs and start times give equal homes.
func NewHome(spec HomeSpec, opt Options, start time.Time) *Home {
	loc := opt.Location
	if loc == nil {
		loc = seoul()
	}
	h := &Home{
		Spec: spec,
		opt:  opt,
		loc:  loc,
		rng:  rand.New(rand.NewSource(opt.Seed*1_000_003 + int64(spec.Index))),
		next: start.Truncate(time.Minute),
		devs: map[string]*devState{},
	}
	h.base = baseline{
		hr:      62 + h.rng.Float64()*14,
		spo2:    96 + h.rng.Float64()*2,
		rr:      13 + h.rng.Float64()*4,
		temp:    36.4 + h.rng.Float64()*0.4,
		sys:     122 + h.rng.Float64()*18,
		dia:     74 + h.rng.Float64()*12,
		glucose: 95 + h.rng.Float64()*20,
		weight:  48 + h.rng.Float64()*27,
	}
	for i, d := range spec.Devices {
		ds := &devState{spec: d, battery: -1, rssi: -50 - float64(h.rng.Intn(35)), fw: "1.4." + string(rune('0'+h.rng.Intn(4))),
			offset: time.Duration(i*3) * time.Second}
		if dr, ok := drainPerDay[d.Role]; ok {
			ds.drain = dr
			ds.battery = 60 + float64(h.rng.Intn(41))
		}
		h.devs[d.Role] = ds
		h.order = append(h.order, ds)
	}
	return h
}

// seoul is the program's default zone (contract §5 CARE_TIMEZONE default).
func seoul() *time.Location {
	loc, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		return time.FixedZone("KST", 9*3600) // Korea has no daylight saving time
	}
	return loc
}

// Room returns where the resident is now.
func (h *Home) Room() string { return h.room }

// Battery returns the charge of the device with the given role, or -1.
func (h *Home) Battery(role string) float64 {
	if d, ok := h.devs[role]; ok {
		return d.battery
	}
	return -1
}

// Offline reports whether the device with the given role is disconnected.
func (h *Home) Offline(role string) bool {
	d, ok := h.devs[role]
	return ok && d.offline
}

// StartScenario schedules a scenario to begin at the first simulated minute
// at or after at. Unknown names are ignored (the caller validates flags).
func (h *Home) StartScenario(name string, at time.Time) {
	h.scheduled = append(h.scheduled, scheduled{name: name, at: at})
}

// Step simulates up to now and returns what the home did, in time order.
// Messages timed after now stay pending for a later Step.
func (h *Home) Step(now time.Time) []Msg {
	for !h.next.After(now) {
		h.tick(h.next)
		h.next = h.next.Add(time.Minute)
	}
	var out []Msg
	for len(h.pending) > 0 && !h.pending[0].At.After(now) {
		out = append(out, heap.Pop(&h.pending).(Msg))
	}
	return out
}

func (h *Home) push(m Msg) {
	h.seq++
	m.seq = h.seq
	heap.Push(&h.pending, m)
}

func (h *Home) tick(t time.Time) {
	local := t.In(h.loc)
	if !h.started {
		h.started = true
		for _, d := range h.order {
			h.connect(d, t)
		}
	}
	h.ensurePlan(local)
	m := local.Hour()*60 + local.Minute()
	if m == 0 {
		h.steps = 0
	}

	// Reconnect devices whose outage ended, before anything new is sent.
	for _, d := range h.order {
		if d.offline && !t.Before(d.offlineUntil) {
			h.reconnect(d, t)
		}
	}
	kept := h.scheduled[:0]
	for _, s := range h.scheduled {
		if !t.Before(s.at) {
			h.startScenario(s.name, t)
		} else {
			kept = append(kept, s)
		}
	}
	h.scheduled = kept
	if h.opt.IncidentsPerDay > 0 && h.rng.Float64() < h.opt.IncidentsPerDay/1440 {
		all := Scenarios()
		h.startScenario(all[h.rng.Intn(len(all))], t)
	}
	if h.opt.OutagesPerDay > 0 && h.rng.Float64() < h.opt.OutagesPerDay/1440 {
		d := h.order[h.rng.Intn(len(h.order))]
		if !d.offline && d.spec.Role != RoleSOS && d.spec.Role != RoleSmoke {
			h.outage(d, t, time.Duration(5+h.rng.Intn(41))*time.Minute)
		}
	}

	room := h.roomAt(local, t)
	h.transition(h.room, room, t, local)
	h.room = room
	h.periodic(t, local, m)

	for _, d := range h.order {
		if d.battery >= 0 {
			d.battery = math.Max(0, d.battery-d.drain/1440)
		}
	}
}

// ensurePlan draws the day's routine from the seed, the home and the date
// only, so a day looks the same however the simulation got there.
func (h *Home) ensurePlan(local time.Time) {
	date := local.Year()*10000 + int(local.Month())*100 + local.Day()
	if date == h.planDate {
		return
	}
	h.planDate = date
	r := rand.New(rand.NewSource(h.opt.Seed*7_919 + int64(h.Spec.Index)*104_729 + int64(date)))
	p := dayPlan{
		wake:  6*60 + 30 + r.Intn(41) - 20, // ~06:30
		sleep: 22*60 + r.Intn(41) - 20,     // ~22:00
	}
	p.outStart = 14*60 + r.Intn(61) - 30 // afternoon outing ~14:00
	p.outEnd = p.outStart + 90 + r.Intn(61)
	if r.Intn(2) == 0 {
		p.nightBath = 2*60 + r.Intn(120) // one trip between 02:00 and 04:00
	}
	p.bpMorning = p.wake + 60
	p.glucoAM = p.wake + 45
	h.plan = p
}

func (h *Home) frozen(t time.Time) bool { return t.Before(h.frozenUntil) }

// roomAt is the daily routine (Asia/Seoul time): asleep ~22:00-06:30 with a
// night bathroom trip on some nights, morning bathroom, breakfast, lunch, an
// afternoon outing, dinner, evening TV in the living room, bathroom before bed.
func (h *Home) roomAt(local, t time.Time) string {
	if h.frozen(t) {
		return h.frozenRoom
	}
	m := local.Hour()*60 + local.Minute()
	p := h.plan
	switch {
	case m < p.wake || m >= p.sleep:
		if p.nightBath > 0 && m >= p.nightBath && m < p.nightBath+8 {
			return RoomBath
		}
		return RoomBed
	case m < p.wake+20:
		return RoomBath
	case m < p.wake+60:
		return RoomKitchen
	case m >= 12*60 && m < 12*60+40:
		return RoomKitchen
	case m >= p.outStart && m < p.outEnd:
		return RoomOut
	case m >= 18*60 && m < 18*60+45:
		return RoomKitchen
	case m >= p.sleep-15:
		return RoomBath
	}
	return RoomLiving
}

var pirOf = map[string]string{RoomLiving: RolePIRLiving, RoomKitchen: RolePIRKitchen, RoomBath: RolePIRBath}

// jitter returns a random offset within the minute, in whole seconds.
func (h *Home) jitter(lo, hi int) time.Duration {
	return time.Duration(lo+h.rng.Intn(hi-lo+1)) * time.Second
}

func (h *Home) transition(prev, room string, t, local time.Time) {
	if prev == room {
		return
	}
	if prev == "" { // the first minute: the state is reported by the periodic reports
		if room == RoomBed {
			h.sleepStart = t
		}
		return
	}
	if prev == RoomBed {
		at := t.Add(h.jitter(1, 15))
		h.event(RoleBed, at, catalog.EventBedExit, nil)
		h.telemetry(RoleBed, at, map[string]float64{"in_bed": 0})
		if hr := local.Hour(); hr >= 4 && hr < 11 && !h.sleepStart.IsZero() {
			h.telemetry(RoleWearable, at, map[string]float64{"sleep_min": math.Min(1440, math.Round(t.Sub(h.sleepStart).Minutes()))})
			h.sleepStart = time.Time{}
		}
	}
	if room == RoomBed {
		at := t.Add(h.jitter(1, 15))
		h.event(RoleBed, at, catalog.EventBedEnter, nil)
		h.telemetry(RoleBed, at, map[string]float64{"in_bed": 1})
		if local.Hour() >= 18 {
			h.sleepStart = t
		}
	}
	if prev == RoomBath {
		h.event(RolePIRBath, t, catalog.EventToilet, nil)
	}
	if room == RoomOut || prev == RoomOut {
		open := t.Add(h.jitter(5, 20))
		shut := open.Add(h.jitter(8, 30))
		h.event(RoleDoor, open, catalog.EventDoorOpen, nil)
		h.telemetry(RoleDoor, open, map[string]float64{"door_open": 1})
		h.event(RoleDoor, shut, catalog.EventDoorClose, nil)
		h.telemetry(RoleDoor, shut, map[string]float64{"door_open": 0})
	}
	if pir, ok := pirOf[room]; ok {
		h.event(pir, t.Add(h.jitter(20, 50)), catalog.EventMotion, nil)
	}
}

// periodic sends the reports devices make on a schedule.
func (h *Home) periodic(t, local time.Time, m int) {
	moving := !h.frozen(t) && h.room != RoomBed && h.room != RoomOut
	if moving {
		h.devs[pirOf[h.room]].motion += 1 + h.rng.Intn(6)
	}
	if h.room != RoomBed && !h.frozen(t) {
		if h.room == RoomOut {
			h.steps += float64(60 + h.rng.Intn(41))
		} else {
			h.steps += float64(3 + h.rng.Intn(13))
		}
	}
	hr, spo2, rr, temp := h.vitals(t, local)
	every5 := m%5 == 0

	// PIR sensors report their count every 5 minutes when they saw movement;
	// silence is not a report (their hourly status shows they are alive).
	if every5 {
		for _, role := range []string{RolePIRLiving, RolePIRKitchen, RolePIRBath} {
			if d := h.devs[role]; d.motion > 0 {
				h.telemetry(role, t.Add(d.offset), map[string]float64{"motion": float64(d.motion)})
				d.motion = 0
			}
		}
	}
	// Radar over the bed: vitals every minute while someone is in bed,
	// presence 0 every 5 minutes otherwise.
	if d := h.devs[RoleRadar]; d != nil {
		if h.room == RoomBed {
			h.telemetry(RoleRadar, t.Add(d.offset), map[string]float64{"presence": 1, "heart_rate": hr, "resp_rate": rr})
		} else if every5 {
			h.telemetry(RoleRadar, t.Add(d.offset), map[string]float64{"presence": 0})
		}
	}
	if m%10 == 0 {
		h.telemetry(RoleBed, t.Add(h.devs[RoleBed].offset), map[string]float64{"in_bed": b2f(h.room == RoomBed)})
	}
	if d := h.devs[RoleWearable]; d != nil && every5 {
		h.telemetry(RoleWearable, t.Add(d.offset), map[string]float64{"heart_rate": hr, "spo2": spo2, "body_temp": temp, "steps": h.steps})
		if m == 21*60 && d.battery < 40 { // charged overnight on its cradle
			d.battery = 100
		}
	}
	active := h.room != RoomOut && !h.frozen(t)
	if active && (m == h.plan.bpMorning || m == 20*60) {
		sys := math.Round(h.base.sys + h.rng.NormFloat64()*6 + (hr-h.base.hr)*0.5)
		dia := math.Round(h.base.dia + h.rng.NormFloat64()*4)
		h.telemetry(RoleBP, t.Add(h.jitter(0, 50)), map[string]float64{"systolic_bp": sys, "diastolic_bp": dia, "heart_rate": hr})
	}
	if active && m == h.plan.glucoAM {
		h.telemetry(RoleGluco, t.Add(h.jitter(0, 50)), map[string]float64{"glucose": math.Round(h.base.glucose + h.rng.NormFloat64()*8)})
	}
	if active && m == 19*60+30 {
		h.telemetry(RoleGluco, t.Add(h.jitter(0, 50)), map[string]float64{"glucose": math.Round(h.base.glucose + 40 + h.rng.NormFloat64()*15)})
	}
	if active && local.Weekday() == time.Monday && m == h.plan.wake+25 {
		h.telemetry(RoleScale, t.Add(h.jitter(0, 50)), map[string]float64{"weight": round1(h.base.weight + h.rng.NormFloat64()*0.3)})
	}
	if every5 {
		h.envReport(t, local)
		h.telemetry(RoleCO, t.Add(h.devs[RoleCO].offset), map[string]float64{"co": float64(h.rng.Intn(3))})
	}
	if local.Minute() == 0 { // hourly heartbeat with battery and signal
		for _, d := range h.order {
			if !d.offline {
				h.push(h.statusMsg(d, t.Add(d.offset)))
			}
		}
	}
}

// envReport: room climate and air quality every 5 minutes, with cooking,
// occupancy and daylight showing, and the smoke scenario's particle spike.
func (h *Home) envReport(t, local time.Time) {
	hour := float64(local.Hour()) + float64(local.Minute())/60
	home := h.room != RoomOut
	temp := 22 + 1.5*math.Sin(2*math.Pi*(hour-9)/24) + h.rng.NormFloat64()*0.2
	hum := 45 + 6*math.Sin(2*math.Pi*(hour-3)/24) + h.rng.NormFloat64()*1.5
	co2 := 450 + h.rng.NormFloat64()*20
	pm := 8 + math.Abs(h.rng.NormFloat64()*3)
	if home {
		co2 += 250
	}
	if h.room == RoomKitchen {
		co2 += 200
		pm += 15 + h.rng.Float64()*10
	}
	if t.Before(h.smokeUntil) {
		pm = 250 + h.rng.Float64()*150
		co2 += 400
	}
	lux := 0.0
	if hour >= 6 && hour < 19 {
		lux = 150 + 350*math.Sin(math.Pi*(hour-6)/13)
	}
	if home && h.room != RoomBed && (hour >= 19 || hour < 6) {
		lux = 180 // lamps on
	}
	h.telemetry(RoleEnv, t.Add(h.devs[RoleEnv].offset), map[string]float64{
		"room_temp": round1(temp), "humidity": math.Round(hum), "co2": math.Round(co2),
		"pm2_5": round1(pm), "lux": math.Round(lux + math.Abs(h.rng.NormFloat64()*5)),
	})
}

// vitals returns heart rate, SpO2, respiration and body temperature with a
// circadian swing (lower at night, temperature highest late afternoon),
// noise, and the fever and hypoxia scenarios laid on top.
func (h *Home) vitals(t, local time.Time) (hr, spo2, rr, temp float64) {
	hour := float64(local.Hour()) + float64(local.Minute())/60
	circ := math.Sin(2 * math.Pi * (hour - 10) / 24)
	hr = h.base.hr + 5*circ + h.rng.NormFloat64()*2
	spo2 = h.base.spo2 + h.rng.NormFloat64()*0.6
	rr = h.base.rr + 0.8*circ + h.rng.NormFloat64()*0.7
	temp = h.base.temp + 0.25*math.Sin(2*math.Pi*(hour-11)/24) + h.rng.NormFloat64()*0.06
	switch h.room {
	case RoomBed:
		hr -= 7
		spo2--
		rr -= 1.5
	case RoomOut:
		hr += 12
		rr += 2
	}
	if h.frozen(t) && h.frozenRoom != "" {
		hr += 8
	}
	if f := ramp(t, h.feverFrom, h.feverUntil, 3*time.Hour); f > 0 {
		temp += f * (h.feverPeak - h.base.temp)
		hr += 15 * f
		rr += 4 * f
	}
	if g := ramp(t, h.hypoxFrom, h.hypoxUntil, 30*time.Minute); g > 0 {
		spo2 -= g * (spo2 - h.hypoxLow)
		hr += 12 * g
		rr += 5 * g
	}
	return math.Round(hr), math.Min(100, math.Round(spo2)), math.Round(rr), round1(temp)
}

// ramp is 0 outside [from, until), rises linearly to 1 over rise, holds, and
// falls back over the last rise.
func ramp(t, from, until time.Time, rise time.Duration) float64 {
	if t.Before(from) || !t.Before(until) {
		return 0
	}
	up := float64(t.Sub(from)) / float64(rise)
	down := float64(until.Sub(t)) / float64(rise)
	return math.Min(1, math.Min(up, down))
}

func (h *Home) startScenario(name string, t time.Time) {
	note := func(role string) {
		d := h.devs[role]
		if d == nil { // no wearable in this home: the bed radar still sees vitals
			d = h.devs[RoleRadar]
		}
		id := d.spec.ID
		h.push(Msg{At: t, Action: Note, Text: name, DeviceID: id})
	}
	freeze := func(d time.Duration) {
		h.frozenRoom = h.room
		if h.room == RoomOut || h.room == RoomBed || h.room == "" {
			h.frozenRoom = RoomLiving
		}
		h.frozenUntil = t.Add(d)
	}
	switch name {
	case ScenarioFall:
		role := RoleWearable
		if h.devs[role] == nil {
			role = RoleRadar
		}
		note(role)
		freeze(fallLie)
		h.event(role, t.Add(h.jitter(30, 55)), catalog.EventFall, map[string]any{"confidence": 0.9 + float64(h.rng.Intn(10))/100})
	case ScenarioSOS:
		note(RoleSOS)
		at := t.Add(h.jitter(1, 20))
		h.event(RoleSOS, at, catalog.EventSOS, map[string]any{"press": "single"})
		if h.rng.Float64() < 0.4 { // pressed by mistake, cancelled within 30 s
			h.event(RoleSOS, at.Add(h.jitter(8, 25)), catalog.EventSOSCancel, nil)
		}
	case ScenarioInactive:
		note(RolePIRLiving)
		freeze(inactiveFor)
	case ScenarioFever:
		note(RoleWearable)
		h.feverFrom, h.feverUntil = t, t.Add(12*time.Hour)
		h.feverPeak = 38.4 + float64(h.rng.Intn(11))/10
	case ScenarioLowSpO2:
		note(RoleWearable)
		h.hypoxFrom, h.hypoxUntil = t, t.Add(3*time.Hour)
		h.hypoxLow = float64(87 + h.rng.Intn(4))
	case ScenarioOffline:
		role := RoleDoor
		if h.rng.Intn(2) == 0 {
			role = RoleRadar
		}
		note(role)
		if d := h.devs[role]; !d.offline {
			h.outage(d, t, offlineFor)
		}
	case ScenarioSmoke:
		note(RoleSmoke)
		h.event(RoleSmoke, t.Add(h.jitter(1, 30)), catalog.EventSmoke, map[string]any{"obscuration_pct_ft": 4.1})
		h.smokeUntil = t.Add(20 * time.Minute)
	}
}

func (h *Home) statusMsg(d *devState, at time.Time) Msg {
	st := StatusPayload{Online: true, FW: d.fw}
	// Signal wobbles with the time, not the random stream, so whether a
	// heartbeat was sent (the device may be offline) does not change the rest
	// of the simulation.
	rssi := d.rssi + float64(at.Unix()/60%7-3)
	st.RSSIdBm = &rssi
	if d.battery >= 0 {
		b := math.Round(d.battery)
		st.BatteryPct = &b
	}
	return statusPublish(at, d.spec.ID, st)
}

func (h *Home) connect(d *devState, t time.Time) {
	h.push(Msg{At: t, Action: Connect, DeviceID: d.spec.ID})
	h.push(h.statusMsg(d, t))
}

// outage kills the device's link abruptly (its Last Will fires) and keeps
// its readings until it comes back.
func (h *Home) outage(d *devState, t time.Time, dur time.Duration) {
	d.offline = true
	d.offlineUntil = t.Add(dur)
	h.push(Msg{At: t, Action: Drop, DeviceID: d.spec.ID})
}

// reconnect brings the device back: status online, then the missed samples
// as catch-up arrays in time order, then the missed events.
func (h *Home) reconnect(d *devState, t time.Time) {
	d.offline = false
	h.connect(d, t)
	for len(d.queue) > 0 {
		n := min(CatchUpBatch, len(d.queue))
		h.push(CatchUpMsg(t, d.spec.ID, d.queue[:n]))
		d.queue = d.queue[n:]
	}
	d.queue = nil
	for _, e := range d.events {
		h.push(eventPublish(t, d.spec.ID, e))
	}
	d.events = nil
}

func (h *Home) telemetry(role string, at time.Time, vals map[string]float64) {
	d := h.devs[role]
	if d == nil {
		return
	}
	s := Sample{TS: at.UnixMilli(), Values: vals}
	if d.offline {
		if len(d.queue) >= MaxQueuedSamples {
			d.queue = append(d.queue[:0], d.queue[1:]...)
			d.dropped++
		}
		d.queue = append(d.queue, s)
		return
	}
	h.push(TelemetryMsg(at, d.spec.ID, s))
}

func (h *Home) event(role string, at time.Time, typ string, data map[string]any) {
	d := h.devs[role]
	if d == nil {
		return
	}
	e := EventPayload{TS: at.UnixMilli(), Type: typ, Data: data}
	if d.offline {
		if len(d.events) < MaxQueuedEvents {
			d.events = append(d.events, e)
		}
		return
	}
	h.push(eventPublish(at, d.spec.ID, e))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }

// Outage drops the device with the given role at t (its Last Will fires)
// and brings it back at the first simulated minute at or after t+d, with
// what it measured meanwhile as catch-up arrays: a gateway reconnect or a
// Wi-Fi hiccup, for the alert-quality benchmark. It is a no-op for an
// unknown role or a device already offline.
func (h *Home) Outage(role string, t time.Time, d time.Duration) {
	if dev := h.devs[role]; dev != nil && !dev.offline {
		h.outage(dev, t, d)
	}
}

// VitalsAt returns the resident's vitals at t following the home's routine
// (asleep, at home, out) with noise: what a wearable (or the bed radar)
// would have measured. It moves the home's notion of the present, so use a
// Home given to backfill only.
func (h *Home) VitalsAt(t time.Time) map[string]float64 {
	local := t.In(h.loc)
	h.ensurePlan(local)
	h.room = h.roomAt(local, t)
	hr, spo2, rr, temp := h.vitals(t, local)
	if _, ok := h.devs[RoleWearable]; ok {
		return map[string]float64{"heart_rate": hr, "spo2": spo2, "resp_rate": rr, "body_temp": temp}
	}
	return map[string]float64{"heart_rate": hr, "resp_rate": rr}
}
