package erasure_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/alerts/escalation"
	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/alerts/settings"
	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/internal/erasure"
	"github.com/carehub/carehub/internal/influx"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/mqttbroker"
	"github.com/carehub/carehub/internal/natsx"
	"github.com/carehub/carehub/internal/testenv"
	"github.com/carehub/carehub/internal/users"
)

var defaultRetention = erasure.Retention{Buffers: natsx.DefaultStreamOptions.BufferAge,
	Alerts: natsx.DefaultStreamOptions.AlertsAge, Audit: natsx.DefaultStreamOptions.AuditAge}

// engineSpy records which residents the alert engine was told to forget
// (engine.Engine is covered by its own tests and internal/app's).
type engineSpy struct{ erased []string }

func (e *engineSpy) EraseResident(_ context.Context, id string) error {
	e.erased = append(e.erased, id)
	return nil
}

func connectDevice(t *testing.T, addr, id, password string) (paho.Client, error) {
	t.Helper()
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetUsername(id).SetPassword(password).
		SetAutoReconnect(false).SetConnectRetry(false).SetCleanSession(true).SetConnectTimeout(5 * time.Second)
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("connect %s timed out", id)
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c, nil
}

// TestErase erases a resident against real NATS, a real InfluxDB 1.8 and
// the embedded MQTT broker, and checks each place: their readings, events,
// alerts and device status series are gone from InfluxDB while another
// resident's stay; their device is disconnected and can no longer log in;
// registry, presence, settings, escalation chain, caregivers' assignments,
// alerts (also after a restart of the alert manager) and buffered messages
// are gone; what stays is said with its date.
func TestErase(t *testing.T) {
	in := testenv.SharedInflux(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ic, err := influx.Open(ctx, influx.Options{URL: in.URL, Bucket: testenv.ID("care"), Version: "auto", Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ic.Close)
	ns := testenv.NATS(t)
	nc, js := testenv.JetStream(t, ns)
	now := time.Now().UTC().Truncate(time.Second)
	clock := func() time.Time { return now }
	log := zerolog.Nop()
	reg, err := devices.Open(ctx, js, log, clock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	us, err := users.Open(ctx, js, clock)
	if err != nil {
		t.Fatal(err)
	}
	ruleSettings, err := settings.Open(ctx, js, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ruleSettings.Close)
	mgr, err := alerts.NewManager(ctx, alerts.Options{JS: js, NC: nc, Settings: ruleSettings, Clock: clock, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	pres, err := devices.NewPresenceTracker(ctx, js, reg, log, devices.PresenceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := mqttbroker.Start(mqttbroker.Options{Listen: "127.0.0.1:0", Authenticator: reg, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	engine := &engineSpy{}
	e := &erasure.Eraser{Registry: reg, Tombstone: reg, Engine: engine, Series: ic, Alerts: mgr, Settings: ruleSettings,
		Chains: mgr.Chains(), Presence: pres, Broker: b, Streams: js, Assignments: us, Clock: clock, Retention: defaultRetention}

	pw := map[string]string{}
	for _, rid := range []string{"r1", "r2"} {
		if _, err := reg.CreateResident(ctx, devices.Resident{ID: rid, Name: "Resident " + rid, HomeID: "h-" + rid}); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range [][2]string{{"d1", "r1"}, {"d1b", "r1"}, {"d2", "r2"}} {
		_, p, err := reg.RegisterDevice(ctx, d[0], "wearable", d[1])
		if err != nil {
			t.Fatal(err)
		}
		pw[d[0]] = p
	}
	if _, err := us.Create(ctx, users.NewUser{ID: "care", Name: "User care", Role: users.RoleCaregiver}); err != nil {
		t.Fatal(err)
	}
	if _, err := us.SetResidents(ctx, "care", []string{"r1", "r2"}); err != nil {
		t.Fatal(err)
	}
	dev, err := connectDevice(t, b.Addr(), "d1", pw["d1"])
	if err != nil {
		t.Fatal(err)
	}

	// Data of both residents everywhere.
	ms := now.Add(-time.Hour).UnixMilli()
	var lines strings.Builder
	for _, x := range [][2]string{{"r1", "d1"}, {"r2", "d2"}} {
		rid, did := x[0], x[1]
		fmt.Fprintf(&lines, "readings,resident_id=%s,home_id=h-%s,device_id=%s,device_kind=wearable heart_rate=72 %d\n", rid, rid, did, ms)
		fmt.Fprintf(&lines, "events,resident_id=%s,home_id=h-%s,device_id=%s,type=fall value=1 %d\n", rid, rid, did, ms)
		fmt.Fprintf(&lines, "alerts,resident_id=%s,rule=heart_rate,severity=high,transition=raised value=135,seconds_since_raised=0 %d\n", rid, ms)
		fmt.Fprintf(&lines, "device_status,home_id=h-%s,device_id=%s online=true,battery_pct=80 %d\n", rid, did, ms)
		if err := mgr.Signal(ctx, rules.Signal{ResidentID: rid, HomeID: "h-" + rid, Rule: "heart_rate", Severity: "high", Active: true,
			Metric: "heart_rate", Value: 135, Threshold: 131, Message: "heart rate 135/min", At: now}); err != nil {
			t.Fatal(err)
		}
		if err := ruleSettings.Put(ctx, rid, rules.Settings{Mode: rules.ModeHospital, ModeReason: "admitted for a fall", ModeBy: "admin"}); err != nil {
			t.Fatal(err)
		}
		if err := mgr.Chains().Put(ctx, escalation.Chain{ResidentID: rid, Tiers: []escalation.Tier{{Role: "caregiver"}, {Role: "coordinator"}}}); err != nil {
			t.Fatal(err)
		}
		pres.Seen(did, now)
		if _, err := js.Publish(ctx, model.ReadingSubject(rid, did), []byte(`{"resident_id":"`+rid+`"}`)); err != nil {
			t.Fatal(err)
		}
		// A batch of readings (contract §3) lives under the resident's partition.
		if _, err := js.Publish(ctx, model.ReadingBatchSubject(rid), []byte(`{"readings":[{"resident_id":"`+rid+`"}]}`)); err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, model.AlertSubject(rid, "high"), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := ic.WriteLines(ctx, []byte(lines.String())); err != nil {
		t.Fatal(err)
	}
	if _, err := pres.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	db, _, _ := strings.Cut(ic.Bucket(), "/")
	series := func(q string) string { return in.QueryDB(t, db, q) }
	if s := series(`SHOW SERIES WHERE resident_id = 'r1'`); !strings.Contains(s, "readings,") {
		t.Fatalf("r1's series were not written: %s", s)
	}

	res, err := e.Erase(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if res.ResidentID != "r1" || res.Devices != 2 || res.Alerts != 1 || res.Messages != 4 || // a reading, a batch, an alert message and the raise's transition
		!strings.Contains(res.Series, "resident_id=r1") || len(res.Skipped) != 0 || res.Assignments != 1 {
		t.Fatalf("result: %+v", res)
	}
	// Marked erased for good, told to the alert engine.
	if !reg.Erased("r1") || reg.Erased("r2") {
		t.Fatalf("tombstones: r1 %v, r2 %v", reg.Erased("r1"), reg.Erased("r2"))
	}
	if !slices.Equal(engine.erased, []string{"r1"}) {
		t.Fatalf("alert engine told to erase %v", engine.erased)
	}
	if u, err := us.Get(ctx, "care"); err != nil || !slices.Equal(u.ResidentIDs, []string{"r2"}) {
		t.Fatalf("caregiver's assignments after the erasure: %v %v", u.ResidentIDs, err)
	}
	if au := res.RetainedUntil[model.StreamAudit]; au.Sub(now) < 2*365*24*time.Hour-time.Minute {
		t.Fatalf("audit retained until %v", au)
	}
	if _, ok := res.RetainedUntil[model.StreamDeadLetter]; !ok || len(res.Retained) != 2 {
		t.Fatalf("retained: %v %v", res.Retained, res.RetainedUntil)
	}
	if _, ok := res.RetainedUntil[model.StreamReadings]; ok {
		t.Fatalf("purged buffers said retained: %v", res.RetainedUntil)
	}

	// InfluxDB: r1's series are gone, r2's are all there.
	if s := series(`SHOW SERIES WHERE resident_id = 'r1'`); strings.Contains(s, `"values"`) {
		t.Fatalf("r1's series left: %s", s)
	}
	if s := series(`SHOW SERIES FROM device_status WHERE device_id = 'd1'`); strings.Contains(s, `"values"`) {
		t.Fatalf("d1's status left: %s", s)
	}
	if s := series(`SELECT count(heart_rate) FROM readings WHERE resident_id = 'r1'`); strings.Contains(s, `"values"`) {
		t.Fatalf("r1's readings left: %s", s)
	}
	for _, m := range []string{"readings,", "events,", "alerts,"} {
		if s := series(`SHOW SERIES WHERE resident_id = 'r2'`); !strings.Contains(s, m) {
			t.Fatalf("r2's %s series lost: %s", m, s)
		}
	}
	if s := series(`SHOW SERIES FROM device_status WHERE device_id = 'd2'`); !strings.Contains(s, `"values"`) {
		t.Fatalf("d2's status lost: %s", s)
	}

	// The device was disconnected and can no longer log in.
	testenv.WaitFor(t, 5*time.Second, "d1 disconnected", func() bool { return !dev.IsConnectionOpen() })
	if _, err := connectDevice(t, b.Addr(), "d1", pw["d1"]); err == nil {
		t.Fatal("an erased device logged in")
	}
	if _, err := connectDevice(t, b.Addr(), "d2", pw["d2"]); err != nil {
		t.Fatalf("another resident's device: %v", err)
	}

	// Registry, presence, settings, chain, alerts, buffers.
	if _, ok := reg.Resident("r1"); ok {
		t.Fatal("r1 still registered")
	}
	if _, err := reg.CreateResident(ctx, devices.Resident{ID: "r1", Name: "Someone Else", HomeID: "h-r1"}); !errors.Is(err, devices.ErrConflict) {
		t.Fatalf("an erased id given to a new resident: %v", err)
	}
	for _, d := range []string{"d1", "d1b"} {
		if _, ok := reg.Device(d); ok {
			t.Fatalf("device %s still registered", d)
		}
		if _, ok := pres.Presence(d); ok {
			t.Fatalf("presence of %s left", d)
		}
	}
	if _, ok := pres.Presence("d2"); !ok {
		t.Fatal("d2's presence lost")
	}
	if st := ruleSettings.Settings("r1"); st.Mode != "" {
		t.Fatalf("r1's settings left: %+v", st)
	}
	if st := ruleSettings.Settings("r2"); st.Mode != rules.ModeHospital {
		t.Fatalf("r2's settings lost: %+v", st)
	}
	for bucket, key := range map[string]string{model.BucketSettings: "r1", model.BucketAssignments: "r1", model.BucketResidents: "r1", model.BucketDevices: "d1", model.BucketPresence: "d1"} {
		kv, err := js.KeyValue(ctx, bucket)
		if err != nil {
			t.Fatal(err)
		}
		if hist, err := kv.History(ctx, key); err == nil {
			for _, e := range hist {
				if len(e.Value()) > 0 {
					t.Fatalf("%s/%s: revision %d still holds %s", bucket, key, e.Revision(), e.Value())
				}
			}
		}
	}
	if ch, err := mgr.Chains().Chain(ctx, "r1"); err != nil || len(ch.Tiers) == 2 {
		t.Fatalf("r1's chain left: %+v %v", ch, err)
	}
	if n := len(mgr.List(alerts.Filter{ResidentID: "r1"})); n != 0 {
		t.Fatalf("%d alerts of r1 left", n)
	}
	restarted, err := alerts.NewManager(ctx, alerts.Options{JS: js, Clock: clock, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if n, m := len(restarted.List(alerts.Filter{ResidentID: "r1"})), len(restarted.List(alerts.Filter{ResidentID: "r2"})); n != 0 || m != 1 {
		t.Fatalf("after a restart: %d alerts of r1, %d of r2", n, m)
	}
	for stream, subjects := range map[string][2]string{
		model.StreamReadings: {model.ResidentFilters("r1")[model.StreamReadings], model.ResidentFilters("r2")[model.StreamReadings]},
		"batches":            {model.ReadingBatchSubject("r1"), model.ReadingBatchSubject("r2")},
		model.StreamAlerts:   {model.ResidentAlertsFilter("r1"), model.ResidentAlertsFilter("r2")},
	} {
		if stream == "batches" {
			stream = model.StreamReadings
		}
		st, err := js.Stream(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		for i, subj := range subjects {
			info, err := st.Info(ctx, jetstream.WithSubjectFilter(subj))
			if err != nil {
				t.Fatal(err)
			}
			n := uint64(0)
			for _, c := range info.State.Subjects {
				n += c
			}
			if (i == 0) != (n == 0) {
				t.Fatalf("%s %s: %d messages", stream, subj, n)
			}
		}
	}
}

// steps records, in order, what an erasure asked of each dependency.
type steps struct {
	log  []string
	fail string // the step that fails
}

func (s *steps) do(step string) error {
	s.log = append(s.log, step)
	if step == s.fail {
		return errors.New(step + " failed")
	}
	return nil
}

type fakeRegistry struct {
	*steps
	devs []devices.Device
}

func (r fakeRegistry) Devices(keep func(devices.Device) bool) []devices.Device {
	var out []devices.Device
	for _, d := range r.devs {
		if keep(d) {
			out = append(out, d)
		}
	}
	return out
}

func (r fakeRegistry) SetDeviceDisabled(_ context.Context, id string, _ bool) (devices.Device, error) {
	return devices.Device{}, r.do("disable " + id)
}

func (r fakeRegistry) EraseResident(_ context.Context, id string, _ func(string)) ([]string, error) {
	// d9 was registered while the erasure ran.
	return []string{"d1", "d9"}, r.do("registry " + id)
}

type fakeDeps struct{ *steps }

func (f fakeDeps) MarkErased(_ context.Context, id string) error { return f.do("tombstone " + id) }
func (f fakeDeps) Disconnect(id string) bool                     { _ = f.do("kick " + id); return true }
func (f fakeDeps) Forget(_ context.Context, id string) error     { return f.do("presence " + id) }
func (f fakeDeps) Fence(context.Context) error                   { return f.do("fence") }
func (f fakeDeps) RemoveResident(_ context.Context, id string) (int, error) {
	return 2, f.do("assignments " + id)
}

type fakeEngine struct{ *steps }

func (f fakeEngine) EraseResident(_ context.Context, id string) error { return f.do("engine " + id) }

type fakeSeries struct{ *steps }

func (f fakeSeries) EraseResident(_ context.Context, id string, devs []string) (string, error) {
	return "resident_id=" + id, f.do("series " + id + " " + strings.Join(devs, ","))
}

type fakeAlerts struct{ *steps }

func (f fakeAlerts) EraseResident(_ context.Context, id string) (int, error) {
	return 3, f.do("alerts " + id)
}

type fakeKey struct {
	*steps
	name string
}

func (f fakeKey) Erase(_ context.Context, id string) error { return f.do(f.name + " " + id) }

func fakeEraser(s *steps) *erasure.Eraser {
	d := fakeDeps{s}
	return &erasure.Eraser{
		Registry:  fakeRegistry{s, []devices.Device{{ID: "d1", ResidentID: "r1"}, {ID: "d0", ResidentID: "r1", Disabled: true}, {ID: "d2", ResidentID: "r2"}}},
		Tombstone: erasure.MarkThenFence(d, d), Engine: fakeEngine{s}, Series: fakeSeries{s}, Alerts: fakeAlerts{s},
		Settings: fakeKey{s, "settings"}, Chains: fakeKey{s, "chain"}, Presence: d, Broker: d, Assignments: d,
		Retention: defaultRetention,
	}
}

// TestEraseOrder: the tombstone (and the writers' fence) come first, the
// devices are disabled and kicked before anything is deleted, and the
// registry goes last, so an erasure that fails half-way leaves the
// resident there to erase again.
func TestEraseOrder(t *testing.T) {
	s := &steps{}
	res, err := fakeEraser(s).Erase(context.Background(), "r1")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"tombstone r1", "fence", "disable d1", "kick d1", "kick d0", "engine r1", "series r1 d1,d0", "alerts r1",
		"settings r1", "chain r1", "presence d1", "presence d0", "assignments r1", "registry r1", "presence d9"}
	if !slices.Equal(s.log, want) {
		t.Fatalf("steps:\n got %q\nwant %q", s.log, want)
	}
	// No stream source: the buffers are not purged and said to age out.
	if !slices.Equal(res.Skipped, []string{"buffered_messages"}) || res.Devices != 2 || res.Alerts != 3 || res.Assignments != 2 {
		t.Fatalf("result: %+v", res)
	}
	for _, st := range []string{model.StreamReadings, model.StreamEvents, model.StreamStatus, model.StreamAlerts, model.StreamEscalation, model.StreamAudit} {
		if _, ok := res.RetainedUntil[st]; !ok {
			t.Fatalf("retained_until lacks %s: %v", st, res.RetainedUntil)
		}
	}

	for _, fail := range []string{"tombstone r1", "fence", "engine r1", "series r1 d1,d0", "assignments r1"} {
		s := &steps{fail: fail}
		if _, err := fakeEraser(s).Erase(context.Background(), "r1"); err == nil {
			t.Fatalf("%s failed and the erasure did not say so", fail)
		}
		if slices.Contains(s.log, "registry r1") || s.log[len(s.log)-1] != fail {
			t.Fatalf("after %s failed: %q", fail, s.log)
		}
	}
}

// TestEraseSkips: only the registry, the series and the retention ages
// are required; each missing dependency is named in Skipped. Without the
// required ones nothing is erased.
func TestEraseSkips(t *testing.T) {
	s := &steps{}
	full := fakeEraser(s)
	e := &erasure.Eraser{Registry: full.Registry, Series: full.Series, Retention: defaultRetention}
	res, err := e.Erase(context.Background(), "r1")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"mqtt_disconnect", "tombstone", "alert_engine", "buffered_messages", "alerts", "settings", "escalation_chain", "presence", "assignments"}
	if !slices.Equal(res.Skipped, want) {
		t.Fatalf("skipped %q, want %q", res.Skipped, want)
	}
	s.log = nil
	for _, e := range []*erasure.Eraser{{Series: full.Series, Retention: defaultRetention}, {Registry: full.Registry, Retention: defaultRetention}, {Registry: full.Registry, Series: full.Series}} {
		if _, err := e.Erase(context.Background(), "r1"); !errors.Is(err, erasure.ErrNotConfigured) {
			t.Fatalf("without a required dependency: %v", err)
		}
	}
	if len(s.log) != 0 {
		t.Fatalf("an unconfigured erasure erased: %q", s.log)
	}
}
