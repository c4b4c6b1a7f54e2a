package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/ingest/decode"
	"github.com/carehub/carehub/internal/metrics"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/testenv"
)

type fakeDevices map[string]devices.Device

func (f fakeDevices) Device(id string) (devices.Device, bool) { d, ok := f[id]; return d, ok }

type nopPresence struct{}

func (nopPresence) Seen(string, time.Time)  {}
func (nopPresence) Report(devices.Presence) {}

// TestIntakeQuotasAndShapes drives Intake.Ingest (the embedded
// broker's path) against real JetStream with a fixed clock: an array is
// one JetStream message; a device past its telemetry quota is refused
// (rate_limited) while its alarms, and another device's, still pass; bad
// events count against the event bucket; events of another kind are
// refused (event_not_for_kind); every refusal is reported on
// care.ingest.rejected.{device_id}.
func TestIntakeQuotasAndShapes(t *testing.T) {
	nc, js := testenv.JetStream(t, testenv.NATS(t))
	now := time.Now().Truncate(time.Second)
	devs := fakeDevices{
		"w1": {ID: "w1", Kind: "wearable", ResidentID: "r1", HomeID: "h1"},
		"s2": {ID: "s2", Kind: "sos", ResidentID: "r2", HomeID: "h2"},
	}
	p, err := New(Options{NC: nc, Devices: devs, Presence: nopPresence{}, Metrics: metrics.New(), Log: zerolog.Nop(),
		Clock: func() time.Time { return now }, Limits: decode.Limits{MaxPayload: 64 << 10, MaxAge: time.Hour, MaxFuture: time.Minute, MaxRecords: 10},
		Quota: Quota{Rate: 1, Burst: 10, EventRate: 1, EventBurst: 2}})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	reasons := map[string][]string{}
	sub, err := nc.Subscribe(model.SubjectRejectedAll, func(m *nats.Msg) {
		var r model.Rejection
		if json.Unmarshal(m.Data, &r) == nil {
			mu.Lock()
			reasons[r.DeviceID] = append(reasons[r.DeviceID], r.Reason)
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ingest := func(dev, kind, payload string) {
		t.Helper()
		if err := p.Ingest(ctx, model.DeviceTopic(dev, kind), []byte(payload), ""); err != nil {
			t.Fatal(err)
		}
	}
	arr := "["
	for i := range 10 {
		if i > 0 {
			arr += ","
		}
		arr += fmt.Sprintf(`{"ts":%d,"values":{"heart_rate":%d}}`, now.Add(time.Duration(i-20)*time.Second).UnixMilli(), 60+i)
	}
	arr += "]"
	ingest("w1", "telemetry", arr)                            // 10 records: the whole burst, one message
	ingest("w1", "telemetry", `{"values":{"heart_rate":70}}`) // no credit: rate_limited
	ingest("w1", "event", `{"type":"door_open"}`)             // event_not_for_kind, one event token
	ingest("w1", "event", `{"type":"tamper"}`)                // the second event token
	ingest("w1", "event", `{"type":"tamper","ts":1}`)         // rate_limited (no credit)
	ingest("w1", "event", `{"type":"sos"}`)                   // an alarm: always
	ingest("s2", "event", `{"type":"sos"}`)                   // another device: its own buckets
	ingest("w1", "telemetry", `[{"values":{"steps":1}}]`)     // still no credit

	ctx2, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	count := func(stream, subject string) uint64 {
		st, err := js.Stream(ctx2, stream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx2, jetstream.WithSubjectFilter(subject))
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		for _, c := range info.State.Subjects {
			n += c
		}
		return n
	}
	if n := count(model.StreamReadings, model.SubjectReadingsAll); n != 1 {
		t.Errorf("%d messages in CARE_READINGS, want 1 (one batch for the array)", n)
	}
	if n := count(model.StreamReadings, model.ReadingBatchSubject("r1")); n != 1 {
		t.Errorf("%d batches on %s, want 1", n, model.ReadingBatchSubject("r1"))
	}
	if n := count(model.StreamEvents, model.EventSubject("r1", "w1")); n != 2 {
		t.Errorf("%d events of w1 stored, want 2 (tamper and sos)", n)
	}
	if n := count(model.StreamEvents, model.EventSubject("r2", "s2")); n != 1 {
		t.Errorf("%d events of s2 stored, want 1", n)
	}
	// Device lag: once per stored telemetry message, from its newest
	// reading (11 s before the clock); events and refusals are not lag.
	if n, sum := p.m.lag.Count(), p.m.lag.Sum(); n != 1 || sum != 11 {
		t.Errorf("device lag: %d observations summing %v s, want 1 of 11 s", n, sum)
	}
	want := []string{model.ReasonRateLimited, model.ReasonEventNotForKind, model.ReasonRateLimited, model.ReasonRateLimited}
	testenv.WaitFor(t, 5*time.Second, "the rejection reports", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(reasons["w1"]) >= len(want)
	})
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(reasons["w1"]) != fmt.Sprint(want) || len(reasons["s2"]) != 0 {
		t.Errorf("rejections %v, want w1 %v and none for s2", reasons, want)
	}
}
