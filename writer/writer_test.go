package writer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/influx"
	"github.com/carehub/carehub/internal/metrics"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/testenv"
)

// writerJS is an in-process NATS with carehub's streams.
func writerJS(t testing.TB) (jetstream.JetStream, *nats.Conn) {
	t.Helper()
	nc, js := testenv.JetStream(t, testenv.NATS(t))
	return js, nc
}

// startWriter runs a writer until the test ends and checks Run returned.
func startWriter(t testing.TB, o Options) (*Writer, *metrics.Registry) {
	t.Helper()
	if o.Metrics == nil {
		o.Metrics = metrics.New()
	}
	o.Log = zerolog.Nop()
	w, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return w, o.Metrics
}

func testReading(res string, i int, t0 time.Time) model.Reading {
	return model.Reading{ResidentID: res, HomeID: "h-" + res, DeviceID: "wear-" + res, DeviceKind: "wearable",
		TS: t0.Add(time.Duration(i) * time.Millisecond), Values: map[string]float64{"heart_rate": 60 + float64(i%50), "spo2": 97, "body_temp": 36.5}}
}

func jsPublishJSON(t testing.TB, js jetstream.JetStream, subject string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	jsPublishRaw(t, js, subject, b)
}

func jsPublishRaw(t testing.TB, js jetstream.JetStream, subject string, b []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.Publish(ctx, subject, b); err != nil {
		t.Fatal(err)
	}
}

var influxCountRe = regexp.MustCompile(`"values":\[\[[0-9-]+,([0-9]+)\]`)

// influxCount counts points of a field with InfluxQL.
func influxCount(t testing.TB, in *testenv.Influx, db, q string) int {
	t.Helper()
	m := influxCountRe.FindStringSubmatch(in.QueryDB(t, db, q))
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// writerSettled reports whether every message of the writer's consumer on
// stream was acked.
func writerSettled(_ testing.TB, js jetstream.JetStream, stream string) bool {
	_, done := testenv.ConsumerDone(context.Background(), js, stream, DefaultDurable)
	return done
}

func fetchDeadLetters(t testing.TB, js jetstream.JetStream, want int) []InfluxDeadLetter {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := js.OrderedConsumer(ctx, model.StreamDeadLetter, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []InfluxDeadLetter
	batch, err := c.Fetch(want+1, jetstream.FetchMaxWait(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		var dl InfluxDeadLetter
		if err := json.Unmarshal(m.Data(), &dl); err != nil {
			t.Fatalf("dead letter is not JSON: %v", err)
		}
		if m.Headers().Get("Carehub-Reason") != dl.Reason {
			t.Errorf("header reason %q, body %q", m.Headers().Get("Carehub-Reason"), dl.Reason)
		}
		out = append(out, dl)
	}
	if len(out) != want {
		t.Fatalf("%d dead letters, want %d: %+v", len(out), want, out)
	}
	return out
}

func openWriterInflux(t testing.TB, in *testenv.Influx) (*influx.Client, string) {
	t.Helper()
	db := testenv.ID("w")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := influx.Open(ctx, influx.Options{URL: in.URL, Bucket: db, RawRetention: 90 * 24 * time.Hour, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, db
}

// TestWriterStoresEverythingOnce publishes readings, events and status
// through JetStream and finds each stored exactly once in a real InfluxDB
// 1.8: duplicates of a reading are one point, a message that is not JSON is
// dead-lettered without blocking the rest, and every message is acked.
func TestWriterStoresEverythingOnce(t *testing.T) {
	js, _ := writerJS(t)
	in := testenv.SharedInflux(t)
	store, db := openWriterInflux(t, in)
	_, reg := startWriter(t, Options{JS: js, Store: store, BatchSize: 100, BatchInterval: 50 * time.Millisecond})

	const n = 1000
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	for i := 0; i < n; i++ {
		r := testReading("r1", i, t0)
		jsPublishJSON(t, js, model.ReadingSubject(r.ResidentID, r.DeviceID), r)
		if i == 500 {
			jsPublishRaw(t, js, model.ReadingSubject("r1", "wear-r1"), []byte(`{"resident_id": "r1", "values": `)) // truncated
			jsPublishJSON(t, js, model.ReadingSubject(r.ResidentID, r.DeviceID), r)                                // a resend
		}
	}
	jsPublishJSON(t, js, model.EventSubject("r1", "sos-1"), model.Event{ResidentID: "r1", HomeID: "h-r1", DeviceID: "sos-1", DeviceKind: "sos", TS: t0, Type: "sos"})
	jsPublishJSON(t, js, model.EventSubject("r1", "sos-1"), model.Event{ResidentID: "r1", HomeID: "h-r1", DeviceID: "sos-1", DeviceKind: "sos", TS: t0.Add(time.Second), Type: "sos_cancel"})
	b := 55.0
	jsPublishJSON(t, js, model.StatusSubject("r1", "wear-r1"), model.Status{ResidentID: "r1", HomeID: "h-r1", DeviceID: "wear-r1", TS: t0, Online: true, BatteryPct: &b})

	testenv.WaitFor(t, 30*time.Second, "all readings acked", func() bool { return writerSettled(t, js, model.StreamReadings) })
	testenv.WaitFor(t, 10*time.Second, "events and status acked", func() bool {
		return writerSettled(t, js, model.StreamEvents) && writerSettled(t, js, model.StreamStatus)
	})
	if got := influxCount(t, in, db, `SELECT count(heart_rate) FROM readings WHERE resident_id='r1'`); got != n {
		t.Fatalf("%d heart_rate points stored, want %d", got, n)
	}
	if got := influxCount(t, in, db, `SELECT count(spo2) FROM readings`); got != n {
		t.Fatalf("%d spo2 points stored, want %d", got, n)
	}
	if got := influxCount(t, in, db, `SELECT count(value) FROM events WHERE resident_id='r1'`); got != 2 {
		t.Fatalf("%d events stored, want 2", got)
	}
	if got := influxCount(t, in, db, `SELECT count(battery_pct) FROM device_status WHERE device_id='wear-r1'`); got != 1 {
		t.Fatalf("%d status points stored, want 1", got)
	}
	dls := fetchDeadLetters(t, js, 1)
	if dls[0].Reason != DeadReasonMalformed || dls[0].Stream != model.StreamReadings || !bytes.HasPrefix(dls[0].Payload, []byte(`{"resident_id"`)) || dls[0].Seq == 0 {
		t.Fatalf("dead letter %+v", dls[0])
	}
	var text bytes.Buffer
	reg.WriteText(&text)
	for _, want := range []string{
		`carehub_influx_points_written_total{measurement="readings"} 1001`, // the resend is written, as the same point
		`carehub_influx_points_written_total{measurement="events"} 2`,
		`carehub_influx_deadletter_total 1`,
		`carehub_influx_write_errors_total{kind="rejected"} 0`,
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, text.String())
		}
	}
	testenv.WaitFor(t, 5*time.Second, "lag gauge at zero", func() bool {
		var b bytes.Buffer
		reg.WriteText(&b)
		return strings.Contains(b.String(), `carehub_jetstream_pending{stream="CARE_READINGS"} 0`)
	})
}

// TestWriterRidesOutInfluxOutage kills InfluxDB while readings keep
// arriving, restarts it, and finds every reading stored.
func TestWriterRidesOutInfluxOutage(t *testing.T) {
	js, _ := writerJS(t)
	in := testenv.StartInflux(t)
	store, db := openWriterInflux(t, in)
	_, reg := startWriter(t, Options{JS: js, Store: store, BatchSize: 200, BatchInterval: 50 * time.Millisecond, MaxBackoff: 300 * time.Millisecond, AckWait: 2 * time.Second})
	retries := func() bool {
		var b bytes.Buffer
		reg.WriteText(&b)
		m := regexp.MustCompile(`carehub_influx_write_errors_total\{kind="retryable"\} ([0-9]+)`).FindStringSubmatch(b.String())
		n, _ := strconv.Atoi(m[1])
		return n >= 5
	}

	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	var sent atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() { // the devices keep sending, paced by JetStream's acks
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			r := testReading("r2", i, t0)
			b, _ := json.Marshal(r)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := js.Publish(ctx, model.ReadingSubject(r.ResidentID, r.DeviceID), b)
			cancel()
			if err != nil {
				t.Errorf("publish: %v", err)
				return
			}
			sent.Add(1)
		}
	}()
	testenv.WaitFor(t, 20*time.Second, "first readings stored", func() bool {
		return influxCount(t, in, db, `SELECT count(heart_rate) FROM readings`) >= 500
	})
	in.Stop()
	atStop := sent.Load()
	// Down for as long as it takes the writer to fail five times in a row
	// (more than AckWait, so InProgress must keep the batch) and for the
	// devices to send a thousand more readings.
	testenv.WaitFor(t, 30*time.Second, "writes failing while readings keep coming", func() bool {
		return retries() && sent.Load() > atStop+1000
	})
	in.Start()
	testenv.WaitFor(t, 20*time.Second, "readings after the restart", func() bool { return sent.Load() > atStop+2000 })
	close(stop)
	wg.Wait()
	total := int(sent.Load())
	testenv.WaitFor(t, 60*time.Second, "every reading stored", func() bool {
		return influxCount(t, in, db, `SELECT count(heart_rate) FROM readings`) == total
	})
	testenv.WaitFor(t, 10*time.Second, "everything acked", func() bool { return writerSettled(t, js, model.StreamReadings) })
	if got := influxCount(t, in, db, `SELECT count(heart_rate) FROM readings`); got != total {
		t.Fatalf("%d stored, %d sent", got, total)
	}
}

// splitStore behaves like InfluxDB for the split tests: it refuses bodies
// of more than maxLines lines with 413, and stores the lines it accepts
// but answers 400 (a partial write) when a body holds a line containing
// poison.
type splitStore struct {
	mu       sync.Mutex
	maxLines int
	poison   string
	failures int // the first writes fail with 503
	stored   map[string]int
	calls    int
}

func (f *splitStore) WriteLines(_ context.Context, body []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.failures > 0 {
		f.failures--
		return &influx.WriteError{Status: 503, Message: "service unavailable"}
	}
	lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
	if f.maxLines > 0 && len(lines) > f.maxLines {
		return &influx.WriteError{Status: 413, Message: "request entity too large"}
	}
	bad := 0
	for _, l := range lines {
		if f.poison != "" && strings.Contains(l, f.poison) {
			bad++
			continue
		}
		f.stored[l]++
	}
	if bad > 0 {
		return &influx.WriteError{Status: 400, Message: fmt.Sprintf("partial write: field type conflict dropped=%d", bad)}
	}
	return nil
}

func (f *splitStore) snapshot() (map[string]int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := make(map[string]int, len(f.stored))
	for k, v := range f.stored {
		m[k] = v
	}
	return m, f.calls
}

func publishTestReadings(t *testing.T, js jetstream.JetStream, n int, poison func(i int) bool) map[string]bool {
	t.Helper()
	t0 := time.Now().Truncate(time.Second)
	want := map[string]bool{}
	for i := 0; i < n; i++ {
		r := testReading("r3", i, t0)
		if poison(i) {
			r.Values["steps"] = 666
		}
		jsPublishJSON(t, js, model.ReadingSubject(r.ResidentID, r.DeviceID), r)
		want[strings.TrimSuffix(string(influx.AppendReading(nil, r)), "\n")] = !poison(i)
	}
	return want
}

// TestWriterSplitsTooLargeBatches proves that a 413 makes the writer send
// the batch in halves until it fits, and that every point arrives once.
func TestWriterSplitsTooLargeBatches(t *testing.T) {
	js, _ := writerJS(t)
	f := &splitStore{maxLines: 7, stored: map[string]int{}, failures: 2}
	_, reg := startWriter(t, Options{JS: js, Store: f, BatchSize: 64, BatchInterval: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	want := publishTestReadings(t, js, 300, func(int) bool { return false })
	testenv.WaitFor(t, 20*time.Second, "all acked", func() bool { return writerSettled(t, js, model.StreamReadings) })
	stored, _ := f.snapshot()
	if len(stored) != len(want) {
		t.Fatalf("%d distinct lines stored, want %d", len(stored), len(want))
	}
	for l, n := range stored {
		if !want[l] || n != 1 {
			t.Fatalf("line %q stored %d times (expected: %v)", l, n, want[l])
		}
	}
	var b bytes.Buffer
	reg.WriteText(&b)
	if !regexp.MustCompile(`carehub_influx_write_errors_total\{kind="too_large"\} [1-9]`).MatchString(b.String()) ||
		!strings.Contains(b.String(), `carehub_influx_write_errors_total{kind="retryable"} 2`) {
		t.Fatalf("metrics:\n%s", b.String())
	}
}

// TestWriterDeadLettersRejectedPoints proves that points InfluxDB refuses
// for good are isolated, published with the reason and the line on
// care.deadletter.influx, and acked, while the rest of the batch is stored.
func TestWriterDeadLettersRejectedPoints(t *testing.T) {
	js, _ := writerJS(t)
	f := &splitStore{poison: "steps=666", stored: map[string]int{}}
	startWriter(t, Options{JS: js, Store: f, BatchSize: 100, BatchInterval: 20 * time.Millisecond})
	poisoned := func(i int) bool { return i == 3 || i == 77 || i == 78 || i == 250 }
	want := publishTestReadings(t, js, 300, poisoned)
	testenv.WaitFor(t, 20*time.Second, "all acked", func() bool { return writerSettled(t, js, model.StreamReadings) })
	stored, calls := f.snapshot()
	for l, good := range want {
		if good && stored[l] == 0 {
			t.Fatalf("good line not stored: %q", l)
		}
		if !good && stored[l] != 0 {
			t.Fatalf("poisoned line stored: %q", l)
		}
	}
	dls := fetchDeadLetters(t, js, 4)
	for _, dl := range dls {
		if good, known := want[dl.Line]; !known || good {
			t.Errorf("dead letter line %q is not one of the poisoned lines", dl.Line)
		}
		if dl.Reason != DeadReasonRejected || !strings.Contains(dl.Detail, "field type conflict") || want[dl.Line] || len(want) != 300 || !strings.Contains(dl.Line, "steps=666") {
			t.Errorf("dead letter %+v", dl)
		}
	}
	// Isolating 4 bad points among 300 costs about 4·log2(100) writes, not
	// one write per point.
	if calls > 80 {
		t.Errorf("%d writes to isolate 4 bad points", calls)
	}
}

// TestWriterDeadLettersPointlessMessages covers valid JSON that makes no
// point: no timestamp, an invalid id, an event type outside the contract.
func TestWriterDeadLettersPointlessMessages(t *testing.T) {
	js, _ := writerJS(t)
	f := &splitStore{stored: map[string]int{}}
	startWriter(t, Options{JS: js, Store: f, BatchSize: 10, BatchInterval: 20 * time.Millisecond})
	now := time.Now()
	jsPublishJSON(t, js, model.ReadingSubject("r4", "d"), model.Reading{ResidentID: "r4", DeviceID: "d", Values: map[string]float64{"spo2": 97}})
	jsPublishJSON(t, js, model.ReadingSubject("r4", "d"), model.Reading{ResidentID: "Kim Minsu", DeviceID: "d", TS: now, Values: map[string]float64{"spo2": 97}})
	jsPublishJSON(t, js, model.EventSubject("r4", "d"), model.Event{ResidentID: "r4", DeviceID: "d", TS: now, Type: "party"})
	jsPublishRaw(t, js, model.StatusSubject("r4", "d"), []byte(`[1,2]`))
	jsPublishJSON(t, js, model.ReadingSubject("r4", "d"), model.Reading{ResidentID: "r4", DeviceID: "d", TS: now, Values: map[string]float64{"spo2": 97}})
	testenv.WaitFor(t, 10*time.Second, "all acked", func() bool {
		return writerSettled(t, js, model.StreamReadings) && writerSettled(t, js, model.StreamEvents) && writerSettled(t, js, model.StreamStatus)
	})
	reasons := map[string]int{}
	for _, dl := range fetchDeadLetters(t, js, 4) {
		reasons[dl.Reason]++
	}
	if reasons[DeadReasonNotPoint] != 3 || reasons[DeadReasonMalformed] != 1 {
		t.Fatalf("reasons %v", reasons)
	}
	if stored, _ := f.snapshot(); len(stored) != 1 {
		t.Fatalf("stored %v", stored)
	}
}

// BenchmarkWriterThroughput measures points per second from JetStream into
// a real InfluxDB 1.8: b.N rounds of 200,000 readings of 3 values each,
// published before the writer starts (a backlog, as after an outage).
func BenchmarkWriterThroughput(b *testing.B) {
	const n = 200_000
	js, nc := writerJS(b)
	in := testenv.SharedInflux(b)
	t0 := time.Now().Add(-24 * time.Hour).Truncate(time.Hour)
	var elapsed time.Duration
	var writes uint64
	var writeSecs float64
	for round := 0; round < b.N; round++ {
		store, db := openWriterInflux(b, in)
		ctx := context.Background()
		for _, s := range []string{model.StreamReadings} {
			if err := js.DeleteConsumer(ctx, s, DefaultDurable); err != nil && round > 0 {
				b.Fatal(err)
			}
			st, _ := js.Stream(ctx, s)
			_ = st.Purge(ctx)
		}
		for i := 0; i < n; i++ {
			r := testReading("r"+strconv.Itoa(i%1000), i/1000, t0)
			data, _ := json.Marshal(r)
			if _, err := js.PublishAsync(model.ReadingSubject(r.ResidentID, r.DeviceID), data, jetstream.WithStallWait(10*time.Second)); err != nil {
				b.Fatal(err)
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(60 * time.Second):
			b.Fatal("publish did not complete")
		}
		_ = nc.Flush()
		start := time.Now()
		w, err := New(Options{JS: js, Store: store, Log: zerolog.Nop()})
		if err != nil {
			b.Fatal(err)
		}
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- w.Run(wctx) }()
		testenv.WaitFor(b, 5*time.Minute, "backlog written", func() bool { return writerSettled(b, js, model.StreamReadings) })
		elapsed += time.Since(start)
		writes += w.writeSecs.Count()
		writeSecs += w.writeSecs.Sum()
		cancel()
		if err := <-done; err != nil {
			b.Logf("Run ended: %v", err) // the cancellation, as asked
		}
		if got := influxCount(b, in, db, `SELECT count(heart_rate) FROM readings`); got != n {
			b.Fatalf("%d stored, want %d", got, n)
		}
	}
	b.ReportMetric(float64(n*b.N)/elapsed.Seconds(), "readings/s")
	b.ReportMetric(3*float64(n*b.N)/elapsed.Seconds(), "values/s")
	b.ReportMetric(1000*writeSecs/float64(writes), "ms/write")
}
