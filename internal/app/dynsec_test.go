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
		"CARE_MQTT_USERNAME": testenv.DynsecAdmin, "CARE_MQTT_PASSWORD": testenv.DynsecAdminPassword,
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
