package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/testenv"
)

// TestReadingEndToEnd carries readings from a device's MQTT publish through
// the embedded broker, ingest, JetStream and the writer into InfluxDB, and
// back out through the readings endpoint.
func TestReadingEndToEnd(t *testing.T) {
	in := testenv.SharedInflux(t)
	db := in.CreateDB(t)
	a := startApp(t, env(t, in.URL, db, nil))
	base := "http://" + a.HTTPAddr()

	d := register(t, base, "wearable")
	c := deviceClient(t, a.MQTTURL(), d)
	now := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	const n = 20
	for i := range n {
		ts := now.Add(time.Duration(i) * time.Second)
		publish(t, c, d.MQTT.TopicPrefix+"telemetry", fmt.Appendf(nil, `{"ts":%d,"values":{"heart_rate":%d,"spo2":97}}`, ts.UnixMilli(), 60+i))
	}
	publish(t, c, d.MQTT.TopicPrefix+"event", []byte(`{"type":"tamper"}`)) // an event a wearable may send (catalog.KindEmits)
	publish(t, c, d.MQTT.TopicPrefix+"status", []byte(`{"online":true,"battery_pct":81,"rssi_dbm":-60,"fw":"1.0.0"}`))

	testenv.WaitFor(t, 20*time.Second, "20 readings in InfluxDB", func() bool {
		return countPoints(t, in, db, "readings", "heart_rate", d.ID) == n
	})
	testenv.WaitFor(t, 10*time.Second, "the event in InfluxDB", func() bool {
		return countPoints(t, in, db, "events", "value", d.ID) == 1
	})
	testenv.WaitFor(t, 10*time.Second, "the status in InfluxDB", func() bool {
		return countPoints(t, in, db, "device_status", "battery_pct", d.ID) == 1
	})

	var got struct {
		ResidentID string `json:"resident_id"`
		Metric     string `json:"metric"`
		Unit       string `json:"unit"`
		Points     []struct {
			T string  `json:"t"`
			V float64 `json:"v"`
		} `json:"points"`
	}
	path := fmt.Sprintf("/api/v1/residents/%s/readings?metric=heart_rate&from=%s&to=%s", d.ResidentID,
		now.Add(-time.Minute).UTC().Format(time.RFC3339), now.Add(time.Minute).UTC().Format(time.RFC3339))
	if code := apiCall(t, base, "GET", path, nil, &got); code != http.StatusOK {
		t.Fatalf("readings: HTTP %d", code)
	}
	if got.ResidentID != d.ResidentID || got.Metric != "heart_rate" || got.Unit != "/min" || len(got.Points) != n {
		t.Fatalf("readings answer = %+v, want %d heart_rate points in /min", got, n)
	}
	if got.Points[0].V != 60 || got.Points[n-1].V != float64(60+n-1) {
		t.Errorf("first/last values %v/%v, want 60/%d", got.Points[0].V, got.Points[n-1].V, 60+n-1)
	}
	// Aggregated: one 1-hour mean window covers all points (or two when the
	// minute straddles an hour), and the mean lies within the values.
	var agg struct {
		Points []struct{ V float64 } `json:"points"`
	}
	if code := apiCall(t, base, "GET", path+"&every=1h&fn=max", nil, &agg); code != http.StatusOK || len(agg.Points) == 0 {
		t.Fatalf("aggregated readings: HTTP %d, %d points", code, len(agg.Points))
	}
	maxV := 0.0
	for _, p := range agg.Points {
		maxV = max(maxV, p.V)
	}
	if maxV != float64(60+n-1) {
		t.Errorf("max over the hour = %v, want %d", maxV, 60+n-1)
	}

	// Presence reached the registry side.
	testenv.WaitFor(t, 10*time.Second, "presence online with battery", func() bool {
		p, ok := a.Presence.Presence(d.ID)
		return ok && p.Online && p.BatteryPct != nil && *p.BatteryPct == 81
	})
	// The contract's JetStream message shape: a single reading on the
	// device's subject, or, with CARE_INGEST_BATCH, a batch on the
	// resident's partition (contract §3).
	want := model.ReadingSubject(d.ResidentID, d.ID)
	if a.Config.IngestBatch > 0 {
		want = model.ReadingPartitionSubject(model.ReadingPartition(d.ResidentID))
	}
	sub, err := a.NC.SubscribeSync(want)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, c, d.MQTT.TopicPrefix+"telemetry", []byte(`{"values":{"heart_rate":70}}`))
	msg, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("no message on %s: %v", want, err)
	}
	var r map[string]any
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		t.Fatal(err)
	}
	if b, ok := r["readings"].([]any); ok && len(b) > 0 {
		r, _ = b[0].(map[string]any)
	}
	for _, k := range []string{"resident_id", "home_id", "device_id", "device_kind", "ts", "values"} {
		if _, ok := r[k]; !ok {
			t.Errorf("reading JSON lacks %q: %s", k, msg.Data)
		}
	}
}
