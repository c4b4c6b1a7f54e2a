package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"

	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/sim"
	"github.com/carehub/carehub/internal/testenv"
)

// TestBadInput sends every kind of bad input the contract names through the
// running pipeline (embedded broker, ingest, JetStream, InfluxDB) and checks,
// for each, what was stored, the rejection counter by reason and the report
// on care.ingest.rejected.{device_id}.
func TestBadInput(t *testing.T) {
	in := testenv.SharedInflux(t)
	db := in.CreateDB(t)
	a := startApp(t, env(t, in.URL, db, nil))
	base := "http://" + a.HTTPAddr()
	ms := func(d time.Duration) int64 { return time.Now().Add(d).UnixMilli() }

	type row struct {
		name    string
		topic   string // telemetry, event or status
		payload []byte
		reasons []string // rejection reasons, in any order
		stored  int      // heart_rate points (or events) stored from this message
	}
	rows := []row{
		{"malformed JSON", "telemetry", []byte(`{"values":{"heart_rate":7`), []string{"malformed_payload"}, 0},
		{"empty payload", "telemetry", []byte{}, []string{"empty_payload"}, 0},
		// Over CARE_MAX_PAYLOAD but within the broker's packet limit (the
		// payload limit + 4 KiB): acknowledged, dropped and reported. A
		// larger packet closes the connection (internal/mqttbroker).
		{"66 KiB payload", "telemetry", bytes.Repeat([]byte(" "), 66<<10), []string{"payload_too_large"}, 0},
		{"unknown metric", "telemetry", []byte(`{"values":{"mood":3}}`), []string{"unknown_metric"}, 0},
		{"out-of-range value", "telemetry", []byte(`{"values":{"heart_rate":300}}`), []string{"out_of_range"}, 0},
		{"NaN as a string", "telemetry", []byte(`{"values":{"heart_rate":"NaN"}}`), []string{"not_finite"}, 0},
		{"Inf as a string", "telemetry", []byte(`{"values":{"heart_rate":"-Inf"}}`), []string{"not_finite"}, 0},
		{"timestamp 10 minutes in the future", "telemetry", fmt.Appendf(nil, `{"ts":%d,"values":{"heart_rate":70}}`, ms(10*time.Minute)), []string{"timestamp_in_future"}, 0},
		{"timestamp older than retention", "telemetry", fmt.Appendf(nil, `{"ts":%d,"values":{"heart_rate":70}}`, ms(-91*24*time.Hour)), []string{"timestamp_too_old"}, 0},
		{"SenML with a wrong unit", "telemetry", []byte(`[{"n":"heart_rate","u":"Hz","v":1.2}]`), []string{"unit_mismatch"}, 0},
		{"SenML relative time", "telemetry", []byte(`[{"bt":-5,"n":"heart_rate","u":"/min","v":71}]`), nil, 1},
		{"wrong event type", "event", []byte(`{"type":"explode"}`), []string{"unknown_event_type"}, 0},
		{"half-valid message", "telemetry", []byte(`{"values":{"heart_rate":72,"spo2":300,"mood":1}}`), []string{"out_of_range", "unknown_metric"}, 1},
		{"array over the record cap", "telemetry", sim.HeartRateArray(1001, time.Now()), []string{"too_many_records"}, 0},
		{"SenML pack over the record cap", "telemetry", senmlPack(1001), []string{"too_many_records"}, 0},
		{"array at the record cap", "telemetry", sim.HeartRateArray(1000, time.Now()), nil, 1000},
		{"smoke from a wearable", "event", []byte(`{"type":"smoke"}`), []string{"event_not_for_kind"}, 0},
		{"door_open from a wearable", "event", []byte(`{"type":"door_open"}`), []string{"event_not_for_kind"}, 0},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			d := register(t, base, "wearable")
			reports := subscribeRejections(t, a.NC, d.ID)
			before := rejectionCounters(t, base)
			c := deviceClient(t, a.MQTTURL(), d)
			publish(t, c, d.MQTT.TopicPrefix+r.topic, r.payload)
			got := waitReports(t, reports, len(r.reasons))
			assertSameReasons(t, got, r.reasons)
			for _, rep := range got {
				if rep.DeviceID != d.ID || rep.Detail == "" || rep.Topic != d.MQTT.TopicPrefix+r.topic {
					t.Errorf("rejection report incomplete: %+v", rep)
				}
			}
			assertCounterDeltas(t, base, before, r.reasons)
			assertStored(t, in, db, c, d, r.topic, r.stored)
		})
	}

	// A device over its quota (CARE_DEVICE_BURST 2,000 records, 20 a
	// second): three full arrays back to back take the bucket into debt,
	// and what follows within a second is refused as rate_limited. How
	// many are refused depends on the time between messages, so the
	// reports, not a fixed number, are compared with the counter.
	t.Run("rate limited", func(t *testing.T) {
		d := register(t, base, "wearable")
		reports := subscribeRejections(t, a.NC, d.ID)
		before := rejectionCounters(t, base)
		c := deviceClient(t, a.MQTTURL(), d)
		for range 4 {
			publish(t, c, d.MQTT.TopicPrefix+"telemetry", sim.HeartRateArray(1000, time.Now()))
		}
		got := waitReports(t, reports, 1)
		// Let the remaining reports of these four arrive: at most two of
		// them can have been refused.
		testenv.WaitFor(t, 5*time.Second, "the counter to match", func() bool {
			return metricValue(t, base, `carehub_ingest_rejected_total{reason="rate_limited"}`)-before["rate_limited"] >= float64(len(got))
		})
		for len(reports) > 0 {
			got = append(got, <-reports)
		}
		want := make([]string, len(got))
		for i := range want {
			want[i] = "rate_limited"
		}
		if len(got) < 1 || len(got) > 2 {
			t.Errorf("%d of 4 full arrays refused, want 1 or 2", len(got))
		}
		assertSameReasons(t, got, want)
		assertCounterDeltas(t, base, before, want)
	})

	t.Run("unknown device", func(t *testing.T) {
		id := testenv.ID("ghost")
		reports := subscribeRejections(t, a.NC, id)
		before := rejectionCounters(t, base)
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(a.MQTTURL()).SetClientID(id).SetUsername(id).SetPassword("guess").
			SetProtocolVersion(4)) // one attempt: paho's default falls back to 3.1 and would try twice
		if tok := c.Connect(); tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
			c.Disconnect(0)
			t.Fatal("an unregistered device was let in")
		}
		assertSameReasons(t, waitReports(t, reports, 1), []string{"unknown_device"})
		assertCounterDeltas(t, base, before, []string{"unknown_device"})
	})

	t.Run("disabled device", func(t *testing.T) {
		d := register(t, base, "motion")
		if _, err := a.Registry.SetDeviceDisabled(t.Context(), d.ID, true); err != nil {
			t.Fatal(err)
		}
		reports := subscribeRejections(t, a.NC, d.ID)
		before := rejectionCounters(t, base)
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(a.MQTTURL()).SetClientID(d.ID).SetUsername(d.ID).SetPassword(d.MQTT.Password).
			SetProtocolVersion(4))
		if tok := c.Connect(); tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
			c.Disconnect(0)
			t.Fatal("a disabled device was let in")
		}
		assertSameReasons(t, waitReports(t, reports, 1), []string{"device_disabled"})
		assertCounterDeltas(t, base, before, []string{"device_disabled"})
	})

	t.Run("publishing on another device's topic", func(t *testing.T) {
		victim := register(t, base, "wearable")
		d := register(t, base, "wearable")
		reports := subscribeRejections(t, a.NC, d.ID)
		before := rejectionCounters(t, base)
		// No automatic reconnect: paho would resend the refused publish and
		// each attempt is counted.
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(a.MQTTURL()).SetClientID(d.ID).SetUsername(d.ID).
			SetPassword(d.MQTT.Password).SetAutoReconnect(false))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("connect: %v", tok.Error())
		}
		defer c.Disconnect(0)
		// MQTT 3.1.1 has no negative PUBACK: the broker drops the publish
		// and closes the connection.
		c.Publish(victim.MQTT.TopicPrefix+"telemetry", 1, false, []byte(`{"values":{"heart_rate":180}}`)).WaitTimeout(5 * time.Second)
		assertSameReasons(t, waitReports(t, reports, 1), []string{"topic_not_allowed"})
		assertCounterDeltas(t, base, before, []string{"topic_not_allowed"})
		vc := deviceClient(t, a.MQTTURL(), victim)
		assertStored(t, in, db, vc, victim, "telemetry", 0)
	})
}

func subscribeRejections(t *testing.T, nc *nats.Conn, deviceID string) chan model.Rejection {
	t.Helper()
	ch := make(chan model.Rejection, 16)
	sub, err := nc.Subscribe(model.RejectedSubject(deviceID), func(m *nats.Msg) {
		var r model.Rejection
		if err := json.Unmarshal(m.Data, &r); err == nil {
			ch <- r
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return ch
}

func waitReports(t *testing.T, ch chan model.Rejection, n int) []model.Rejection {
	t.Helper()
	var got []model.Rejection
	deadline := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case r := <-ch:
			got = append(got, r)
		case <-deadline:
			t.Fatalf("got %d rejection reports, want %d: %+v", len(got), n, got)
		}
	}
	return got
}

func assertSameReasons(t *testing.T, got []model.Rejection, want []string) {
	t.Helper()
	count := map[string]int{}
	for _, r := range got {
		count[r.Reason]++
	}
	for _, w := range want {
		count[w]--
	}
	for reason, n := range count {
		if n != 0 {
			t.Errorf("reason %s: %+d against want %v (got %+v)", reason, n, want, got)
		}
	}
}

var allReasons = []string{"empty_payload", "payload_too_large", "malformed_payload", "bad_topic", "unknown_device",
	"device_disabled", "topic_not_allowed", "unknown_metric", "out_of_range", "not_finite", "bad_value",
	"bad_timestamp", "timestamp_in_future", "timestamp_too_old", "unit_mismatch", "unknown_event_type", "no_values",
	"auth_failed", "subscribe_not_allowed", "will_topic_not_allowed", "rate_limited", "too_many_records", "event_not_for_kind"}

// senmlPack is a SenML pack of n heart-rate records a second apart.
func senmlPack(n int) []byte {
	b := fmt.Appendf(nil, `[{"bn":"","bt":%d,"n":"heart_rate","u":"/min","v":70}`, time.Now().Add(-time.Hour).Unix())
	for i := 1; i < n; i++ {
		b = fmt.Appendf(b, `,{"n":"heart_rate","t":%d,"v":70}`, i)
	}
	return append(b, ']')
}

func rejectionCounters(t *testing.T, base string) map[string]float64 {
	t.Helper()
	m := map[string]float64{}
	for _, r := range allReasons {
		m[r] = metricValue(t, base, `carehub_ingest_rejected_total{reason="`+r+`"}`)
	}
	return m
}

func assertCounterDeltas(t *testing.T, base string, before map[string]float64, reasons []string) {
	t.Helper()
	want := map[string]float64{}
	for _, r := range reasons {
		want[r]++
	}
	after := rejectionCounters(t, base)
	for _, r := range allReasons {
		if d := after[r] - before[r]; d != want[r] {
			t.Errorf("carehub_ingest_rejected_total{reason=%q} rose by %v, want %v", r, d, want[r])
		}
	}
}

// assertStored checks how many heart_rate points (or events) the device has
// in InfluxDB. To know the pipeline has finished with the message under
// test, it sends a sentinel behind it on the same path and waits for that.
func assertStored(t *testing.T, in *testenv.Influx, db string, c mqtt.Client, d deviceCreds, topic string, want int) {
	t.Helper()
	measurement, field, sentinel := "readings", "heart_rate", `{"values":{"steps":1}}`
	sentinelField := "steps"
	if topic == "event" {
		measurement, field, sentinel, sentinelField = "events", "value", `{"type":"tamper"}`, "value" // every kind may send tamper
	}
	publish(t, c, d.MQTT.TopicPrefix+strings.Replace(topic, "status", "telemetry", 1), []byte(sentinel))
	wantSentinel := 1
	if topic == "event" {
		wantSentinel = want + 1
	}
	testenv.WaitFor(t, 20*time.Second, "the sentinel in InfluxDB", func() bool {
		return countPoints(t, in, db, measurement, sentinelField, d.ID) >= wantSentinel
	})
	if topic == "event" {
		if got := countPoints(t, in, db, measurement, field, d.ID) - 1; got != want {
			t.Errorf("%d events stored, want %d", got, want)
		}
		return
	}
	if got := countPoints(t, in, db, measurement, field, d.ID); got != want {
		t.Errorf("%d %s points stored, want %d", got, field, want)
	}
}
