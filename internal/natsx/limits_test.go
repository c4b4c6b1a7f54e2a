package natsx_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/metrics"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/natsx"
)

// TestStreamAndStoreLimits (issue 9 item 7): the embedded server runs with
// a JetStream store limit; every stream carehub creates has MaxBytes, an
// existing stream without it gets it at start, a full stream drops its
// oldest messages (CARE_AUDIT refuses new ones), no duplicate window is
// longer than 2 minutes, a stream that does not fit
// the store is refused, CARE_READINGS holds the batch subject, and
// StoreWatch reports the fill and warns past 80 %.
func TestStreamAndStoreLimits(t *testing.T) {
	const maxStore = 64 << 20
	ns, err := natsx.StartEmbedded(natsx.EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0", MaxStore: maxStore, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	if got := ns.JetStreamConfig().MaxStore; got != maxStore {
		t.Fatalf("embedded MaxStore %d, want %d", got, maxStore)
	}
	nc, err := nats.Connect(ns.ClientURL(), ns.ConnectOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A stream from an older carehub, without MaxBytes.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: model.StreamReadings, Subjects: []string{model.SubjectReadingsAll}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	o := natsx.DefaultStreamOptions
	o.MaxBytes = map[string]int64{}
	for _, name := range natsx.StreamNames {
		o.MaxBytes[name] = 2 << 20
	}
	if err := natsx.EnsureStreams(ctx, js, o); err != nil {
		t.Fatal(err)
	}
	for _, name := range natsx.StreamNames {
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.CachedInfo().Config.MaxBytes; got != 2<<20 {
			t.Errorf("%s MaxBytes %d, want %d", name, got, 2<<20)
		}
		// The server keeps every message id of the duplicate window in
		// memory: CARE_ALERTS' hour-long window grew carehub's heap all
		// through an alert storm (make bench-storm).
		if got := st.CachedInfo().Config.Duplicates; got <= 0 || got > 2*time.Minute {
			t.Errorf("%s duplicate window %v, want at most 2m", name, got)
		}
	}
	for _, cfg := range natsx.StreamConfigs(natsx.DefaultStreamOptions) {
		if cfg.MaxBytes <= 0 {
			t.Errorf("%s has no default MaxBytes", cfg.Name)
		}
	}

	// Readings past MaxBytes: the oldest go, the stream stays under it.
	body := bytes.Repeat([]byte("x"), 64<<10)
	for range 64 { // 4 MiB into a 2 MiB stream, batches included
		if _, err := js.Publish(ctx, model.ReadingBatchSubject("r1"), body); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := js.Stream(ctx, model.StreamReadings)
	info, _ := st.Info(ctx)
	if info.State.Bytes > 2<<20 || info.State.Msgs == 0 || info.State.FirstSeq == 1 {
		t.Fatalf("readings after 4 MiB: %d bytes, %d msgs from seq %d; want at most 2 MiB with the oldest dropped", info.State.Bytes, info.State.Msgs, info.State.FirstSeq)
	}
	// The audit trail refuses rather than forgets.
	var refused bool
	for range 64 {
		if _, err := js.Publish(ctx, model.AuditSubject("r1"), body); err != nil {
			refused = true
			break
		}
	}
	if !refused {
		t.Fatal("a full CARE_AUDIT took more entries")
	}
	// A stream larger than what is left of the store is refused.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "TOO_BIG", Subjects: []string{"toobig.>"}, Storage: jetstream.FileStorage, MaxBytes: maxStore}); err == nil {
		t.Fatal("a stream larger than the store limit was created")
	}

	// The watch: metrics, and a warning for the full streams.
	var logs bytes.Buffer
	reg := metrics.New()
	w := &natsx.StoreWatch{JS: js, Limit: maxStore, Metrics: reg, Log: zerolog.New(&logs)}
	w.Sample(ctx)
	var text bytes.Buffer
	reg.WriteText(&text)
	for _, want := range []string{"carehub_jetstream_store_limit_bytes 6.7108864e+07", `carehub_jetstream_stream_max_bytes{stream="CARE_READINGS"} 2.097152e+06`} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, text.String())
		}
	}
	if !strings.Contains(text.String(), "carehub_jetstream_store_fill_ratio 0.") ||
		!strings.Contains(text.String(), "carehub_jetstream_store_used_bytes ") || strings.Contains(text.String(), "carehub_jetstream_store_used_bytes 0\n") {
		t.Errorf("store use not reported:\n%s", text.String())
	}
	for _, want := range []string{`"what":"CARE_READINGS"`, `"what":"CARE_AUDIT"`, "filling up"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no warning with %s:\n%s", want, logs.String())
		}
	}
}
