package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/carehub/carehub/internal/testenv"
)

// TestSeveralBrokers (issue 15 item 2): with CARE_MQTT_URL naming two
// brokers, carehub drains both: a device on each publishes QoS 1 and every
// reading is stored exactly once. With one broker stopped, /readyz says
// which (mqtt/2) while the other broker's devices still flow.
func TestSeveralBrokers(t *testing.T) {
	in := testenv.SharedInflux(t)
	db := in.CreateDB(t)
	ma := testenv.StartMosquitto(t, "max_inflight_messages 1000\nmax_queued_messages 100000\n")
	mb := testenv.StartMosquitto(t, "max_inflight_messages 1000\nmax_queued_messages 100000\n")
	a := startApp(t, env(t, in.URL, db, map[string]string{"CARE_MQTT_URL": ma.URL + "," + mb.URL, "CARE_MQTT_CONNECTIONS": "2"}))
	base := "http://" + a.HTTPAddr()
	if code, checks := readyChecks(t, base); code != http.StatusOK || checks["mqtt/1"] != "ok" || checks["mqtt/2"] != "ok" {
		t.Fatalf("/readyz with both brokers up: HTTP %d %v", code, checks)
	}

	da, dbb := register(t, base, "wearable"), register(t, base, "wearable")
	ca, cb := deviceClient(t, ma.URL, da), deviceClient(t, mb.URL, dbb)
	start := time.Now().Add(-10 * time.Minute).Truncate(time.Millisecond)
	send := func(c mqtt.Client, d deviceCreds, from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			publish(t, c, d.MQTT.TopicPrefix+"telemetry", fmt.Appendf(nil, `{"ts":%d,"values":{"heart_rate":%d}}`, start.Add(time.Duration(i)*time.Second).UnixMilli(), 60+i%40))
		}
	}
	send(ca, da, 0, 20)
	send(cb, dbb, 0, 20)
	testenv.WaitFor(t, 30*time.Second, "20 readings of each broker's device in InfluxDB", func() bool {
		return countPoints(t, in, db, "readings", "heart_rate", da.ID) >= 20 && countPoints(t, in, db, "readings", "heart_rate", dbb.ID) >= 20
	})

	mb.Stop()
	testenv.WaitFor(t, 20*time.Second, "/readyz to name the stopped broker", func() bool {
		code, checks := readyChecks(t, base)
		return code == http.StatusServiceUnavailable && checks["mqtt"] == "failed" && checks["mqtt/2"] == "failed" && checks["mqtt/1"] == "ok"
	})
	send(ca, da, 20, 10)
	testenv.WaitFor(t, 30*time.Second, "broker A's device to flow with broker B down", func() bool {
		return countPoints(t, in, db, "readings", "heart_rate", da.ID) >= 30
	})
	// Exactly once: every reading has its own ts, so a duplicate would be
	// a point too many.
	if na, nb := countPoints(t, in, db, "readings", "heart_rate", da.ID), countPoints(t, in, db, "readings", "heart_rate", dbb.ID); na != 30 || nb != 20 {
		t.Fatalf("stored %d and %d readings, want 30 and 20", na, nb)
	}
}

// TestSeveralBrokersDynsec (issue 15 item 2): with
// CARE_MQTT_PROVISION=dynsec and two brokers, a device registered through
// the API logs in to both, a disable refuses it at both, and a rotated
// password replaces the old one at both.
func TestSeveralBrokersDynsec(t *testing.T) {
	in := testenv.SharedInflux(t)
	db := in.CreateDB(t)
	ma, mb := testenv.StartDynsecMosquitto(t), testenv.StartDynsecMosquitto(t)
	vars := env(t, in.URL, db, map[string]string{
		"CARE_MQTT_URL": ma.URL + "," + mb.URL, "CARE_MQTT_PROVISION": "dynsec",
		"CARE_MQTT_USERNAME": "carehub-ingest", "CARE_MQTT_PASSWORD": "ingest-password",
		"CARE_MQTT_DYNSEC_USERNAME": testenv.DynsecAdmin, "CARE_MQTT_DYNSEC_PASSWORD": testenv.DynsecAdminPassword,
	})
	a := startApp(t, vars)
	base := "http://" + a.HTTPAddr()
	brokers := []*testenv.Mosquitto{ma, mb}

	d := register(t, base, "wearable")
	for _, m := range brokers {
		if err := tryConnect(m.URL, d.ID, d.MQTT.Password); err != nil {
			t.Fatalf("the registered device on %s: %v", m.URL, err)
		}
	}
	// Its readings through broker B reach InfluxDB.
	c := deviceClient(t, mb.URL, d)
	now := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	for i := range 3 {
		publish(t, c, d.MQTT.TopicPrefix+"telemetry", fmt.Appendf(nil, `{"ts":%d,"values":{"heart_rate":%d}}`, now.Add(time.Duration(i)*time.Second).UnixMilli(), 60+i))
	}
	testenv.WaitFor(t, 20*time.Second, "3 readings through broker B in InfluxDB", func() bool {
		return countPoints(t, in, db, "readings", "heart_rate", d.ID) == 3
	})
	c.Disconnect(50)

	if code := apiCall(t, base, "POST", "/api/v1/devices/"+d.ID+"/disable", nil, nil); code != http.StatusOK {
		t.Fatalf("disable: HTTP %d", code)
	}
	for _, m := range brokers {
		if err := tryConnect(m.URL, d.ID, d.MQTT.Password); err == nil {
			t.Fatalf("the disabled device logged in to %s", m.URL)
		}
	}
	if code := apiCall(t, base, "POST", "/api/v1/devices/"+d.ID+"/enable", nil, nil); code != http.StatusOK {
		t.Fatalf("enable: HTTP %d", code)
	}
	var rotated deviceCreds
	if code := apiCall(t, base, "POST", "/api/v1/devices/"+d.ID+"/rotate-credentials", nil, &rotated); code != http.StatusOK || rotated.MQTT.Password == "" {
		t.Fatalf("rotate: HTTP %d", code)
	}
	for _, m := range brokers {
		if err := tryConnect(m.URL, d.ID, d.MQTT.Password); err == nil {
			t.Fatalf("the old password still logs in to %s after a rotation", m.URL)
		}
		if err := tryConnect(m.URL, d.ID, rotated.MQTT.Password); err != nil {
			t.Fatalf("the rotated password on %s: %v", m.URL, err)
		}
	}
	// carehub's own client ids on the second broker are reserved too.
	res := testenv.ID("r")
	if code := apiCall(t, base, "POST", "/api/v1/residents", map[string]any{"id": res, "name": "Test Resident", "home_id": testenv.ID("h")}, nil); code != http.StatusCreated {
		t.Fatalf("create resident: HTTP %d", code)
	}
	for _, id := range []string{vars["CARE_INSTANCE_ID"] + "-ingest-64", vars["CARE_INSTANCE_ID"] + "-ingest-events-1", vars["CARE_INSTANCE_ID"] + "-dynsec-1"} {
		var body struct {
			Error struct{ Code string } `json:"error"`
		}
		if code := apiCall(t, base, "POST", "/api/v1/devices", map[string]any{"id": id, "kind": "wearable", "resident_id": res}, &body); code != http.StatusConflict || body.Error.Code != "device_id_reserved" {
			t.Errorf("POST /devices id=%s: HTTP %d %q, want 409 device_id_reserved", id, code, body.Error.Code)
		}
	}
}

// readyChecks asks /readyz: its status and each check's outcome.
func readyChecks(t *testing.T, base string) (int, map[string]string) {
	t.Helper()
	resp, err := testClient().Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Checks map[string]string `json:"checks"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("/readyz: %v", err)
	}
	return resp.StatusCode, body.Checks
}

// TestSeveralBrokersDynsecCatchUp: a device disabled while one broker is
// down is refused by the other at once (the API answers 503: the change
// did not reach every broker) and by the stopped broker as soon as it is
// back, without anyone repeating the call.
func TestSeveralBrokersDynsecCatchUp(t *testing.T) {
	in := testenv.SharedInflux(t)
	db := in.CreateDB(t)
	ma, mb := testenv.StartDynsecMosquitto(t), testenv.StartDynsecMosquitto(t)
	a := startApp(t, env(t, in.URL, db, map[string]string{
		"CARE_MQTT_URL": ma.URL + "," + mb.URL, "CARE_MQTT_PROVISION": "dynsec",
		"CARE_MQTT_USERNAME": "carehub-ingest", "CARE_MQTT_PASSWORD": "ingest-password",
		"CARE_MQTT_DYNSEC_USERNAME": testenv.DynsecAdmin, "CARE_MQTT_DYNSEC_PASSWORD": testenv.DynsecAdminPassword,
	}))
	base := "http://" + a.HTTPAddr()
	d := register(t, base, "wearable")
	if err := tryConnect(mb.URL, d.ID, d.MQTT.Password); err != nil {
		t.Fatalf("the registered device on broker B: %v", err)
	}

	mb.Stop()
	if code := apiCall(t, base, "POST", "/api/v1/devices/"+d.ID+"/disable", nil, nil); code != http.StatusServiceUnavailable {
		t.Fatalf("disable with broker B down: HTTP %d, want 503", code)
	}
	if err := tryConnect(ma.URL, d.ID, d.MQTT.Password); err == nil {
		t.Fatal("the disabled device logged in to broker A")
	}
	mb.Restart()
	testenv.WaitFor(t, 40*time.Second, "broker B to refuse the device disabled while it was down", func() bool {
		return tryConnect(mb.URL, d.ID, d.MQTT.Password) != nil
	})
}
