package app_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/carehub/carehub/internal/testenv"
)

// TestExternalMosquittoDynsec: with CARE_MQTT_PROVISION=dynsec, a device
// registered through the API logs in to an external Mosquitto with the
// password it was issued, its readings reach InfluxDB through the broker,
// disabling it through the API closes its connection and refuses its
// login, and rotating its credentials retires the old password.
func TestExternalMosquittoDynsec(t *testing.T) {
	in := testenv.SharedInflux(t)
	db := in.CreateDB(t)
	mq := testenv.StartDynsecMosquitto(t)
	a := startApp(t, env(t, in.URL, db, map[string]string{
		"CARE_MQTT_URL": mq.URL, "CARE_MQTT_PROVISION": "dynsec",
		"CARE_MQTT_USERNAME": "carehub-ingest", "CARE_MQTT_PASSWORD": "ingest-password",
		"CARE_MQTT_DYNSEC_USERNAME": testenv.DynsecAdmin, "CARE_MQTT_DYNSEC_PASSWORD": testenv.DynsecAdminPassword,
	}))
	base := "http://" + a.HTTPAddr()

	d := register(t, base, "wearable")
	c := deviceClient(t, mq.URL, d)
	now := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	for i := range 5 {
		publish(t, c, d.MQTT.TopicPrefix+"telemetry", fmt.Appendf(nil, `{"ts":%d,"values":{"heart_rate":%d}}`, now.Add(time.Duration(i)*time.Second).UnixMilli(), 60+i))
	}
	testenv.WaitFor(t, 20*time.Second, "5 readings through Mosquitto in InfluxDB", func() bool {
		return countPoints(t, in, db, "readings", "heart_rate", d.ID) == 5
	})

	if code := apiCall(t, base, "POST", "/api/v1/devices/"+d.ID+"/disable", nil, nil); code != http.StatusOK {
		t.Fatalf("disable: HTTP %d", code)
	}
	testenv.WaitFor(t, 10*time.Second, "the broker to close the disabled device's connection", func() bool { return !c.IsConnectionOpen() })
	if err := tryConnect(mq.URL, d.ID, d.MQTT.Password); err == nil {
		t.Fatal("a disabled device logged in to Mosquitto")
	}
	if code := apiCall(t, base, "POST", "/api/v1/devices/"+d.ID+"/enable", nil, nil); code != http.StatusOK {
		t.Fatalf("enable: HTTP %d", code)
	}
	var rotated deviceCreds
	if code := apiCall(t, base, "POST", "/api/v1/devices/"+d.ID+"/rotate-credentials", nil, &rotated); code != http.StatusOK || rotated.MQTT.Password == "" {
		t.Fatalf("rotate: HTTP %d, %+v", code, rotated)
	}
	if err := tryConnect(mq.URL, d.ID, d.MQTT.Password); err == nil {
		t.Fatal("the old password still logs in after a rotation")
	}
	if err := tryConnect(mq.URL, d.ID, rotated.MQTT.Password); err != nil {
		t.Fatalf("the rotated password: %v", err)
	}
}

// tryConnect logs in once as a device and disconnects.
func tryConnect(brokerURL, id, password string) error {
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(brokerURL).SetClientID(id).SetUsername(id).SetPassword(password).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second))
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return fmt.Errorf("connect %s: timed out", id)
	}
	if err := tok.Error(); err != nil {
		return err
	}
	c.Disconnect(50)
	return nil
}

// TestDynsecRefusesTakeover: registering a device whose id is an existing
// broker account carehub did not create (an operator's user) is a 409
// broker_account_exists and the account keeps its password; an id equal to
// carehub's own logins or client ids (the ingest user, the dynsec control
// user, {instance}-ingest-{n}) is a 409 device_id_reserved. Before, the
// registration reset the account's password and returned it.
func TestDynsecRefusesTakeover(t *testing.T) {
	in := testenv.SharedInflux(t)
	db := in.CreateDB(t)
	mq := testenv.StartDynsecMosquitto(t)
	vars := env(t, in.URL, db, map[string]string{
		"CARE_MQTT_URL": mq.URL, "CARE_MQTT_PROVISION": "dynsec",
		"CARE_MQTT_USERNAME": "carehub-ingest", "CARE_MQTT_PASSWORD": "ingest-password",
		"CARE_MQTT_DYNSEC_USERNAME": testenv.DynsecAdmin, "CARE_MQTT_DYNSEC_PASSWORD": testenv.DynsecAdminPassword,
	})
	a := startApp(t, vars)
	base := "http://" + a.HTTPAddr()

	// An operator's account, made with the plugin's own control topic.
	ctl := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(mq.URL).SetClientID(testenv.ID("ctl")).
		SetUsername(testenv.DynsecAdmin).SetPassword(testenv.DynsecAdminPassword).SetConnectTimeout(5 * time.Second))
	if tok := ctl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("control login: %v", tok.Error())
	}
	defer ctl.Disconnect(50)
	ctl.Publish("$CONTROL/dynamic-security/v1", 1, false, `{"commands":[{"command":"createClient","username":"operator","password":"operator-password"}]}`).WaitTimeout(10 * time.Second)
	testenv.WaitFor(t, 10*time.Second, "the operator's account", func() bool { return tryConnect(mq.URL, "operator", "operator-password") == nil })

	res := testenv.ID("r")
	if code := apiCall(t, base, "POST", "/api/v1/residents", map[string]any{"id": res, "name": "Test Resident", "home_id": testenv.ID("h")}, nil); code != http.StatusCreated {
		t.Fatalf("create resident: HTTP %d", code)
	}
	for id, want := range map[string]string{
		"operator":                             "broker_account_exists",
		"carehub-ingest":                       "device_id_reserved",
		testenv.DynsecAdmin:                    "device_id_reserved",
		vars["CARE_INSTANCE_ID"] + "-ingest-0": "device_id_reserved",
		vars["CARE_INSTANCE_ID"] + "-dynsec":   "device_id_reserved",
	} {
		var body struct {
			Error struct{ Code string } `json:"error"`
			MQTT  struct{ Password string }
		}
		code := apiCall(t, base, "POST", "/api/v1/devices", map[string]any{"id": id, "kind": "wearable", "resident_id": res}, &body)
		if code != http.StatusConflict || body.Error.Code != want || body.MQTT.Password != "" {
			t.Errorf("POST /devices id=%s: HTTP %d %q (password given: %v), want 409 %s", id, code, body.Error.Code, body.MQTT.Password != "", want)
		}
	}
	var list struct {
		Devices []struct{ ID string } `json:"devices"`
	}
	if code := apiCall(t, base, "GET", "/api/v1/devices", nil, &list); code != http.StatusOK || len(list.Devices) != 0 {
		t.Errorf("GET /devices after the refusals: HTTP %d, %v, want none registered", code, list.Devices)
	}
	for user, pw := range map[string]string{"operator": "operator-password", testenv.DynsecAdmin: testenv.DynsecAdminPassword, "carehub-ingest": "ingest-password"} {
		if err := tryConnect(mq.URL, user, pw); err != nil {
			t.Errorf("%s no longer logs in with its own password: %v", user, err)
		}
	}
	// A device of a free id is still registered and logs in.
	d := register(t, base, "wearable")
	if err := tryConnect(mq.URL, d.ID, d.MQTT.Password); err != nil {
		t.Fatalf("a new device: %v", err)
	}
}
