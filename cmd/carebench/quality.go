package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/alerts/rules/eval"
	"github.com/carehub/carehub/ingest/decode"
	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/sim"
)

// The alert-quality benchmark (issue 10): homesim residents on ordinary
// days, with the mishaps of real homes, and scripted emergencies mixed in,
// run through carehub's rule evaluator in-process on a simulated clock.
// It counts the alerts raised per resident-day, split into the expected
// ones (a scripted emergency, a cancelled SOS) and false alarms (with each
// one's rule), and each emergency's detection time against its SLA.
//
// The evaluator is the engine's decision maker: the engine only adds the
// JetStream plumbing and the Manager's lifecycle (one open alert per
// resident and rule, a repeat of an open alert adds to its count), which
// alertBook models. Device messages go through ingest's decoders, so the
// evaluator sees what it would see behind the broker.

// qualityZone is the residents' time zone (Seoul, without daylight saving).
var qualityZone = time.FixedZone("KST", 9*3600)

// qualityTarget is the goal: at most 0.1 false alarms per
// resident-day, every emergency within its SLA.
const qualityTarget = 0.1

// emergency is one scripted emergency: how to start it in a home, which
// rule must detect it at what severity within its SLA (from onset: the
// event's time for events, the scenario start otherwise), and which other
// rules it may rightly raise (their alerts count as expected).
type emergency struct {
	name    string
	rule    string
	minSev  string
	sla     time.Duration
	related []string
	onset   string // event type whose time is the onset; "" = scenario start
	needs   string // a device role the home must have
	start   func(q *qualityRun, h *qHome, at time.Time)
	lasts   time.Duration // window in which related alerts count as expected
}

// emergencies is the scenario list of the benchmark. SLAs: events (SOS,
// smoke, gas) within 10 s of the press or detection; a fall within 30 s
// after its 60 s cancel window; inactivity at the 24 h "high" tier within
// 6 minutes of it (the onset is the scenario start; a motion sensor's
// last count report comes up to 5 minutes later and is the last activity); sustained SpO2 and fever within the persistence of
// their rules after the value is reached (the ramp is part of the SLA).
var emergencies = []emergency{
	{name: "sos", rule: rules.RuleSOS, minSev: rules.SeverityCritical, sla: 10 * time.Second, onset: catalog.EventSOS,
		start: func(q *qualityRun, h *qHome, at time.Time) { q.inject(h, at, sim.RoleSOS, catalog.EventSOS) }, lasts: time.Hour},
	{name: "fall", rule: rules.RuleFall, minSev: rules.SeverityCritical, sla: 90 * time.Second, onset: catalog.EventFall,
		related: []string{rules.RuleHeartRate},
		start:   func(_ *qualityRun, h *qHome, at time.Time) { h.h.StartScenario(sim.ScenarioFall, at) }, lasts: 3 * time.Hour},
	{name: "smoke", rule: rules.RuleSmoke, minSev: rules.SeverityCritical, sla: 10 * time.Second, onset: catalog.EventSmoke,
		related: []string{rules.RulePM25, rules.RuleCO2},
		start:   func(_ *qualityRun, h *qHome, at time.Time) { h.h.StartScenario(sim.ScenarioSmoke, at) }, lasts: 2 * time.Hour},
	{name: "gas", rule: rules.RuleGas, minSev: rules.SeverityCritical, sla: 10 * time.Second, onset: catalog.EventGas,
		start: func(q *qualityRun, h *qHome, at time.Time) { q.inject(h, at, sim.RoleGas, catalog.EventGas) }, lasts: time.Hour},
	{name: "inactivity", rule: rules.RuleInactivity, minSev: rules.SeverityHigh, sla: 24*time.Hour + 6*time.Minute,
		related: []string{rules.RuleHeartRate},
		start:   func(_ *qualityRun, h *qHome, at time.Time) { h.h.StartScenario(sim.ScenarioInactive, at) }, lasts: 28 * time.Hour},
	{name: "low_spo2", rule: rules.RuleSpO2, minSev: rules.SeverityHigh, sla: 45 * time.Minute, needs: sim.RoleWearable,
		related: []string{rules.RuleNEWS2, rules.RuleHeartRate, rules.RuleRespRate},
		start:   func(_ *qualityRun, h *qHome, at time.Time) { h.h.StartScenario(sim.ScenarioLowSpO2, at) }, lasts: 4 * time.Hour},
	{name: "fever", rule: rules.RuleBodyTemp, minSev: rules.SeverityWarning, sla: 3 * time.Hour, needs: sim.RoleWearable,
		related: []string{rules.RuleNEWS2, rules.RuleHeartRate, rules.RuleRespRate},
		start:   func(_ *qualityRun, h *qHome, at time.Time) { h.h.StartScenario(sim.ScenarioFever, at) }, lasts: 13 * time.Hour},
}

// Mishaps per home and simulated day: what ordinary days bring and must
// not page anyone.
const (
	reconnectsPerDay  = 3    // Will, back 2-10 s later
	outagesPerDay     = 1    // Will, back within a minute, catch-up array
	artefactsPerDay   = 2    // one extreme reading of a continuous vital
	wearableOffPerDay = 1    // vitals stop for 1-3 h (shower, charging), with an artefact on removal
	sosCancelPerDay   = 0.3  // a press by mistake, cancelled 5-20 s later
	fallCancelPerDay  = 0.25 // a fall the resident answers "I'm OK" to
	awayPerDay        = 0.1  // away for a day (nothing moves at home), in away mode
	emergencyEvery    = 2    // days: one scripted emergency per home every 2 days
)

type qHome struct {
	h       *sim.Home
	spec    sim.HomeSpec
	inj     []injection // sorted by time
	offFrom time.Time   // wearable off: vitals dropped in [offFrom, offTo)
	offTo   time.Time
	kinds   map[string]string // device id → kind
}

// injection is something the bench does to the evaluator at a time
// beside the simulated home's own messages.
type injection struct {
	at time.Time
	do func(at time.Time)
}

type scripted struct {
	e        emergency
	res      string
	start    time.Time
	onset    time.Time
	detected time.Time
	sev      string
}

type qualityRun struct {
	ev       *eval.Evaluator
	settings *qSettings
	book     alertBook
	rng      *rand.Rand
	scripted []*scripted
	cancels  map[string][]time.Time // resident → cancelled SOS press times
}

// qSettings is the bench's settings source: defaults, the bathroom sensor
// of each home, and away mode when the mishap sets it.
type qSettings struct {
	mu sync.Mutex
	m  map[string]rules.Settings
}

func (s *qSettings) Settings(id string) rules.Settings {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.m[id]; ok {
		return st
	}
	return rules.DefaultSettings()
}

func (s *qSettings) update(id string, f func(*rules.Settings)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.m[id]
	if !ok {
		st = rules.DefaultSettings()
	}
	f(&st)
	s.m[id] = st
}

// qualityResult is what a run measured. A false alarm is a page (high or
// critical: those escalate, domain.md) that no scripted emergency
// explains; warnings and info records are counted apart.
type qualityResult struct {
	ResidentDays   float64
	Expected       int
	Cancelled      int
	False          int
	FalseByRule    map[string]int
	Info           int
	InfoByRule     map[string]int
	Warnings       int // unexpected warnings: shown on the list for a look today, never paged
	WarnByRule     map[string]int
	Emergencies    int
	WithinSLA      int
	Missed         []string
	DetectionLines []string
	FalseLines     []string // each false alarm: time, resident, rule, message
}

func (r qualityResult) falsePerDay() float64 { return float64(r.False) / r.ResidentDays }

// benchQuality: carebench quality [-homes 25] [-days 4] [-seed 1].
func benchQuality(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("quality", flag.ContinueOnError)
	fs.SetOutput(stderr)
	homes := fs.Int("homes", 25, "simulated homes (one resident each)")
	days := fs.Int("days", 4, "simulated days per home")
	seed := fs.Int64("seed", 1, "random seed (same seed, same run)")
	verbose := fs.Bool("v", false, "list every false alarm")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *homes < 1 || *days < 1 {
		return fmt.Errorf("-homes and -days must be at least 1")
	}
	start := time.Now()
	res, err := runQuality(ctx, *homes, *days, *seed)
	if err != nil {
		return err
	}
	printQuality(stdout, res, time.Since(start))
	if *verbose {
		for _, l := range res.FalseLines {
			fmt.Fprintln(stdout, l)
		}
	}
	if res.falsePerDay() > qualityTarget || res.WithinSLA < res.Emergencies {
		return fmt.Errorf("target missed: %.3f false alarms per resident-day (target ≤ %.1f), %d of %d emergencies within SLA",
			res.falsePerDay(), qualityTarget, res.WithinSLA, res.Emergencies)
	}
	return nil
}

// runQuality simulates homes × days from a fixed start (a Monday, 00:00
// Seoul) and returns the figures.
func runQuality(ctx context.Context, homes, days int, seed int64) (qualityResult, error) {
	specs, err := sim.PlanHomes("q", seed, homes)
	if err != nil {
		return qualityResult{}, err
	}
	loc := qualityZone
	t0 := time.Date(2025, 3, 10, 0, 0, 0, 0, loc)
	end := t0.Add(time.Duration(days) * 24 * time.Hour)
	q := &qualityRun{settings: &qSettings{m: map[string]rules.Settings{}}, rng: rand.New(rand.NewSource(seed)), cancels: map[string][]time.Time{}}
	q.ev = eval.New(loc, q.settings)
	hs := make([]*qHome, len(specs))
	for i, sp := range specs {
		h := &qHome{h: sim.NewHome(sp, sim.Options{Seed: seed, Location: loc}, t0), spec: sp, kinds: map[string]string{}}
		var devs []eval.DeviceInfo
		for _, d := range sp.Devices {
			devs = append(devs, eval.DeviceInfo{ID: d.ID, Kind: d.Kind, HomeID: sp.HomeID})
			h.kinds[d.ID] = d.Kind
		}
		q.ev.SetDevices(sp.ResidentID, devs)
		if bath, ok := sp.Device(sim.RolePIRBath); ok {
			q.settings.update(sp.ResidentID, func(s *rules.Settings) { s.BathroomDeviceIDs = []string{bath.ID} })
		}
		q.plan(h, t0, days)
		hs[i] = h
	}
	q.book.open = map[string]openAlert{}
	const tickEvery = 2 * time.Second
	for now := t0; now.Before(end); now = now.Add(tickEvery) {
		if ctx.Err() != nil {
			return qualityResult{}, ctx.Err()
		}
		for _, h := range hs {
			q.step(h, now)
		}
		q.signals(q.ev.Tick(now))
	}
	return q.result(float64(homes * days)), nil
}

// plan lays out a home's mishaps and emergencies over the run.
func (q *qualityRun) plan(h *qHome, t0 time.Time, days int) {
	r := rand.New(rand.NewSource(q.rng.Int63()))
	res := h.spec.ResidentID
	during := func(day int) time.Time { // a random moment of a day, awake hours mostly
		return t0.Add(time.Duration(day)*24*time.Hour + 7*time.Hour + time.Duration(r.Int63n(int64(14*time.Hour))))
	}
	times := func(perDay float64, day int, f func(at time.Time)) {
		n := int(perDay)
		if r.Float64() < perDay-float64(n) {
			n++
		}
		for i := 0; i < n; i++ {
			f(during(day))
		}
	}
	// Quick reconnects hit any device; minute-long outages spare the SOS
	// button and the detectors, as homesim's own outages do: their Will
	// grace is 30 s, and a detector a minute silent is worth a page.
	safety := []string{sim.RoleSmoke, sim.RoleSOS, sim.RoleGas, sim.RoleCO}
	continuous := []string{sim.RoleRadar, sim.RoleEnv, sim.RoleBed, sim.RolePIRLiving, sim.RoleDoor}
	if _, ok := h.spec.Device(sim.RoleWearable); ok {
		continuous = append(continuous, sim.RoleWearable)
	}
	anyRole := append(append([]string(nil), continuous...), safety...)
	emIndex := h.spec.Index
	var awayFrom, awayTo, emTo time.Time
	for day := 0; day < days; day++ {
		times(reconnectsPerDay, day, func(at time.Time) {
			d, _ := h.spec.Device(anyRole[r.Intn(len(anyRole))])
			back := at.Add(time.Duration(2+r.Intn(9)) * time.Second)
			q.at(h, at, func(at time.Time) {
				q.signals(q.ev.Status(model.Status{ResidentID: res, HomeID: h.spec.HomeID, DeviceID: d.ID, DeviceKind: d.Kind, TS: at}))
			})
			q.at(h, back, func(at time.Time) {
				q.signals(q.ev.Status(model.Status{ResidentID: res, HomeID: h.spec.HomeID, DeviceID: d.ID, DeviceKind: d.Kind, TS: at, Online: true}))
			})
		})
		times(outagesPerDay, day, func(at time.Time) {
			role := continuous[r.Intn(len(continuous))]
			at = at.Truncate(time.Minute)
			q.at(h, at, func(at time.Time) { h.h.Outage(role, at, time.Minute) })
		})
		times(artefactsPerDay, day, func(at time.Time) { q.artefact(h, r, at) })
		times(wearableOffPerDay, day, func(at time.Time) {
			if _, ok := h.spec.Device(sim.RoleWearable); !ok || !h.offTo.IsZero() && at.Before(h.offTo) {
				return
			}
			h.offFrom, h.offTo = at, at.Add(time.Hour+time.Duration(r.Int63n(int64(2*time.Hour))))
			q.artefact(h, r, at.Add(-time.Second))
		})
		times(sosCancelPerDay, day, func(at time.Time) {
			q.inject(h, at, sim.RoleSOS, catalog.EventSOS)
			q.inject(h, at.Add(time.Duration(5+r.Intn(16))*time.Second), sim.RoleSOS, catalog.EventSOSCancel)
			q.cancels[res] = append(q.cancels[res], at)
		})
		times(fallCancelPerDay, day, func(at time.Time) {
			role := sim.RoleWearable
			if _, ok := h.spec.Device(role); !ok {
				role = sim.RoleRadar
			}
			q.inject(h, at, role, catalog.EventFall)
			q.inject(h, at.Add(time.Duration(10+r.Intn(31))*time.Second), role, catalog.EventFallCancel)
		})
		if day+2 <= days {
			times(awayPerDay, day, func(at time.Time) {
				until := at.Add(30 * time.Hour)
				if at.Before(emTo) {
					return // not while a scripted emergency is under way
				}
				awayFrom, awayTo = at, until
				q.at(h, at, func(time.Time) {
					q.settings.update(res, func(s *rules.Settings) {
						s.Mode, s.ModeUntil, s.ModeReason = rules.ModeAway, until, "visiting family"
					})
				})
				h.h.StartScenario(sim.ScenarioInactive, at) // nothing moves at home for 26 h
			})
		}
		if day%emergencyEvery == 1 {
			var e emergency
			for {
				e = emergencies[emIndex%len(emergencies)]
				emIndex++
				if _, ok := h.spec.Device(e.needs); e.needs == "" || ok {
					break
				}
			}
			at := during(day)
			if e.name == "inactivity" && day+2 > days {
				continue // it needs a day and more to reach its tier
			}
			if at.Before(awayTo) && at.Add(e.lasts).After(awayFrom) {
				continue // the resident is away: no emergency at home
			}
			emTo = at.Add(e.lasts)
			s := &scripted{e: e, res: res, start: at}
			if e.onset == "" {
				s.onset = at
			}
			q.scripted = append(q.scripted, s)
			e.start(q, h, at)
		}
	}
	sort.SliceStable(h.inj, func(i, j int) bool { return h.inj[i].at.Before(h.inj[j].at) })
}

// at schedules f at a simulated time.
func (q *qualityRun) at(h *qHome, at time.Time, f func(time.Time)) {
	h.inj = append(h.inj, injection{at: at, do: f})
}

// inject schedules a device event as the home's device would send it.
func (q *qualityRun) inject(h *qHome, at time.Time, role, typ string) {
	d, ok := h.spec.Device(role)
	if !ok {
		return
	}
	q.at(h, at, func(at time.Time) {
		q.event(h, model.Event{ResidentID: h.spec.ResidentID, HomeID: h.spec.HomeID, DeviceID: d.ID, DeviceKind: d.Kind, TS: at, Type: typ}, at)
	})
}

// artefact schedules one implausible reading of a continuous vital: a ring
// slipping on the finger, a radar catching the cat.
func (q *qualityRun) artefact(h *qHome, r *rand.Rand, at time.Time) {
	role, vals := sim.RoleRadar, map[string]float64{}
	switch r.Intn(4) {
	case 0:
		vals["heart_rate"] = 140 + float64(r.Intn(30))
	case 1:
		vals["heart_rate"] = 32 + float64(r.Intn(8))
	case 2:
		vals["resp_rate"] = 28 + float64(r.Intn(8))
	case 3:
		role = sim.RoleWearable
		vals["spo2"] = 82 + float64(r.Intn(9))
	}
	d, ok := h.spec.Device(role)
	if !ok {
		d, _ = h.spec.Device(sim.RoleRadar)
		vals = map[string]float64{"heart_rate": 150}
	}
	q.at(h, at, func(at time.Time) {
		q.signals(q.ev.Reading(model.Reading{ResidentID: h.spec.ResidentID, HomeID: h.spec.HomeID, DeviceID: d.ID, DeviceKind: d.Kind, TS: at, Values: vals}, d.Kind))
	})
}

// step delivers what the home and the injections did up to now, in time
// order.
func (q *qualityRun) step(h *qHome, now time.Time) {
	msgs := h.h.Step(now)
	for len(msgs) > 0 || (len(h.inj) > 0 && !h.inj[0].at.After(now)) {
		if len(h.inj) > 0 && !h.inj[0].at.After(now) && (len(msgs) == 0 || h.inj[0].at.Before(msgs[0].At)) {
			in := h.inj[0]
			h.inj = h.inj[1:]
			in.do(in.at)
			continue
		}
		q.deliver(h, msgs[0])
		msgs = msgs[1:]
	}
}

// deliver decodes one simulated device message as ingest would and feeds
// it to the evaluator; arrival is the message's simulated time.
func (q *qualityRun) deliver(h *qHome, m sim.Msg) {
	res, home, kind := h.spec.ResidentID, h.spec.HomeID, h.kinds[m.DeviceID]
	switch m.Action {
	case sim.Drop: // the broker publishes the Last Will
		q.signals(q.ev.Status(model.Status{ResidentID: res, HomeID: home, DeviceID: m.DeviceID, DeviceKind: kind, TS: m.At}))
		return
	case sim.Publish:
	default:
		return
	}
	switch {
	case strings.HasSuffix(m.Topic, "/telemetry"):
		samples, _ := decode.Telemetry(m.DeviceID, m.Payload, "", m.At, decode.Limits{})
		for _, s := range samples {
			if kind == catalog.KindWearable && !s.TS.Before(h.offFrom) && s.TS.Before(h.offTo) {
				for _, v := range []string{"heart_rate", "spo2", "body_temp"} {
					delete(s.Values, v) // taken off: steps and battery only
				}
				if len(s.Values) == 0 {
					continue
				}
			}
			q.signals(q.ev.Reading(model.Reading{ResidentID: res, HomeID: home, DeviceID: m.DeviceID, DeviceKind: kind, TS: s.TS, Values: s.Values}, kind))
		}
	case strings.HasSuffix(m.Topic, "/event"):
		d, rej := decode.Event(m.Payload, m.At, decode.Limits{})
		if len(rej) > 0 {
			return
		}
		q.event(h, model.Event{ResidentID: res, HomeID: home, DeviceID: m.DeviceID, DeviceKind: kind, TS: d.TS, Type: d.Type, Data: d.Data}, m.At)
	case strings.HasSuffix(m.Topic, "/status"):
		d, rej := decode.Status(m.Payload, m.At)
		if len(rej) > 0 {
			return
		}
		q.signals(q.ev.Status(model.Status{ResidentID: res, HomeID: home, DeviceID: m.DeviceID, DeviceKind: kind, TS: d.TS, Online: d.Online, BatteryPct: d.BatteryPct}))
	}
}

// event feeds an event and records the onset of a scripted emergency that
// starts with it.
func (q *qualityRun) event(_ *qHome, ev model.Event, arrived time.Time) {
	for _, s := range q.scripted {
		if s.res == ev.ResidentID && s.onset.IsZero() && s.e.onset == ev.Type && !ev.TS.Before(s.start.Add(-time.Second)) {
			s.onset = ev.TS
		}
	}
	q.signals(q.ev.EventAt(ev, arrived))
}

// openAlert is an alert the lifecycle holds open.
type openAlert struct {
	at  time.Time
	sev string
}

// alertBook models the Manager's lifecycle enough to count alerts: one
// open alert per (resident, rule); an Active signal for an open rule is a
// repeat or a raise of its severity, not a new alert; a clear closes it.
// Event rules (SOS, fall, smoke, gas) close when a person resolves them:
// here 30 minutes after they were raised.
type alertBook struct {
	open   map[string]openAlert
	raised []raisedAlert
}

type raisedAlert struct {
	res, rule, sev, msg, dev string
	at                       time.Time
}

var eventRules = map[string]bool{rules.RuleSOS: true, rules.RuleFall: true, rules.RuleSmoke: true, rules.RuleGas: true, rules.RuleWaterLeak: true}

func (q *qualityRun) signals(sigs []rules.Signal) {
	for _, s := range sigs {
		key := s.ResidentID + "/" + s.Rule
		switch s.Rule {
		case rules.RuleDeviceOffline, rules.RuleLowBattery, rules.RuleWearableNotWorn:
			key += "/" + s.DeviceID // per device in the evaluator
		}
		o, isOpen := q.book.open[key]
		if isOpen && eventRules[s.Rule] && s.At.Sub(o.at) > 30*time.Minute {
			isOpen = false
		}
		if !s.Active {
			delete(q.book.open, key)
			continue
		}
		for _, sc := range q.scripted {
			if sc.res == s.ResidentID && sc.e.rule == s.Rule && sc.detected.IsZero() && !sc.onset.IsZero() &&
				!s.At.Before(sc.onset) && sevAtLeast(s.Severity, sc.e.minSev) {
				sc.detected, sc.sev = s.At, s.Severity
			}
		}
		if isOpen {
			continue
		}
		q.book.open[key] = openAlert{at: s.At, sev: s.Severity}
		q.book.raised = append(q.book.raised, raisedAlert{res: s.ResidentID, rule: s.Rule, sev: s.Severity, msg: s.Message, dev: s.DeviceID, at: s.At})
	}
}

func sevAtLeast(sev, floor string) bool {
	rank := map[string]int{rules.SeverityInfo: 1, rules.SeverityWarning: 2, rules.SeverityHigh: 3, rules.SeverityCritical: 4}
	return rank[sev] >= rank[floor]
}

// result classifies the raised alerts and the detections.
func (q *qualityRun) result(residentDays float64) qualityResult {
	r := qualityResult{ResidentDays: residentDays, FalseByRule: map[string]int{}, InfoByRule: map[string]int{}, WarnByRule: map[string]int{}}
	for _, a := range q.book.raised {
		switch {
		case q.expected(a):
			if sevAtLeast(a.sev, rules.SeverityHigh) {
				r.Expected++
			}
		case a.rule == rules.RuleSOS && q.cancelled(a):
			r.Cancelled++
		case a.sev == rules.SeverityInfo:
			r.Info++
			r.InfoByRule[a.rule]++
		case a.sev == rules.SeverityWarning:
			r.Warnings++
			r.WarnByRule[a.rule]++
		default:
			r.False++
			r.FalseByRule[a.rule+" ("+a.sev+")"]++
			r.FalseLines = append(r.FalseLines, fmt.Sprintf("  %s %s %s:%s %s (%s)", a.at.In(qualityZone).Format("01-02 15:04:05"), a.res, a.rule, a.sev, a.msg, a.dev))
		}
	}
	sort.SliceStable(q.scripted, func(i, j int) bool { return q.scripted[i].e.name < q.scripted[j].e.name })
	for _, s := range q.scripted {
		r.Emergencies++
		if s.detected.IsZero() {
			r.Missed = append(r.Missed, s.e.name+" "+s.res)
			r.DetectionLines = append(r.DetectionLines, fmt.Sprintf("  %-11s %-8s not detected (SLA %s)", s.e.name, s.res, s.e.sla))
			continue
		}
		d := s.detected.Sub(s.onset)
		ok := d <= s.e.sla
		if ok {
			r.WithinSLA++
		} else {
			r.Missed = append(r.Missed, s.e.name+" "+s.res)
		}
		r.DetectionLines = append(r.DetectionLines, fmt.Sprintf("  %-11s %-8s %-9s %10s  SLA %-10s %s", s.e.name, s.res, s.sev, d.Truncate(time.Second), s.e.sla, okWord(ok)))
	}
	return r
}

func okWord(ok bool) string {
	if ok {
		return "ok"
	}
	return "LATE"
}

// expected: the alert's rule is a scripted emergency's rule or one it
// rightly raises, for that resident, within the emergency's window.
func (q *qualityRun) expected(a raisedAlert) bool {
	for _, s := range q.scripted {
		if s.res != a.res || a.at.Before(s.start) || a.at.After(s.start.Add(s.e.lasts)) {
			continue
		}
		if a.rule == s.e.rule {
			return true
		}
		for _, r := range s.e.related {
			if r == a.rule {
				return true
			}
		}
	}
	return false
}

func (q *qualityRun) cancelled(a raisedAlert) bool {
	for _, at := range q.cancels[a.res] {
		if d := a.at.Sub(at); d >= 0 && d < time.Minute {
			return true
		}
	}
	return false
}

func printQuality(w io.Writer, r qualityResult, took time.Duration) {
	perDay := func(n int) float64 { return float64(n) / r.ResidentDays }
	fmt.Fprintf(w, "alert quality: %.0f resident-days, simulated in %s (rules evaluator in-process, simulated clock)\n", r.ResidentDays, took.Round(time.Millisecond))
	fmt.Fprintf(w, "pages (high, critical) per resident-day: expected %.3f (%d), cancelled SOS %.3f (%d), FALSE %.3f (%d)   target false ≤ %.1f\n",
		perDay(r.Expected), r.Expected, perDay(r.Cancelled), r.Cancelled, r.falsePerDay(), r.False, qualityTarget)
	printCounts(w, "false alarms by rule", r.FalseByRule)
	fmt.Fprintf(w, "unexpected warnings (listed for a look today, not paged) per resident-day: %.3f (%d)\n", perDay(r.Warnings), r.Warnings)
	printCounts(w, "warnings by rule", r.WarnByRule)
	fmt.Fprintf(w, "info records per resident-day: %.3f (%d)\n", perDay(r.Info), r.Info)
	printCounts(w, "info by rule", r.InfoByRule)
	fmt.Fprintf(w, "scripted emergencies: %d, within SLA %d (%.0f %%)\n", r.Emergencies, r.WithinSLA, 100*float64(r.WithinSLA)/float64(max(1, r.Emergencies)))
	fmt.Fprintf(w, "  %-11s %-8s %-9s %10s  %-14s\n", "emergency", "resident", "severity", "detection", "SLA")
	for _, l := range r.DetectionLines {
		fmt.Fprintln(w, l)
	}
}

func printCounts(w io.Writer, title string, m map[string]int) {
	if len(m) == 0 {
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(w, "  %s:", title)
	for _, k := range keys {
		fmt.Fprintf(w, " %s=%d", k, m[k])
	}
	fmt.Fprintln(w)
}
