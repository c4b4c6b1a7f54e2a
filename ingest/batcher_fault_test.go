package ingest

import (
	"context"
	"errors"
	"fmt"
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

// readingCounts counts each reading in CARE_READINGS by resident and heart
// rate.
func readingCounts(t *testing.T, js jetstream.JetStream) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, model.StreamReadings)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, batches := streamBatches(t, js, int(info.State.Msgs))
	n := map[string]int{}
	for _, b := range batches {
		for _, r := range b {
			n[fmt.Sprintf("%s/%v", r.ResidentID, r.Values["heart_rate"])]++
		}
	}
	return n
}

// TestBatchJetStreamOutage (issue 14 item 2): while JetStream is down no
// batched message is confirmed, so the subscriber and the embedded broker
// acknowledge none of them to its device. When it is back the batches
// are published again with their Nats-Msg-Id and every message is
// confirmed: each reading is in the stream exactly once. A message whose
// confirmation was given up (the intake shut down during the outage) is
// confirmed to nobody; the broker redelivers it and it is stored then.
func TestBatchJetStreamOutage(t *testing.T) {
	port, dir := testenv.FreePort(t), t.TempDir()
	ns := testenv.NATSAt(t, port, dir)
	_, js := testenv.JetStream(t, ns)
	nc, err := nats.Connect(ns.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	var rs []string
	devs := fakeDevices{}
	for range 8 {
		r := testenv.ID("r")
		rs = append(rs, r)
		devs["w-"+r] = devices.Device{ID: "w-" + r, Kind: "wearable", ResidentID: r, HomeID: "h1"}
	}
	in, err := New(Options{NC: nc, Devices: devs, Presence: nopPresence{}, Metrics: metrics.New(), Log: zerolog.Nop(),
		Limits: decode.Limits{MaxPayload: 64 << 10, MaxAge: time.Hour, MaxFuture: time.Minute, MaxRecords: 100},
		Quota:  Quota{Rate: 1e6, Burst: 1e6, EventRate: 1e6, EventBurst: 1e6}, BatchReadings: 10, BatchDelay: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	msg := func(i int) (string, []byte) {
		r := rs[i%len(rs)]
		return model.DeviceTopic("w-"+r, "telemetry"), hr(t0.Add(time.Duration(i)*time.Millisecond), 40+i)
	}
	restart := func() {
		ns = testenv.NATSAt(t, port, dir)
		testenv.WaitFor(t, 10*time.Second, "the intake's connection back", nc.IsConnected)
	}

	// The outage: 40 messages taken, none confirmed while it lasts.
	ns.Shutdown()
	ns.WaitForShutdown()
	ctx := context.Background()
	confirmed := make(chan error, 40)
	for i := range 40 {
		topic, payload := msg(i)
		pd := in.Take(ctx, topic, payload, "")
		go func() { confirmed <- pd.Confirm(ctx) }()
	}
	select {
	case err := <-confirmed:
		t.Fatalf("a message confirmed (%v) while JetStream was down", err)
	case <-time.After(2 * time.Second): // the outage; a confirmation would be a failure
	}
	restart()
	for range 40 {
		select {
		case err := <-confirmed:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("messages not confirmed after JetStream came back")
		}
	}
	counts := readingCounts(t, js)
	for i := range 40 {
		if key := fmt.Sprintf("%s/%d", rs[i%len(rs)], 40+i); counts[key] != 1 {
			t.Fatalf("reading %s is %d times in the stream, want once", key, counts[key])
		}
	}

	// A second outage during which the intake shuts down: its messages
	// are confirmed to nobody, so the broker keeps them, and redelivers
	// them to the next intake: then they are stored.
	ns.Shutdown()
	ns.WaitForShutdown()
	sctx, shutdown := context.WithCancel(ctx)
	given := make(chan error, 5)
	for i := 40; i < 45; i++ {
		topic, payload := msg(i)
		pd := in.Take(sctx, topic, payload, "")
		go func() { given <- pd.Confirm(sctx) }()
	}
	shutdown()
	for range 5 {
		select {
		case err := <-given:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("a message taken before a shutdown during an outage: Confirm = %v, want context.Canceled", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Confirm did not give up after the shutdown")
		}
	}
	restart()
	for i := 40; i < 45; i++ { // the broker's redelivery
		topic, payload := msg(i)
		if err := in.Ingest(ctx, topic, payload, ""); err != nil {
			t.Fatal(err)
		}
	}
	counts = readingCounts(t, js)
	for i := 40; i < 45; i++ {
		// Once, or twice when the client's reconnect buffer still held the
		// first publish: InfluxDB keeps one point (series and time).
		if key := fmt.Sprintf("%s/%d", rs[i%len(rs)], 40+i); counts[key] < 1 {
			t.Fatalf("redelivered reading %s not in the stream", key)
		}
	}
}
