package sim

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/model"
)

var kst = time.FixedZone("KST", 9*3600)

// monday is a Monday midnight in Seoul.
var monday = time.Date(2026, 3, 2, 0, 0, 0, 0, kst)

func testHome(t *testing.T, index int, seed int64) *Home {
	t.Helper()
	specs, err := PlanHomes("t", seed, index+1)
	if err != nil {
		t.Fatal(err)
	}
	return NewHome(specs[index], Options{Seed: seed, Location: kst}, monday)
}

// rec is a decoded published message.
type rec struct {
	Msg
	role   string
	kind   string // telemetry, event, status
	sample Sample
	batch  []Sample
	event  EventPayload
	status StatusPayload
}

// decode checks every message against the contract (§1) and decodes it.
func decode(t *testing.T, h *Home, msgs []Msg) []rec {
	t.Helper()
	roles := map[string]string{}
	for _, d := range h.Spec.Devices {
		roles[d.ID] = d.Role
	}
	var out []rec
	var last time.Time
	for _, m := range msgs {
		if m.At.Before(last) {
			t.Fatalf("messages out of order: %v after %v", m.At, last)
		}
		last = m.At
		r := rec{Msg: m, role: roles[m.DeviceID]}
		if m.Action == Note && m.DeviceID == "" {
			t.Fatalf("note without device: %+v", m)
		}
		if m.Action != Publish {
			out = append(out, r)
			continue
		}
		prefix := model.TopicPrefix + m.DeviceID + "/"
		if !strings.HasPrefix(m.Topic, prefix) {
			t.Fatalf("topic %q not under %q", m.Topic, prefix)
		}
		r.kind = strings.TrimPrefix(m.Topic, prefix)
		if len(m.Payload) > model.MaxPayloadBytes {
			t.Fatalf("payload of %d bytes", len(m.Payload))
		}
		switch r.kind {
		case model.TopicTelemetry:
			if m.Payload[0] == '[' {
				mustJSON(t, m.Payload, &r.batch)
				for _, s := range r.batch {
					checkSample(t, s)
				}
			} else {
				mustJSON(t, m.Payload, &r.sample)
				checkSample(t, r.sample)
				if r.sample.TS != m.At.UnixMilli() {
					t.Fatalf("ts %d sent at %v", r.sample.TS, m.At)
				}
			}
		case model.TopicEvent:
			mustJSON(t, m.Payload, &r.event)
			if !catalog.ValidEventType(r.event.Type) || r.event.TS == 0 {
				t.Fatalf("bad event %s", m.Payload)
			}
		case model.TopicStatus:
			if !m.Retained {
				t.Fatalf("status not retained")
			}
			mustJSON(t, m.Payload, &r.status)
		default:
			t.Fatalf("topic %q", m.Topic)
		}
		out = append(out, r)
	}
	return out
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
}

func checkSample(t *testing.T, s Sample) {
	t.Helper()
	if s.TS == 0 || len(s.Values) == 0 {
		t.Fatalf("empty sample %+v", s)
	}
	for k, v := range s.Values {
		m, ok := catalog.LookupMetric(k)
		if !ok || v < m.Min || v > m.Max || math.IsNaN(v) {
			t.Fatalf("metric %s=%v not accepted by the catalogue", k, v)
		}
	}
}

func local(ms int64) time.Time { return time.UnixMilli(ms).In(kst) }

func hm(h, m int) time.Time {
	return monday.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
}

func events(rs []rec, typ string) []rec {
	var out []rec
	for _, r := range rs {
		if r.kind == model.TopicEvent && r.event.Type == typ {
			out = append(out, r)
		}
	}
	return out
}

func between(ms int64, from, to time.Time) bool {
	t := local(ms)
	return !t.Before(from) && t.Before(to)
}

func TestRoutineDay(t *testing.T) {
	h := testHome(t, 0, 42)
	rs := decode(t, h, h.Step(monday.Add(24*time.Hour-time.Second)))

	// Door: out once in the afternoon, open then close, twice.
	var door []string
	for _, r := range rs {
		if r.role == RoleDoor && r.kind == model.TopicEvent {
			if !between(r.event.TS, hm(13, 30), hm(17, 31)) {
				t.Errorf("door %s at %v, outside the afternoon outing", r.event.Type, local(r.event.TS))
			}
			door = append(door, r.event.Type)
		}
	}
	if strings.Join(door, ",") != "door_open,door_close,door_open,door_close" {
		t.Errorf("door events %v", door)
	}
	// Bed: up in the morning, in bed at night.
	var morningExit, nightEnter int
	for _, r := range events(rs, catalog.EventBedExit) {
		if between(r.event.TS, hm(6, 10), hm(6, 52)) {
			morningExit++
		}
	}
	for _, r := range events(rs, catalog.EventBedEnter) {
		if between(r.event.TS, hm(21, 40), hm(22, 22)) {
			nightEnter++
		}
	}
	if morningExit != 1 || nightEnter != 1 {
		t.Errorf("morning bed exits %d, night bed entries %d; want 1 and 1", morningExit, nightEnter)
	}
	// The bed pad says in bed at 01:00, out of bed at 10:00 and 15:00.
	inBed := map[time.Time]float64{}
	var kitchenMorning, toilets, bp, gluco, weight int
	var stepsEarly, stepsLate float64
	for _, r := range rs {
		switch {
		case r.role == RoleBed && r.kind == model.TopicTelemetry:
			inBed[local(r.sample.TS).Truncate(time.Minute)] = r.sample.Values["in_bed"]
		case r.role == RolePIRKitchen && r.kind == model.TopicEvent && between(r.event.TS, hm(6, 0), hm(8, 0)):
			kitchenMorning++
		case r.kind == model.TopicEvent && r.event.Type == catalog.EventToilet:
			toilets++
		case r.role == RoleBP && r.kind == model.TopicTelemetry:
			bp++
			if s := r.sample.Values["systolic_bp"]; s < 100 || s > 170 {
				t.Errorf("systolic %v", s)
			}
		case r.role == RoleGluco && r.kind == model.TopicTelemetry:
			gluco++
		case r.role == RoleScale && r.kind == model.TopicTelemetry:
			weight++
		case r.role == RoleWearable && r.kind == model.TopicTelemetry:
			if st, ok := r.sample.Values["steps"]; ok {
				if between(r.sample.TS, hm(13, 0), hm(13, 1)) {
					stepsEarly = st
				}
				if between(r.sample.TS, hm(18, 0), hm(18, 1)) {
					stepsLate = st
				}
			}
			if hr, ok := r.sample.Values["heart_rate"]; ok && (hr < 45 || hr > 100) {
				t.Errorf("resting heart rate %v", hr)
			}
			if sp, ok := r.sample.Values["spo2"]; ok && (sp < 94 || sp > 100) {
				t.Errorf("spo2 %v", sp)
			}
		}
	}
	bedAt := func(h, m int) float64 {
		v, ok := inBed[time.Date(2026, 3, 2, h, m, 0, 0, kst)]
		if !ok {
			t.Fatalf("no bed report at %02d:%02d", h, m)
		}
		return v
	}
	if bedAt(1, 0) != 1 || bedAt(10, 0) != 0 || bedAt(23, 0) != 1 {
		t.Errorf("in_bed at 01:00, 10:00, 23:00 = %v %v %v", bedAt(1, 0), bedAt(10, 0), bedAt(23, 0))
	}
	if kitchenMorning == 0 || toilets < 2 {
		t.Errorf("kitchen motion in the morning %d, toilet flushes %d", kitchenMorning, toilets)
	}
	if bp != 2 || gluco != 2 || weight != 1 {
		t.Errorf("BP %d, glucose %d, weight %d readings on a Monday; want 2, 2, 1", bp, gluco, weight)
	}
	if !(stepsEarly > 0 && stepsLate > stepsEarly+5000) {
		t.Errorf("steps at 13:00 %v, at 18:00 %v: the outing should add thousands", stepsEarly, stepsLate)
	}
}

func TestHomeIsDeterministic(t *testing.T) {
	a, b := testHome(t, 1, 7), testHome(t, 1, 7)
	c := testHome(t, 1, 8)
	var pa, pb, pc []string
	for i := 1; i <= 48; i++ {
		now := monday.Add(time.Duration(i) * 30 * time.Minute)
		for _, m := range a.Step(now) {
			pa = append(pa, m.Topic+string(m.Payload))
		}
		for _, m := range b.Step(now) {
			pb = append(pb, m.Topic+string(m.Payload))
		}
		for _, m := range c.Step(now) {
			pc = append(pc, m.Topic+string(m.Payload))
		}
	}
	if strings.Join(pa, "\n") != strings.Join(pb, "\n") {
		t.Fatal("same seed, different homes")
	}
	if strings.Join(pa, "\n") == strings.Join(pc, "\n") {
		t.Fatal("different seeds, same home")
	}
}

func TestFirstStepConnectsEveryDevice(t *testing.T) {
	h := testHome(t, 0, 1)
	rs := decode(t, h, h.Step(monday))
	connected := map[string]bool{}
	for _, r := range rs {
		if r.Action == Connect {
			connected[r.DeviceID] = true
		}
		if r.kind == model.TopicStatus {
			if !connected[r.DeviceID] || !r.status.Online || r.status.RSSIdBm == nil {
				t.Errorf("status before connect or incomplete: %s", r.Payload)
			}
			hasBattery := drainPerDay[r.role] > 0
			if (r.status.BatteryPct != nil) != hasBattery {
				t.Errorf("%s battery_pct present=%v, battery powered=%v", r.role, r.status.BatteryPct != nil, hasBattery)
			}
		}
	}
	if len(connected) != len(h.Spec.Devices) {
		t.Fatalf("%d of %d devices connected", len(connected), len(h.Spec.Devices))
	}
}

func TestFallScenario(t *testing.T) {
	h := testHome(t, 0, 3)
	h.Step(hm(10, 0))
	h.StartScenario(ScenarioFall, hm(10, 1))
	rs := decode(t, h, h.Step(hm(12, 0)))
	falls := events(rs, catalog.EventFall)
	if len(falls) != 1 || falls[0].role != RoleWearable {
		t.Fatalf("fall events %+v", falls)
	}
	if len(events(rs, catalog.EventFallCancel)) != 0 {
		t.Fatal("the fall was cancelled")
	}
	var noted bool
	for _, r := range rs {
		if r.Action == Note && r.Text == ScenarioFall {
			noted = true
		}
		// Lying on the floor: no movement reported for the 90 minutes after.
		if r.At.After(falls[0].At) && r.At.Before(hm(11, 30)) {
			if r.kind == model.TopicEvent && r.event.Type != catalog.EventFall ||
				r.kind == model.TopicTelemetry && r.sample.Values["motion"] > 0 && r.At.After(hm(10, 6)) {
				t.Errorf("movement after the fall at %v: %s", r.At.In(kst), r.Payload)
			}
		}
	}
	if !noted {
		t.Error("scenario start not noted")
	}
}

func TestSOSScenarioCancelsWithin30s(t *testing.T) {
	var cancelled, kept int
	for seed := int64(1); seed <= 12; seed++ {
		h := testHome(t, 0, seed)
		h.Step(hm(9, 0))
		h.StartScenario(ScenarioSOS, hm(9, 0))
		rs := decode(t, h, h.Step(hm(9, 5)))
		sos, cancel := events(rs, catalog.EventSOS), events(rs, catalog.EventSOSCancel)
		if len(sos) != 1 || sos[0].role != RoleSOS {
			t.Fatalf("seed %d: sos events %d", seed, len(sos))
		}
		switch len(cancel) {
		case 0:
			kept++
		case 1:
			cancelled++
			if d := cancel[0].event.TS - sos[0].event.TS; d <= 0 || d > 30_000 {
				t.Errorf("seed %d: cancelled after %d ms", seed, d)
			}
		default:
			t.Fatalf("seed %d: %d cancels", seed, len(cancel))
		}
	}
	if cancelled == 0 || kept == 0 {
		t.Fatalf("cancelled %d, kept %d: want both kinds", cancelled, kept)
	}
}

func TestInactiveScenario(t *testing.T) {
	h := testHome(t, 0, 5)
	h.Step(hm(8, 0))
	h.StartScenario(ScenarioInactive, hm(8, 0))
	rs := decode(t, h, h.Step(hm(8, 0).Add(26*time.Hour)))
	for _, r := range rs {
		if r.At.Before(hm(8, 2)) {
			continue
		}
		if r.kind == model.TopicEvent ||
			r.kind == model.TopicTelemetry && (r.sample.Values["motion"] > 0 || r.sample.Values["in_bed"] > 0 || r.sample.Values["door_open"] > 0 || r.sample.Values["presence"] > 0) {
			t.Fatalf("activity at %v: %s", r.At.In(kst), r.Payload)
		}
	}
	// And afterwards the resident moves again.
	rs = decode(t, h, h.Step(hm(8, 0).Add(30*time.Hour)))
	if len(events(rs, catalog.EventMotion)) == 0 {
		t.Fatal("no motion after the inactive spell")
	}
}

func vitalsRange(rs []rec, metric string) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, r := range rs {
		if v, ok := r.sample.Values[metric]; ok && r.kind == model.TopicTelemetry {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	return lo, hi
}

func TestFeverAndLowSpO2Scenarios(t *testing.T) {
	h := testHome(t, 0, 9)
	h.Step(hm(9, 0))
	rs := decode(t, h, h.Step(hm(21, 0)))
	_, normalTemp := vitalsRange(rs, "body_temp")
	normalSpO2, _ := vitalsRange(rs, "spo2")

	h.StartScenario(ScenarioFever, hm(21, 1))
	rs = decode(t, h, h.Step(hm(33, 0)))
	if _, hi := vitalsRange(rs, "body_temp"); normalTemp > 37.2 || hi < 38.4 {
		t.Errorf("body temperature peaks at %v without fever, %v with", normalTemp, hi)
	}
	h.StartScenario(ScenarioLowSpO2, hm(34, 0))
	rs = decode(t, h, h.Step(hm(37, 0)))
	if lo, _ := vitalsRange(rs, "spo2"); normalSpO2 < 94 || lo > 91 {
		t.Errorf("SpO2 lowest %v normally, %v in the scenario", normalSpO2, lo)
	}
}

func TestSmokeScenario(t *testing.T) {
	h := testHome(t, 0, 2)
	h.Step(hm(11, 0))
	h.StartScenario(ScenarioSmoke, hm(11, 0))
	rs := decode(t, h, h.Step(hm(11, 30)))
	if s := events(rs, catalog.EventSmoke); len(s) != 1 || s[0].role != RoleSmoke {
		t.Fatalf("smoke events %+v", s)
	}
	if _, pm := vitalsRange(rs, "pm2_5"); pm < 200 {
		t.Fatalf("pm2_5 peaks at %v", pm)
	}
}

// TestOutageCatchUp: a device cut off for two hours queues what it measures
// and, back online, sends all of it in order as catch-up arrays: exactly the
// samples a twin home without the outage sent live.
func TestOutageCatchUp(t *testing.T) {
	a, b := testHome(t, 0, 11), testHome(t, 0, 11)
	a.Step(hm(21, 0))
	b.Step(hm(21, 0))
	radar := b.devs[RoleRadar]
	b.outage(radar, hm(21, 1), 2*time.Hour)

	ra := decode(t, a, a.Step(hm(23, 30)))
	rb := decode(t, b, b.Step(hm(23, 30)))

	var live []Sample
	for _, r := range ra {
		if r.role == RoleRadar && r.kind == model.TopicTelemetry && r.At.Before(hm(23, 1)) {
			live = append(live, r.sample)
		}
	}
	var caught []Sample
	var dropAt, backAt time.Time
	for _, r := range rb {
		if r.DeviceID != radar.spec.ID {
			continue
		}
		switch {
		case r.Action == Drop:
			dropAt = r.At
		case r.Action == Connect:
			backAt = r.At
		case r.kind == model.TopicTelemetry && r.batch != nil:
			if len(r.batch) > CatchUpBatch || !r.At.Equal(backAt) {
				t.Fatalf("catch-up of %d samples at %v", len(r.batch), r.At)
			}
			caught = append(caught, r.batch...)
		case r.kind == model.TopicTelemetry && r.At.Before(backAt):
			t.Fatalf("live telemetry while offline at %v", r.At)
		}
	}
	if !dropAt.Equal(hm(21, 1)) || !backAt.Equal(hm(23, 1)) {
		t.Fatalf("dropped at %v, back at %v", dropAt, backAt)
	}
	var missed []Sample
	for _, s := range live {
		if s.TS >= dropAt.UnixMilli() && s.TS < backAt.UnixMilli() {
			missed = append(missed, s)
		}
	}
	if len(missed) < 50 {
		t.Fatalf("only %d radar samples in the outage to compare", len(missed))
	}
	la, _ := json.Marshal(missed)
	lb, _ := json.Marshal(caught)
	if string(la) != string(lb) {
		t.Fatalf("catch-up differs from what was measured:\n%s\n%s", la, lb)
	}
}

func TestOutageQueueIsBounded(t *testing.T) {
	h := testHome(t, 0, 4)
	h.Step(hm(0, 0))
	radar := h.devs[RoleRadar]
	h.outage(radar, hm(0, 1), 72*time.Hour)
	h.Step(hm(60, 0))
	if len(radar.queue) != MaxQueuedSamples || radar.dropped == 0 {
		t.Fatalf("queue %d, dropped %d", len(radar.queue), radar.dropped)
	}
	rs := decode(t, h, h.Step(hm(73, 0)))
	var n int
	var last int64
	for _, r := range rs {
		for _, s := range r.batch {
			if s.TS <= last {
				t.Fatal("catch-up out of order")
			}
			last = s.TS
			n++
		}
	}
	if n != MaxQueuedSamples {
		t.Fatalf("caught up %d samples", n)
	}
}

func TestOfflineScenarioDropsAMotionDevice(t *testing.T) {
	h := testHome(t, 0, 6)
	h.Step(hm(9, 0))
	h.StartScenario(ScenarioOffline, hm(9, 0))
	rs := decode(t, h, h.Step(hm(9, 10)))
	var dropped string
	for _, r := range rs {
		if r.Action == Drop {
			dropped = r.role
		}
	}
	if dropped != RoleDoor && dropped != RoleRadar || !h.Offline(dropped) {
		t.Fatalf("dropped %q", dropped)
	}
	h.Step(hm(15, 1))
	if h.Offline(dropped) {
		t.Fatal("still offline after 6 hours")
	}
}

func TestBatteryDrain(t *testing.T) {
	h := testHome(t, 0, 8)
	h.Step(monday)
	pir, wear := h.Battery(RolePIRLiving), h.Battery(RoleWearable)
	if h.Battery(RoleRadar) != -1 {
		t.Fatal("radar is mains powered")
	}
	h.Step(monday.Add(10 * 24 * time.Hour))
	if got := pir - h.Battery(RolePIRLiving); math.Abs(got-0.5) > 0.01 {
		t.Errorf("PIR lost %.3f %% in 10 days, want 0.5", got)
	}
	// The wearable drains 12 %/day and is charged when it falls under 40 %.
	if w := h.Battery(RoleWearable); w == wear || w < 28 || w > 100 {
		t.Errorf("wearable battery %v (started %v)", w, wear)
	}
}

func TestRandomIncidentsAndOutages(t *testing.T) {
	specs, _ := PlanHomes("t", 1, 1)
	h := NewHome(specs[0], Options{Seed: 1, Location: kst, IncidentsPerDay: 4, OutagesPerDay: 4}, monday)
	rs := decode(t, h, h.Step(monday.Add(7*24*time.Hour)))
	var notes, drops int
	for _, r := range rs {
		switch r.Action {
		case Note:
			notes++
		case Drop:
			drops++
		}
	}
	if notes < 10 || drops < 10 {
		t.Fatalf("%d incidents and %d drops in a week at 4 a day each", notes, drops)
	}
}

func TestSimClock(t *testing.T) {
	wall := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	now := wall
	c := NewSimClock(wall.Add(-time.Hour), 60, func() time.Time { return now })
	if got := c.Now(); !got.Equal(wall.Add(-time.Hour)) {
		t.Fatalf("start %v", got)
	}
	now = wall.Add(30 * time.Second)
	if got := c.Now(); !got.Equal(wall.Add(-30 * time.Minute)) {
		t.Fatalf("after 30 s at 60x: %v", got)
	}
	now = wall.Add(2 * time.Minute) // would be 1 h ahead: held to the wall clock
	if got := c.Now(); !got.Equal(now) {
		t.Fatalf("ahead of the wall clock: %v", got)
	}
}

func TestPlanHomes(t *testing.T) {
	a, err := PlanHomes("sim-42", 42, 8)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := PlanHomes("sim-42", 42, 8)
	for i := range a {
		if a[i].Name != b[i].Name || a[i].ResidentID != b[i].ResidentID {
			t.Fatal("not deterministic")
		}
		for _, d := range a[i].Devices {
			if !catalog.ValidID(d.ID) || !catalog.ValidKind(d.Kind) {
				t.Fatalf("device %+v", d)
			}
		}
		_, wear := a[i].Device(RoleWearable)
		if wear != HasWearable(i) {
			t.Fatalf("home %d wearable %v", i, wear)
		}
	}
	if _, err := PlanHomes("Bad Prefix", 1, 1); err == nil {
		t.Fatal("bad prefix accepted")
	}
}
