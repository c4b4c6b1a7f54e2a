package app_test

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/internal/app"
	"github.com/carehub/carehub/internal/config"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/sim"
	"github.com/carehub/carehub/internal/testenv"
)

// TestDeviceFloodDoesNotDelaySOS (issue 9 item 7): one device floods
// carehub far over its quota with full arrays and arrays over the record
// cap, from two connections' worth of publishes in flight, while another
// home's SOS button is pressed. The SOS must raise its alert within 2 s,
// the flooder must be refused as rate_limited and too_many_records, and
// what it got through must stay within its quota.
//
// It runs on the embedded broker, where a device's message is handed to
// ingest before it is acknowledged, and on an external Mosquitto, where
// ingest subscribes and events have a subscriber connection of their own.
func TestDeviceFloodDoesNotDelaySOS(t *testing.T) {
	in := testenv.SharedInflux(t)
	t.Run("embedded broker", func(t *testing.T) {
		a := startApp(t, env(t, in.URL, in.CreateDB(t), nil))
		floodWhileSOS(t, a)
	})
	t.Run("external broker", func(t *testing.T) {
		mq := testenv.StartMosquitto(t, "max_inflight_messages 1000\nmax_queued_messages 100000\n")
		a := startApp(t, env(t, in.URL, in.CreateDB(t), map[string]string{"CARE_MQTT_URL": mq.URL}))
		floodWhileSOS(t, a)
	})
}

func floodWhileSOS(t *testing.T, a *app.App) {
	base := "http://" + a.HTTPAddr()

	flooder := register(t, base, "wearable")
	victim := register(t, base, "sos")
	alertsCh := make(chan alerts.Alert, 64)
	sub, err := a.NC.Subscribe(model.AlertSubject(victim.ResidentID, "*"), func(m *nats.Msg) {
		var al alerts.Alert
		if json.Unmarshal(m.Data, &al) == nil {
			alertsCh <- al
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := a.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	sosClient := deviceClient(t, a.MQTTURL(), victim)

	valuesBefore := metricValue(t, base, "carehub_ingest_values_total")
	limitedBefore := metricValue(t, base, `carehub_ingest_rejected_total{reason="rate_limited"}`)
	capBefore := metricValue(t, base, `carehub_ingest_rejected_total{reason="too_many_records"}`)

	// The flood: full arrays (1,000 records, ~45 KiB) and arrays over the
	// cap (1,300 records, ~62 KiB), QoS 1, up to 64 unacknowledged.
	fc := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(a.MQTTURL()).SetClientID(flooder.ID).SetUsername(flooder.ID).
		SetPassword(flooder.MQTT.Password).SetAutoReconnect(true).SetMaxResumePubInFlight(64))
	if tok := fc.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("flooder connect: %v", tok.Error())
	}
	defer fc.Disconnect(0)
	full, over := sim.HeartRateArray(1000, time.Now()), sim.HeartRateArray(1300, time.Now())
	ctx, stop := context.WithCancel(context.Background())
	var sent atomic.Int64
	var wg sync.WaitGroup
	floodStart := time.Now()
	wg.Add(1)
	go func() {
		defer wg.Done()
		var toks []mqtt.Token
		for i := 0; ctx.Err() == nil; i++ {
			payload := full
			if i%3 == 2 {
				payload = over
			}
			toks = append(toks, fc.Publish(flooder.MQTT.TopicPrefix+"telemetry", 1, false, payload))
			sent.Add(1)
			if len(toks) == 64 {
				for _, tok := range toks {
					tok.WaitTimeout(10 * time.Second)
				}
				toks = toks[:0]
			}
		}
	}()
	defer func() { stop(); wg.Wait() }()

	// Two seconds of flood, well past the burst, before the press.
	testenv.WaitFor(t, 20*time.Second, "the flooder to be rate-limited for 2 s", func() bool {
		return metricValue(t, base, `carehub_ingest_rejected_total{reason="rate_limited"}`) > limitedBefore+200 &&
			time.Since(floodStart) > 2*time.Second
	})

	// Press SOS in the middle of the flood.
	pressed := time.Now()
	publish(t, sosClient, victim.MQTT.TopicPrefix+"event", []byte(`{"type":"sos"}`))
	select {
	case al := <-alertsCh:
		if al.Rule != "sos" || al.Transition != "raised" {
			t.Fatalf("first alert of the SOS resident: %+v", al)
		}
		if d := time.Since(pressed); d > 2*time.Second {
			t.Errorf("SOS raised %v after the press, want within 2 s", d)
		} else {
			t.Logf("SOS raised %v after the press, %d flood messages sent", d, sent.Load())
		}
	case <-time.After(2 * time.Second):
		t.Fatalf("no SOS alert within 2 s of the press (%d flood messages sent)", sent.Load())
	}
	stop()
	wg.Wait()
	elapsed := time.Since(floodStart).Seconds()

	if got := metricValue(t, base, `carehub_ingest_rejected_total{reason="too_many_records"}`) - capBefore; got < 1 {
		t.Errorf("no array over the record cap refused (too_many_records rose by %v)", got)
	}
	// What the flooder got through: its burst, its rate for the time it
	// flooded, and one array in debt.
	accepted := metricValue(t, base, "carehub_ingest_values_total") - valuesBefore
	if limit := float64(config.DefaultDeviceBurst) + float64(config.DefaultDeviceRate)*elapsed + 1000; accepted > limit {
		t.Errorf("the flooder got %v values in over %.1fs, its quota allows at most %v", accepted, elapsed, limit)
	}
	t.Logf("flood: %d messages in %.1fs, %v values accepted", sent.Load(), elapsed, accepted)
}
