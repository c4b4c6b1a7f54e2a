package devices

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/testenv"
)

// fakeDevices is the registry as the tracker sees it.
type fakeDevices map[string]Device

func (f fakeDevices) Device(id string) (Device, bool) { d, ok := f[id]; return d, ok }

func TestPresenceFlushAndReload(t *testing.T) {
	ctx := context.Background()
	js := connectJS(t, testenv.NATS(t))
	reg := fakeDevices{"bed-1": {ID: "bed-1", HomeID: "h1"}, "door-1": {ID: "door-1", HomeID: "h1"}}
	opts := PresenceOptions{FlushEvery: time.Hour, LastSeenResolution: time.Minute}
	tr, err := NewPresenceTracker(ctx, js, reg, zerolog.Nop(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	batt := 87.0

	tr.Report(Presence{DeviceID: "bed-1", Online: true, LastSeen: t0, BatteryPct: &batt, FW: "1.4.2"})
	tr.Seen("bed-1", t0.Add(10*time.Second))
	tr.Seen("stranger", t0) // unregistered: not tracked
	if _, ok := tr.Presence("stranger"); ok {
		t.Fatal("unregistered device tracked")
	}
	p, ok := tr.Presence("bed-1")
	if !ok || !p.Online || p.HomeID != "h1" || !p.LastSeen.Equal(t0.Add(10*time.Second)) || p.FW != "1.4.2" || *p.BatteryPct != 87 {
		t.Fatalf("presence = %+v", p)
	}

	// Last Will: offline; a status without battery keeps the last battery.
	tr.Report(Presence{DeviceID: "bed-1", Online: false, LastSeen: t0.Add(20 * time.Second)})
	if p, _ := tr.Presence("bed-1"); p.Online || p.BatteryPct == nil || *p.BatteryPct != 87 {
		t.Fatalf("after Last Will: %+v", p)
	}
	// A message that arrived before the will does not bring it back...
	tr.Seen("bed-1", t0.Add(15*time.Second))
	if p, _ := tr.Presence("bed-1"); p.Online {
		t.Fatal("an older message set an offline device online")
	}
	// ...one after it does.
	tr.Seen("bed-1", t0.Add(30*time.Second))
	if p, _ := tr.Presence("bed-1"); !p.Online {
		t.Fatal("a message after the Last Will did not set the device online")
	}
	tr.Report(Presence{DeviceID: "door-1", Online: false, LastSeen: t0})

	n, err := tr.Flush(ctx)
	if err != nil || n != 2 {
		t.Fatalf("flush wrote %d (%v), want 2", n, err)
	}
	if n, _ := tr.Flush(ctx); n != 0 {
		t.Fatalf("second flush wrote %d unchanged entries", n)
	}
	// Seen within LastSeenResolution of the flushed value is not worth a write.
	tr.Seen("bed-1", t0.Add(40*time.Second))
	if n, _ := tr.Flush(ctx); n != 0 {
		t.Fatalf("flush after a 10 s advance wrote %d, want 0", n)
	}
	tr.Seen("bed-1", t0.Add(2*time.Minute))
	if err := tr.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// A new tracker (a restart) starts from what was flushed.
	tr2, err := NewPresenceTracker(ctx, js, reg, zerolog.Nop(), opts)
	if err != nil {
		t.Fatal(err)
	}
	all := tr2.All()
	if len(all) != 2 || all[0].DeviceID != "bed-1" || all[1].DeviceID != "door-1" {
		t.Fatalf("reloaded = %+v", all)
	}
	if !all[0].Online || !all[0].LastSeen.Equal(t0.Add(2*time.Minute)) || all[0].FW != "1.4.2" || *all[0].BatteryPct != 87 {
		t.Fatalf("reloaded bed-1 = %+v", all[0])
	}
	if all[1].Online {
		t.Fatalf("reloaded door-1 online: %+v", all[1])
	}
	// After reload, a message still brings an offline device back.
	tr2.Seen("door-1", t0.Add(time.Second))
	if p, _ := tr2.Presence("door-1"); !p.Online {
		t.Fatal("reloaded offline device not set online by a later message")
	}
}

func TestPresenceRunFlushesPeriodically(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	js := connectJS(t, testenv.NATS(t))
	reg := fakeDevices{"sos-1": {ID: "sos-1", HomeID: "h2"}}
	tr, err := NewPresenceTracker(ctx, js, reg, zerolog.Nop(), PresenceOptions{FlushEvery: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { tr.Run(ctx); close(done) }()
	tr.Report(Presence{DeviceID: "sos-1", Online: true, LastSeen: time.Now()})
	kv, err := js.KeyValue(ctx, model.BucketPresence)
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "Run to flush the report", func() bool {
		_, err := kv.Get(ctx, "sos-1")
		return err == nil
	})
	cancel()
	<-done
}

// BenchmarkSeen is the per-message cost ingest pays.
func BenchmarkSeen(b *testing.B) {
	tr := &PresenceTracker{devices: fakeDevices{"x": {ID: "x"}}, m: map[string]*presenceEntry{}, opts: PresenceOptions{}.withDefaults()}
	now := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			tr.Seen("x", now.Add(time.Duration(i)))
		}
	})
}

// TestPresenceSharedBetweenInstances: what one instance flushed is what
// another reports once it hears of it through the bucket, and its own
// later news wins over the other's older flush.
func TestPresenceSharedBetweenInstances(t *testing.T) {
	ctx := context.Background()
	s := testenv.NATS(t)
	reg := fakeDevices{"bed-1": {ID: "bed-1", HomeID: "h1"}}
	opts := PresenceOptions{FlushEvery: time.Hour, LastSeenResolution: time.Minute}
	a, err := NewPresenceTracker(ctx, connectJS(t, s), reg, zerolog.Nop(), opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewPresenceTracker(ctx, connectJS(t, s), reg, zerolog.Nop(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = a.Close(ctx); _ = b.Close(ctx) }()
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

	a.Report(Presence{DeviceID: "bed-1", Online: true, LastSeen: t0, FW: "2.0"})
	if _, err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "the other instance to see the flush", func() bool {
		p, ok := b.Presence("bed-1")
		all := b.All()
		return ok && p.Online && p.LastSeen.Equal(t0) && p.FW == "2.0" && len(all) == 1 && all[0].FW == "2.0"
	})
	// b hears the device later, offline: b's news is the latest.
	b.Report(Presence{DeviceID: "bed-1", Online: false, LastSeen: t0.Add(time.Minute)})
	if p, _ := b.Presence("bed-1"); p.Online || p.FW != "2.0" {
		t.Fatalf("b after its own report: %+v", p)
	}
	if _, err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "the first instance to see the later report", func() bool {
		p, ok := a.Presence("bed-1")
		return ok && !p.Online && p.LastSeen.Equal(t0.Add(time.Minute))
	})
}
