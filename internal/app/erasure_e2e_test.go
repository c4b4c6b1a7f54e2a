package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/alerts/engine"
	"github.com/carehub/carehub/internal/app"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/testenv"
	"github.com/carehub/carehub/writer"
)

// addDevice registers a device of kind for an existing resident.
func addDevice(t *testing.T, base, residentID, kind string) deviceCreds {
	t.Helper()
	var d deviceCreds
	if code := apiCall(t, base, "POST", "/api/v1/devices", map[string]any{"id": testenv.ID("d"), "kind": kind, "resident_id": residentID}, &d); code != http.StatusCreated {
		t.Fatalf("create device: HTTP %d", code)
	}
	return d
}

// residentAlerts lists every alert the API shows of one resident, from the
// unfiltered list (a filter on an erased resident is a 404).
func residentAlerts(t *testing.T, base, residentID string) []alerts.Alert {
	t.Helper()
	var page struct {
		Alerts []alerts.Alert `json:"alerts"`
	}
	if code := apiCall(t, base, "GET", "/api/v1/alerts?limit=500", nil, &page); code != http.StatusOK {
		t.Fatalf("GET /alerts: HTTP %d", code)
	}
	var out []alerts.Alert
	for _, a := range page.Alerts {
		if a.ResidentID == residentID {
			out = append(out, a)
		}
	}
	return out
}

// consumersSettled waits until the alert engine and the InfluxDB writer
// have acked everything in the readings, events and status streams, and
// the writer everything in CARE_ALERTS.
func consumersSettled(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	for _, stream := range []string{model.StreamReadings, model.StreamEvents, model.StreamStatus, model.StreamAlerts} {
		names := []string{engine.ConsumerName, writer.DefaultDurable}
		if stream == model.StreamAlerts {
			names = names[1:]
		}
		for _, name := range names {
			testenv.WaitFor(t, 20*time.Second, name+" on "+stream+" settled", func() bool {
				_, done := testenv.ConsumerDone(t.Context(), js, stream, name)
				return done
			})
		}
	}
}

// streamMsgs counts a stream's messages on subject.
func streamMsgs(t *testing.T, js jetstream.JetStream, stream, subject string) uint64 {
	t.Helper()
	st, err := js.Stream(t.Context(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}

// TestErasureLeavesNothing erases a resident whose devices reported, who
// has an open alert and whose rule state is in the engine; then readings,
// an SOS and a Last Will published before the erasure but consumed after
// it reach JetStream; the clock moves past every threshold (inactivity
// 24 h+, device offline, cannot monitor, every escalation step) while a
// control resident's alerts show that the rules ran. Nothing of the erased
// resident appears: no alert in the API or on CARE_ALERTS / the 119
// subject, no point in InfluxDB, no entry in the evaluator's snapshot (read
// after a restart, which saves it), and their device cannot log in.
func TestErasureLeavesNothing(t *testing.T) {
	in := testenv.SharedInflux(t)
	db := in.CreateDB(t)
	clock := &testClock{}
	vars := env(t, in.URL, db, nil)
	a := startApp(t, vars, app.WithClock(clock.Now))
	base := "http://" + a.HTTPAddr()

	// The resident to erase: a motion sensor and a wearable.
	motion := register(t, base, "motion")
	rid := motion.ResidentID
	wear := addDevice(t, base, rid, "wearable")
	// A control resident with a motion sensor.
	control := register(t, base, "motion")

	mc := deviceClient(t, a.MQTTURL(), motion)
	wc := deviceClient(t, a.MQTTURL(), wear)
	cc := deviceClient(t, a.MQTTURL(), control)
	now := clock.Now()
	publish(t, mc, motion.MQTT.TopicPrefix+"telemetry", fmt.Appendf(nil, `{"ts":%d,"values":{"motion":1}}`, now.UnixMilli()))
	publish(t, mc, motion.MQTT.TopicPrefix+"status", []byte(`{"online":true,"battery_pct":80}`))
	publish(t, cc, control.MQTT.TopicPrefix+"telemetry", fmt.Appendf(nil, `{"ts":%d,"values":{"motion":1}}`, now.UnixMilli()))
	start := now.Add(-11 * time.Minute)
	for i := 0; i <= 20; i++ { // SpO2 88 % for 10 min: a critical alert
		publish(t, wc, wear.MQTT.TopicPrefix+"telemetry", fmt.Appendf(nil, `{"ts":%d,"values":{"spo2":88,"heart_rate":80}}`, start.Add(time.Duration(i)*30*time.Second).UnixMilli()))
	}
	testenv.WaitFor(t, 20*time.Second, "the erasable resident's SpO2 alert", func() bool {
		for _, al := range residentAlerts(t, base, rid) {
			if al.Rule == "spo2" && al.Status == alerts.StatusOpen {
				return true
			}
		}
		return false
	})
	testenv.WaitFor(t, 20*time.Second, "their points in InfluxDB", func() bool {
		return countPoints(t, in, db, "readings", "spo2", wear.ID) > 0 && countPoints(t, in, db, "readings", "motion", motion.ID) == 1
	})
	consumersSettled(t, a.JS)

	var erased struct {
		ResidentID string   `json:"resident_id"`
		Skipped    []string `json:"skipped"`
	}
	if code := apiCall(t, base, "DELETE", "/api/v1/residents/"+rid+"?reason=contract+ended", nil, &erased); code != http.StatusOK {
		t.Fatalf("erase: HTTP %d", code)
	}
	if erased.ResidentID != rid || len(erased.Skipped) != 0 {
		t.Fatalf("erasure answer: %+v", erased)
	}

	// Messages published before the erasure, consumed after it (as a
	// backlog or a redelivery would be): carehub's own connection.
	late := clock.Now()
	pub := func(subject string, v any) {
		t.Helper()
		b, _ := json.Marshal(v)
		if _, err := a.JS.Publish(t.Context(), subject, b); err != nil {
			t.Fatal(err)
		}
	}
	pub(model.ReadingSubject(rid, wear.ID), model.Reading{ResidentID: rid, HomeID: wear.HomeID, DeviceID: wear.ID, DeviceKind: "wearable",
		TS: late, Values: map[string]float64{"spo2": 80, "heart_rate": 150}})
	pub(model.ReadingSubject(rid, motion.ID), model.Reading{ResidentID: rid, HomeID: motion.HomeID, DeviceID: motion.ID, DeviceKind: "motion",
		TS: late, Values: map[string]float64{"motion": 1}})
	pub(model.EventSubject(rid, wear.ID), model.Event{ResidentID: rid, HomeID: wear.HomeID, DeviceID: wear.ID, DeviceKind: "wearable", TS: late, Type: "sos"})
	pub(model.StatusSubject(rid, motion.ID), model.Status{ResidentID: rid, HomeID: motion.HomeID, DeviceID: motion.ID, DeviceKind: "motion", TS: late, Online: false})
	consumersSettled(t, a.JS)

	// The erased device is refused at the broker.
	opts := mqtt.NewClientOptions().AddBroker(a.MQTTURL()).SetClientID(wear.ID).SetUsername(wear.ID).SetPassword(wear.MQTT.Password).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second)
	if tok := mqtt.NewClient(opts).Connect(); tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
		t.Fatal("the erased resident's device logged in")
	}

	// Past every threshold: the control resident's alerts show the rules
	// ran. Inactivity is critical beyond 36 h.
	clock.Advance(37 * time.Hour)
	defer func() {
		if t.Failed() {
			t.Logf("control alerts: %+v", residentAlerts(t, base, control.ResidentID))
		}
	}()
	testenv.WaitFor(t, 20*time.Second, "the control resident's critical inactivity and device offline", func() bool {
		var inact, off bool
		for _, al := range residentAlerts(t, base, control.ResidentID) {
			inact = inact || (al.Rule == "inactivity" && al.Severity == "critical")
			off = off || al.Rule == "device_offline"
		}
		return inact && off
	})
	clock.Advance(alerts.CriticalReach + alerts.HighSecond + time.Minute)
	testenv.WaitFor(t, 20*time.Second, "the control resident's inactivity escalated to the top", func() bool {
		for _, al := range residentAlerts(t, base, control.ResidentID) {
			if al.Rule == "inactivity" && al.EscalationLevel >= 5 {
				return true
			}
		}
		return false
	})

	check := func(js jetstream.JetStream) {
		t.Helper()
		if got := residentAlerts(t, base, rid); len(got) != 0 {
			t.Errorf("alerts of the erased resident: %+v", got)
		}
		if n := streamMsgs(t, js, model.StreamAlerts, model.ResidentAlertsFilter(rid)); n != 0 {
			t.Errorf("%d messages of the erased resident on CARE_ALERTS", n)
		}
		if n := streamMsgs(t, js, model.StreamEscalation, model.ResidentFilters(rid)[model.StreamEscalation]); n != 0 {
			t.Errorf("%d messages of the erased resident on CARE_ESCALATION", n)
		}
		for _, q := range []string{
			fmt.Sprintf(`SHOW SERIES WHERE resident_id = '%s'`, rid),
			fmt.Sprintf(`SHOW SERIES WHERE device_id = '%s' OR device_id = '%s'`, wear.ID, motion.ID),
		} {
			if s := in.QueryDB(t, db, q); strings.Contains(s, `"values"`) {
				t.Errorf("InfluxDB still holds the erased resident (%s): %s", q, s)
			}
		}
		if code := apiCall(t, base, "GET", "/api/v1/residents/"+rid+"/readings?metric=spo2", nil, nil); code != http.StatusNotFound {
			t.Errorf("readings of the erased resident: HTTP %d, want 404", code)
		}
	}
	check(a.JS)

	// A restart saves the evaluator's snapshot and restores it.
	a.Close()
	a = startApp(t, vars, app.WithClock(clock.Now))
	base = "http://" + a.HTTPAddr()
	kv, err := a.JS.KeyValue(t.Context(), model.BucketAlerts)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := kv.Get(context.Background(), "engine.evaluator")
	if err != nil {
		t.Fatalf("evaluator snapshot: %v", err)
	}
	if !strings.Contains(string(entry.Value()), control.ResidentID) {
		t.Fatalf("the snapshot lacks the control resident: %.300s", entry.Value())
	}
	if strings.Contains(string(entry.Value()), rid) {
		t.Errorf("the evaluator's snapshot still holds the erased resident: %.500s", entry.Value())
	}
	// A new control resident: their inactivity after another 37 h shows the
	// restarted engine's rules ran.
	control2 := register(t, base, "motion")
	c2 := deviceClient(t, a.MQTTURL(), control2)
	publish(t, c2, control2.MQTT.TopicPrefix+"telemetry", fmt.Appendf(nil, `{"ts":%d,"values":{"motion":1}}`, clock.Now().UnixMilli()))
	testenv.WaitFor(t, 20*time.Second, "the new control's motion stored", func() bool {
		return countPoints(t, in, db, "readings", "motion", control2.ID) == 1
	})
	consumersSettled(t, a.JS)
	clock.Advance(37*time.Hour + alerts.HighSecond)
	testenv.WaitFor(t, 20*time.Second, "the new control resident's inactivity", func() bool {
		for _, al := range residentAlerts(t, base, control2.ResidentID) {
			if al.Rule == "inactivity" && al.Severity == "critical" {
				return true
			}
		}
		return false
	})
	check(a.JS)
	if code := apiCall(t, base, "POST", "/api/v1/residents", map[string]any{"id": rid, "name": "Someone Else", "home_id": testenv.ID("h")}, nil); code != http.StatusConflict {
		t.Errorf("re-using the erased resident's id: HTTP %d, want 409", code)
	}
}
