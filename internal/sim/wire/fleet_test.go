package wire

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/sim"
	"github.com/carehub/carehub/internal/testenv"
)

// checkSample fails on a sample carehub's catalogue would not accept.
func checkSample(t *testing.T, s sim.Sample) {
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

// checkWire decodes a message as carehub's ingest would (contract §1) and
// fails on anything it would reject. It returns the topic kind and device.
func checkWire(t *testing.T, devices map[string]bool, m received) (device, kind string) {
	t.Helper()
	rest, ok := strings.CutPrefix(m.Topic, model.TopicPrefix)
	device, kind, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 || !devices[device] {
		t.Fatalf("topic %q is not a simulated device's", m.Topic)
	}
	if len(m.Payload) > model.MaxPayloadBytes {
		t.Fatalf("%d byte payload", len(m.Payload))
	}
	strict := func(v any) {
		dec := json.NewDecoder(strings.NewReader(string(m.Payload)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			t.Fatalf("%s %s: %v", m.Topic, m.Payload, err)
		}
	}
	switch kind {
	case model.TopicTelemetry:
		var ss []sim.Sample
		if m.Payload[0] == '[' {
			strict(&ss)
		} else {
			var s sim.Sample
			strict(&s)
			ss = []sim.Sample{s}
		}
		for _, s := range ss {
			checkSample(t, s)
			if ts := time.UnixMilli(s.TS); ts.After(time.Now().Add(5 * time.Minute)) {
				t.Fatalf("ts %v is in the future", ts)
			}
		}
	case model.TopicEvent:
		var e sim.EventPayload
		strict(&e)
		if !catalog.ValidEventType(e.Type) {
			t.Fatalf("event type %q", e.Type)
		}
	case model.TopicStatus:
		var s sim.StatusPayload
		strict(&s)
	default:
		t.Fatalf("topic %q", m.Topic)
	}
	return device, kind
}

// TestRunnerThroughBroker runs two homes through a real broker: every
// message has a device's topic and a payload the contract accepts, statuses
// are retained, the fall arrives, and the device cut off by the offline
// scenario gets its Last Will published.
func TestRunnerThroughBroker(t *testing.T) {
	url, rec := startBroker(t)
	specs, err := sim.PlanHomes(testenv.ID("it"), 5, 2)
	if err != nil {
		t.Fatal(err)
	}
	devices := map[string]bool{}
	for _, s := range specs {
		for _, d := range s.Devices {
			devices[d.ID] = true
		}
	}
	// A fixed past start: a home is deterministic from its seed and start,
	// so the device the offline scenario drops is the same every run. From
	// "now" it varied with the hour, and on some hours the door contact was
	// dropped while the resident stayed in: it had no samples to catch up.
	start := time.Date(2026, 1, 5, 2, 0, 0, 0, time.UTC)
	homes := []*sim.Home{sim.NewHome(specs[0], sim.Options{Seed: 5}, start), sim.NewHome(specs[1], sim.Options{Seed: 5}, start)}
	homes[0].StartScenario(sim.ScenarioFall, start.Add(time.Minute))
	homes[1].StartScenario(sim.ScenarioOffline, start.Add(time.Minute))
	fleet := NewFleet(url, func(string) (string, string) { return "", "" }, zerolog.Nop())
	r := &sim.Runner{Homes: homes, Transport: fleet, Log: zerolog.Nop(), Workers: 2}
	ctx := context.Background()
	r.StepAll(ctx, start)
	if fleet.Connected() != len(devices) {
		t.Fatalf("%d of %d devices connected", fleet.Connected(), len(devices))
	}
	r.StepAll(ctx, start.Add(45*time.Minute))
	st := r.Stats()
	if st.Errors != 0 || st.Scenarios != 2 || st.Published < 100 {
		t.Fatalf("stats %+v", st)
	}
	var dropped string
	for _, role := range []string{sim.RoleDoor, sim.RoleRadar} {
		if homes[1].Offline(role) {
			d, _ := specs[1].Device(role)
			dropped = d.ID
		}
	}
	if dropped == "" {
		t.Fatal("no device offline")
	}
	// Everything published, plus the Last Will.
	testenv.WaitFor(t, 5*time.Second, "published messages and the will", func() bool {
		return int64(len(rec.all())) >= st.Published+1
	})
	var falls, wills int
	for _, m := range rec.all() {
		dev, kind := checkWire(t, devices, m)
		if kind == model.TopicEvent && strings.Contains(string(m.Payload), `"type":"fall"`) {
			falls++
			if d, _ := specs[0].Device(sim.RoleWearable); dev != d.ID {
				t.Errorf("fall from %s", dev)
			}
		}
		if kind == model.TopicStatus && string(m.Payload) == string(sim.WillPayload) {
			wills++
			if dev != dropped {
				t.Errorf("Last Will of %s, which was not dropped", dev)
			}
		}
	}
	if falls != 1 || wills != 1 {
		t.Fatalf("%d falls, %d wills", falls, wills)
	}

	// A late subscriber gets every device's retained status: online, but
	// offline for the dropped one (its will was retained).
	retained := map[string]sim.StatusPayload{}
	var mu sync.Mutex
	sub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(testenv.ID("sub")))
	if tok := sub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber: %v", tok.Error())
	}
	defer sub.Disconnect(0)
	sub.Subscribe("care/v1/dev/+/status", 1, func(_ mqtt.Client, m mqtt.Message) {
		var s sim.StatusPayload
		if m.Retained() && json.Unmarshal(m.Payload(), &s) == nil {
			mu.Lock()
			retained[strings.Split(m.Topic(), "/")[3]] = s
			mu.Unlock()
		}
	}).WaitTimeout(5 * time.Second)
	testenv.WaitFor(t, 5*time.Second, "retained statuses", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(retained) == len(devices)
	})
	for id, s := range retained {
		if s.Online == (id == dropped) {
			t.Errorf("%s retained online=%v", id, s.Online)
		}
	}

	// Back after six hours: status online, the missed samples as arrays.
	before := len(rec.all())
	r.StepAll(ctx, start.Add(7*time.Hour))
	if st := r.Stats(); st.Errors != 0 {
		t.Fatalf("after the reconnect: stats %+v", st)
	}
	var arrays int
	testenv.WaitFor(t, 5*time.Second, "catch-up", func() bool {
		arrays = rec.count(func(m received) bool {
			return strings.HasPrefix(m.Topic, model.TopicPrefix+dropped+"/telemetry") && m.Payload[0] == '['
		})
		return arrays > 0
	})
	for _, m := range rec.all()[before:] {
		checkWire(t, devices, m)
	}
	fleet.Close(ctx)
	if fleet.Connected() != 0 {
		t.Fatal("connections left open")
	}
}

func TestDropWithoutConnection(t *testing.T) {
	f := NewFleet("tcp://127.0.0.1:1", func(string) (string, string) { return "", "" }, zerolog.Nop())
	if err := f.Drop("x"); err != ErrNotConnected {
		t.Fatalf("drop: %v", err)
	}
	if err := f.Publish("x", "t", nil, false); err != ErrNotConnected {
		t.Fatalf("publish: %v", err)
	}
	if err := f.Connect("x"); err == nil {
		t.Fatal("connected to a closed port")
	}
}

func TestLoadThroughBroker(t *testing.T) {
	for _, perDevice := range []bool{false, true} {
		url, rec := startBroker(t)
		homes, err := PlanLoad(testenv.ID("ld"), 1, 25)
		if err != nil {
			t.Fatal(err)
		}
		var devs []Credentials
		ids := map[string]bool{}
		for _, h := range homes {
			for _, d := range h.Devices {
				devs = append(devs, Credentials{DeviceID: d.ID, ResidentID: h.ResidentID, HomeID: h.HomeID})
				ids[d.ID] = true
			}
		}
		begin := time.Now()
		res, err := RunLoad(context.Background(), LoadConfig{Broker: url, Devices: devs, Conns: 3, PerDevice: perDevice,
			Count: 2000, Values: 4, QoS: 1, Window: 32}, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		if res.Sent != 2000 || res.Errors != 0 || res.Rate() <= 0 {
			t.Fatalf("per-device=%v: %+v", perDevice, res)
		}
		testenv.WaitFor(t, 5*time.Second, "2000 messages at the broker", func() bool { return len(rec.all()) >= 2000 })
		seen := map[string]bool{}
		for _, m := range rec.all() {
			dev, kind := checkWire(t, ids, m)
			var s sim.Sample
			_ = json.Unmarshal(m.Payload, &s)
			if kind != model.TopicTelemetry || len(s.Values) != 4 || s.TS < begin.UnixMilli() {
				t.Fatalf("load message %s %s", m.Topic, m.Payload)
			}
			seen[dev] = true
		}
		if len(seen) != len(devs) {
			t.Fatalf("per-device=%v: %d of %d devices published", perDevice, len(seen), len(devs))
		}
	}
}

func TestLoadPacesAndStopsByDuration(t *testing.T) {
	url, rec := startBroker(t)
	homes, _ := PlanLoad(testenv.ID("ld"), 1, 4)
	var devs []Credentials
	for _, d := range homes[0].Devices {
		devs = append(devs, Credentials{DeviceID: d.ID})
	}
	res, err := RunLoad(context.Background(), LoadConfig{Broker: url, Devices: devs, Conns: 2, Rate: 200,
		Duration: 500 * time.Millisecond, Values: 1, QoS: 1, Window: 8}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	// 200 msgs/s for half a second: about 100, never thousands.
	if res.Sent < 50 || res.Sent > 130 || res.Errors != 0 {
		t.Fatalf("%+v", res)
	}
	testenv.WaitFor(t, 5*time.Second, "all at the broker", func() bool { return int64(len(rec.all())) == res.Sent })
}

func TestBackfillThroughBroker(t *testing.T) {
	url, rec := startBroker(t)
	specs, _ := sim.PlanHomes(testenv.ID("bf"), 3, 4) // home 3 has no wearable: uses the radar
	ids := map[string]bool{}
	for _, s := range specs {
		for _, d := range s.Devices {
			ids[d.ID] = true
		}
	}
	to := time.Now().Truncate(time.Minute)
	res, err := Backfill(context.Background(), BackfillConfig{Broker: url, Homes: specs,
		Creds: func(string) (string, string) { return "", "" }, Seed: 3,
		From: to.Add(-2 * time.Hour), To: to, Interval: time.Minute, Batch: 60, Conns: 2, Window: 4}, zerolog.Nop())
	if err != nil || res.Errors != 0 || res.Messages != 8 || res.Samples != 480 {
		t.Fatalf("%+v %v", res, err)
	}
	testenv.WaitFor(t, 5*time.Second, "8 arrays", func() bool { return len(rec.all()) >= 8 })
	perDevice := map[string][]int64{}
	for _, m := range rec.all() {
		dev, kind := checkWire(t, ids, m)
		var ss []sim.Sample
		if kind != model.TopicTelemetry || json.Unmarshal(m.Payload, &ss) != nil || len(ss) != 60 {
			t.Fatalf("backfill message %s", m.Topic)
		}
		for _, s := range ss {
			perDevice[dev] = append(perDevice[dev], s.TS)
		}
	}
	if len(perDevice) != 4 {
		t.Fatalf("%d devices backfilled", len(perDevice))
	}
	for dev, ts := range perDevice {
		for i := range ts {
			if ts[i] != to.Add(-2*time.Hour+time.Duration(i)*time.Minute).UnixMilli() {
				t.Fatalf("%s sample %d at %v", dev, i, time.UnixMilli(ts[i]))
			}
		}
	}
}
