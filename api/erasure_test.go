package api_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/api"
	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/internal/influx"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/mqttbroker"
	"github.com/carehub/carehub/internal/testenv"
)

// lateKicker lets the broker, which needs the harness's registry, be
// started after the API that kicks through it.
type lateKicker struct{ b *mqttbroker.Broker }

func (k *lateKicker) Disconnect(id string) bool { return k.b.Disconnect(id) }

// engineSpy records which residents the alert engine was told to forget
// (alerts.Engine is covered by its own tests and internal/app's).
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

// TestEraseResident erases a resident against real NATS, a real InfluxDB
// 1.8 and the embedded MQTT broker, and checks each place: their readings,
// events, alerts and device status series are gone from InfluxDB while
// another resident's stay; their device is disconnected and can no longer
// log in; registry, presence, settings, escalation chain, alerts (also
// after a restart of the alert manager) and buffered messages are gone;
// the erasure is audited with its reason and the audit trail is kept.
// Without a reason it is 422, and only an admin may erase (403).
func TestEraseResident(t *testing.T) {
	in := testenv.SharedInflux(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ic, err := influx.Open(ctx, influx.Options{URL: in.URL, Bucket: testenv.ID("care"), Version: "auto", Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ic.Close)
	kicker := &lateKicker{}
	var pres *devices.PresenceTracker
	engine := &engineSpy{}
	h := newHarness(t, func(o *api.Options) {
		pres = o.Presence.(*devices.PresenceTracker)
		o.Erasure = api.Erasure{Tombstone: o.Registry.(api.ErasureMarker), Engine: engine, Series: ic, Alerts: o.Alerts.(api.AlertEraser), Settings: o.Settings.(api.ResidentKeyEraser),
			Chains: o.Chains.(api.ResidentKeyEraser), Presence: pres, Broker: kicker, Streams: o.AlertStream}
	})
	b, err := mqttbroker.Start(mqttbroker.Options{Listen: "127.0.0.1:0", Authenticator: h.reg, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	kicker.b = b

	start := h.clk.now().Add(-time.Minute)
	h.resident("r1")
	h.resident("r2")
	pw := map[string]string{}
	for _, d := range [][2]string{{"d1", "r1"}, {"d1b", "r1"}, {"d2", "r2"}} {
		var out struct{ MQTT struct{ Password string } }
		h.expect(http.StatusCreated, "POST", "/api/v1/devices", adminToken, map[string]any{"id": d[0], "kind": "wearable", "resident_id": d[1]}, &out)
		pw[d[0]] = out.MQTT.Password
	}
	dev, err := connectDevice(t, b.Addr(), "d1", pw["d1"])
	if err != nil {
		t.Fatal(err)
	}

	// Data of both residents everywhere.
	ms := h.clk.now().Add(-time.Hour).UnixMilli()
	var lines strings.Builder
	for _, x := range [][2]string{{"r1", "d1"}, {"r2", "d2"}} {
		rid, did := x[0], x[1]
		fmt.Fprintf(&lines, "readings,resident_id=%s,home_id=h-%s,device_id=%s,device_kind=wearable heart_rate=72 %d\n", rid, rid, did, ms)
		fmt.Fprintf(&lines, "events,resident_id=%s,home_id=h-%s,device_id=%s,type=fall value=1 %d\n", rid, rid, did, ms)
		fmt.Fprintf(&lines, "alerts,resident_id=%s,rule=heart_rate,severity=high,transition=raised value=135,seconds_since_raised=0 %d\n", rid, ms)
		fmt.Fprintf(&lines, "device_status,home_id=h-%s,device_id=%s online=true,battery_pct=80 %d\n", rid, did, ms)
		h.raise(rid, "heart_rate", "high")
		h.expect(http.StatusOK, "PUT", "/api/v1/residents/"+rid+"/status", adminToken, map[string]any{"mode": "hospital", "reason": "admitted for a fall"}, nil)
		h.expect(http.StatusOK, "PUT", "/api/v1/residents/"+rid+"/escalation", adminToken, map[string]any{"tiers": []map[string]any{{"role": "caregiver"}, {"role": "coordinator"}}}, nil)
		pres.Seen(did, h.clk.now())
		if _, err := h.js.Publish(ctx, model.ReadingSubject(rid, did), []byte(`{"resident_id":"`+rid+`"}`)); err != nil {
			t.Fatal(err)
		}
		// A batch of readings (contract §3) lives under the resident's partition.
		if _, err := h.js.Publish(ctx, model.ReadingBatchSubject(rid), []byte(`{"readings":[{"resident_id":"`+rid+`"}]}`)); err != nil {
			t.Fatal(err)
		}
		if _, err := h.js.Publish(ctx, model.AlertSubject(rid, "high"), []byte(`{}`)); err != nil {
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

	coord := h.user("coord", "coordinator")
	care := h.user("care", "caregiver", "r1")
	h.expect(http.StatusForbidden, "DELETE", "/api/v1/residents/r1?reason=x", coord, nil, nil)
	h.expect(http.StatusForbidden, "DELETE", "/api/v1/residents/r1?reason=x", care, nil, nil)
	if b := h.expect(422, "DELETE", "/api/v1/residents/r1", adminToken, nil, nil); errCode(b) != "reason_required" {
		t.Fatalf("without reason: %s", b)
	}
	h.expect(422, "DELETE", "/api/v1/residents/r1", adminToken, map[string]any{"reason": "   "}, nil)
	h.expect(http.StatusNotFound, "DELETE", "/api/v1/residents/nobody?reason=x", adminToken, nil, nil)
	if _, ok := h.reg.Resident("r1"); !ok {
		t.Fatal("a refused erasure erased")
	}

	var res struct {
		ResidentID string `json:"resident_id"`
		Erased     struct {
			Devices  int    `json:"devices"`
			Alerts   int    `json:"alerts"`
			Series   string `json:"series"`
			Messages int    `json:"buffered_messages"`
			Assigned int    `json:"caregiver_assignments"`
		} `json:"erased"`
		Skipped       []string             `json:"skipped"`
		RetainedUntil map[string]time.Time `json:"retained_until"`
	}
	h.expect(http.StatusOK, "DELETE", "/api/v1/residents/r1", adminToken, map[string]any{"reason": "moved to a nursing home; contract ended"}, &res)
	if res.ResidentID != "r1" || res.Erased.Devices != 2 || res.Erased.Alerts != 1 || res.Erased.Messages != 4 || // a reading, a batch, an alert message and the raise's transition
		!strings.Contains(res.Erased.Series, "resident_id=r1") || len(res.Skipped) != 0 || res.Erased.Assigned != 1 {
		t.Fatalf("answer: %+v", res)
	}
	// Marked erased for good, told to the alert engine; the id is not
	// given to a new resident.
	if !h.reg.Erased("r1") || h.reg.Erased("r2") {
		t.Fatalf("tombstones: r1 %v, r2 %v", h.reg.Erased("r1"), h.reg.Erased("r2"))
	}
	if !slices.Equal(engine.erased, []string{"r1"}) {
		t.Fatalf("alert engine told to erase %v", engine.erased)
	}
	h.expect(http.StatusConflict, "POST", "/api/v1/residents", adminToken, map[string]any{"id": "r1", "name": "Someone Else", "home_id": "h-r1"}, nil)
	// The caregiver's assignment list no longer names the erased resident.
	var me struct {
		ResidentIDs []string `json:"resident_ids"`
	}
	h.expect(http.StatusOK, "GET", "/api/v1/auth/me", care, nil, &me)
	if slices.Contains(me.ResidentIDs, "r1") {
		t.Fatalf("caregiver still assigned to the erased resident: %v", me.ResidentIDs)
	}
	if au := res.RetainedUntil[model.StreamAudit]; au.Sub(h.clk.now()) < 2*365*24*time.Hour-time.Minute {
		t.Fatalf("audit retained until %v", au)
	}
	if _, ok := res.RetainedUntil[model.StreamDeadLetter]; !ok {
		t.Fatalf("retained_until: %v", res.RetainedUntil)
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
	h.expect(http.StatusNotFound, "GET", "/api/v1/residents/r1", adminToken, nil, nil)
	for _, d := range []string{"d1", "d1b"} {
		if _, ok := h.reg.Device(d); ok {
			t.Fatalf("device %s still registered", d)
		}
		if _, ok := pres.Presence(d); ok {
			t.Fatalf("presence of %s left", d)
		}
	}
	if _, ok := pres.Presence("d2"); !ok {
		t.Fatal("d2's presence lost")
	}
	if st := h.settings.Settings("r1"); st.Mode != "" {
		t.Fatalf("r1's settings left: %+v", st)
	}
	if st := h.settings.Settings("r2"); st.Mode != rules.ModeHospital {
		t.Fatalf("r2's settings lost: %+v", st)
	}
	for bucket, key := range map[string]string{model.BucketSettings: "r1", model.BucketAssignments: "r1", model.BucketResidents: "r1", model.BucketDevices: "d1", model.BucketPresence: "d1"} {
		kv, err := h.js.KeyValue(ctx, bucket)
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
	if ch, err := h.mgr.Chains().Chain(ctx, "r1"); err != nil || len(ch.Tiers) == 2 {
		t.Fatalf("r1's chain left: %+v %v", ch, err)
	}
	if n := len(h.mgr.List(alerts.Filter{ResidentID: "r1"})); n != 0 {
		t.Fatalf("%d alerts of r1 left", n)
	}
	restarted, err := alerts.NewManager(ctx, alerts.Options{JS: h.js, Clock: h.clk.now, Log: zerolog.Nop()})
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
		st, err := h.js.Stream(ctx, stream)
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

	// Audited with the reason; the trail survives the erasure.
	acts := h.auditReasons("r1", start)
	if rs := acts["resident.erase"]; len(rs) != 1 || rs[0] != "moved to a nursing home; contract ended" {
		t.Fatalf("erasure audit: %v", acts)
	}
	if len(acts["device.register"]) != 2 {
		t.Fatalf("the audit trail before the erasure is gone: %v", acts)
	}
}

// TestEraseResidentNotConfigured: without an InfluxDB eraser the endpoint
// refuses (503) rather than erase half and nothing is touched.
func TestEraseResidentNotConfigured(t *testing.T) {
	h := newHarness(t, nil)
	h.resident("r1")
	if b := h.expect(http.StatusServiceUnavailable, "DELETE", "/api/v1/residents/r1?reason=end", adminToken, nil, nil); errCode(b) != "unavailable" {
		t.Fatalf("answer: %s", b)
	}
	if _, ok := h.reg.Resident("r1"); !ok {
		t.Fatal("resident erased without an eraser")
	}
}
