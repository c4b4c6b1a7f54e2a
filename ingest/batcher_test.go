package ingest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/ingest/decode"
	"github.com/carehub/carehub/internal/metrics"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/testenv"
)

// batchIntake is an intake that batches, over real JetStream, with one
// wearable per resident id given.
func batchIntake(t *testing.T, size int, delay time.Duration, residents ...string) (*Intake, jetstream.JetStream) {
	t.Helper()
	nc, js := testenv.JetStream(t, testenv.NATS(t))
	devs := fakeDevices{}
	for _, r := range residents {
		devs["w-"+r] = devices.Device{ID: "w-" + r, Kind: "wearable", ResidentID: r, HomeID: "h1"}
	}
	in, err := New(Options{NC: nc, Devices: devs, Presence: nopPresence{}, Metrics: metrics.New(), Log: zerolog.Nop(),
		Limits: decode.Limits{MaxPayload: 64 << 10, MaxAge: time.Hour, MaxFuture: time.Minute, MaxRecords: 100},
		Quota:  Quota{Rate: 1e6, Burst: 1e6, EventRate: 1e6, EventBurst: 1e6}, BatchReadings: size, BatchDelay: delay})
	if err != nil {
		t.Fatal(err)
	}
	return in, js
}

// partitionResidents returns n resident ids of one reading partition.
func partitionResidents(n int) []string {
	ids := []string{testenv.ID("r")}
	for len(ids) < n {
		if id := testenv.ID("r"); model.ReadingPartition(id) == model.ReadingPartition(ids[0]) {
			ids = append(ids, id)
		}
	}
	return ids
}

func hr(ts time.Time, v int) []byte {
	return fmt.Appendf(nil, `{"ts":%d,"values":{"heart_rate":%d}}`, ts.UnixMilli(), v)
}

// streamBatches reads every message of CARE_READINGS: the readings of each.
func streamBatches(t *testing.T, js jetstream.JetStream, want int) (subjects []string, batches [][]model.Reading) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := js.OrderedConsumer(ctx, model.StreamReadings, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for len(batches) < want {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("after %d messages: %v", len(batches), err)
		}
		rs, err := model.UnmarshalReadings(m.Data(), nil)
		if err != nil {
			t.Fatal(err)
		}
		subjects = append(subjects, m.Subject())
		batches = append(batches, rs)
	}
	return subjects, batches
}

// TestBatchFlushBySize (issue 14 item 2): the readings of several devices'
// messages, residents of one partition, travel as one JetStream message on
// the partition's subject once the batch is full; no message is confirmed
// (so none acknowledged to its device) before that batch's PubAck.
func TestBatchFlushBySize(t *testing.T) {
	rs := partitionResidents(5)
	in, js := batchIntake(t, 5, time.Hour, rs...) // the delay never comes
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	confirmed := make(chan int, 5)
	for i, r := range rs[:4] {
		pd := in.Take(ctx, model.DeviceTopic("w-"+r, "telemetry"), hr(now, 60+i), "")
		if pd == nil {
			t.Fatal("message refused")
		}
		go func(i int) {
			if err := pd.Confirm(ctx); err == nil {
				confirmed <- i
			}
		}(i)
	}
	select {
	case i := <-confirmed:
		t.Fatalf("message %d confirmed before its batch was full and stored", i)
	case <-time.After(200 * time.Millisecond):
	}
	if err := in.Ingest(ctx, model.DeviceTopic("w-"+rs[4], "telemetry"), hr(now, 64), ""); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		select {
		case <-confirmed:
		case <-time.After(10 * time.Second):
			t.Fatal("the messages of a stored batch were not confirmed")
		}
	}
	subjects, batches := streamBatches(t, js, 1)
	if want := model.ReadingPartitionSubject(model.ReadingPartition(rs[0])); subjects[0] != want || len(batches[0]) != 5 {
		t.Fatalf("%s with %d readings, want %s with 5", subjects[0], len(batches[0]), want)
	}
	for i, r := range batches[0] {
		if r.ResidentID != rs[i] || r.Values["heart_rate"] != float64(60+i) {
			t.Errorf("reading %d: %+v", i, r)
		}
	}
}

// TestBatchFlushByTime: a batch that does not fill goes its delay after
// its first reading.
func TestBatchFlushByTime(t *testing.T) {
	rs := partitionResidents(3)
	const delay = 50 * time.Millisecond
	in, js := batchIntake(t, 1000, delay, rs...)
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	start := time.Now()
	var pds []*Pending
	for i, r := range rs {
		pds = append(pds, in.Take(ctx, model.DeviceTopic("w-"+r, "telemetry"), hr(now, 70+i), ""))
	}
	for _, pd := range pds {
		if err := pd.Confirm(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(start); took < delay {
		t.Errorf("confirmed after %s, before the batch's delay of %s", took, delay)
	}
	_, batches := streamBatches(t, js, 1)
	if len(batches[0]) != 3 {
		t.Fatalf("%d readings in the batch, want 3", len(batches[0]))
	}
}

// TestIngestHurriesItsBatch: the embedded broker's hook (Ingest) holds the
// device's connection until its message is stored, so Ingest does not wait
// a long batch delay: one device's messages, one after another, each go
// within a few milliseconds, not the hour the batch would otherwise wait.
func TestIngestHurriesItsBatch(t *testing.T) {
	r := testenv.ID("r")
	in, js := batchIntake(t, 1000, time.Hour, r)
	now := time.Now().Truncate(time.Millisecond)
	const n = 20
	done := make(chan error, 1)
	go func() {
		for i := range n {
			if err := in.Ingest(context.Background(), model.DeviceTopic("w-"+r, "telemetry"), hr(now.Add(time.Duration(i)*time.Millisecond), 60+i), ""); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Ingest still waiting after 20 s: the batch waited for its delay of an hour")
	}
	_, batches := streamBatches(t, js, n) // one batch each: the device sent the next only once the last was stored
	for i, b := range batches {
		if len(b) != 1 || b[0].Values["heart_rate"] != float64(60+i) {
			t.Fatalf("batch %d holds %v, want the one reading %d", i, b, 60+i)
		}
	}
}

// TestBatchOrderPerResident: devices publishing at once through several
// goroutines, as the subscriber connections do: every reading is in the
// stream once, in each resident's partition, in the order its device sent
// them.
func TestBatchOrderPerResident(t *testing.T) {
	var rs []string
	for range 12 {
		rs = append(rs, testenv.ID("r"))
	}
	in, js := batchIntake(t, 7, 2*time.Millisecond, rs...)
	ctx := context.Background()
	t0 := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	const perDevice = 60
	var wg sync.WaitGroup
	for _, r := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var pds []*Pending
			for i := range perDevice {
				pds = append(pds, in.Take(ctx, model.DeviceTopic("w-"+r, "telemetry"), hr(t0.Add(time.Duration(i)*time.Millisecond), 40+i), ""))
			}
			for _, pd := range pds {
				if err := pd.Confirm(ctx); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	st, err := js.Stream(ctx, model.StreamReadings)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	subjects, batches := streamBatches(t, js, int(info.State.Msgs))
	next := map[string]int{}
	total := 0
	for i, b := range batches {
		for _, r := range b {
			if want := model.ReadingPartitionSubject(model.ReadingPartition(r.ResidentID)); subjects[i] != want {
				t.Fatalf("a reading of %s on %s, want %s", r.ResidentID, subjects[i], want)
			}
			if got, want := r.Values["heart_rate"], float64(40+next[r.ResidentID]); got != want {
				t.Fatalf("%s: reading %v after %d in order, want %v", r.ResidentID, got, next[r.ResidentID], want)
			}
			next[r.ResidentID]++
			total++
		}
	}
	if total != len(rs)*perDevice {
		t.Fatalf("%d readings in %d messages, want %d", total, len(batches), len(rs)*perDevice)
	}
	t.Logf("%d readings in %d JetStream messages", total, len(batches))
}
