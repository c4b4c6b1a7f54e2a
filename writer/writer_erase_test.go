package writer

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/testenv"
)

// heldStore records what it is asked to write; while hold is set, each
// write waits for it to be released.
type heldStore struct {
	mu      sync.Mutex
	lines   []string
	hold    chan struct{}
	writing chan struct{} // receives once per write that started
}

func newHeldStore() *heldStore { return &heldStore{writing: make(chan struct{}, 64)} }

func (s *heldStore) WriteLines(ctx context.Context, body []byte) error {
	s.writing <- struct{}{}
	s.mu.Lock()
	h := s.hold
	s.mu.Unlock()
	if h != nil {
		select {
		case <-h:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	s.lines = append(s.lines, strings.Split(strings.TrimSpace(string(body)), "\n")...)
	s.mu.Unlock()
	return nil
}

func (s *heldStore) has(sub string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.lines {
		if strings.Contains(l, sub) {
			n++
		}
	}
	return n
}

type erasedSet struct {
	mu  sync.Mutex
	ids map[string]bool
}

func (e *erasedSet) Erased(id string) bool { e.mu.Lock(); defer e.mu.Unlock(); return e.ids[id] }
func (e *erasedSet) add(id string)         { e.mu.Lock(); e.ids[id] = true; e.mu.Unlock() }

// TestWriterDropsForgedAndErased: a message whose body names another
// resident or device than its subject is acked and counted, never written
// (one forged message cannot write under another resident's tags); so is
// a message of an erased resident, also when the erasure came after the
// message was fetched into a batch; Fence waits for a write in progress.
func TestWriterDropsForgedAndErased(t *testing.T) {
	js, _ := writerJS(t)
	store := newHeldStore()
	erased := &erasedSet{ids: map[string]bool{}}
	w, _ := startWriter(t, Options{JS: js, Store: store, BatchSize: 100, BatchInterval: 20 * time.Millisecond, Erased: erased.Erased})
	t0 := time.Now()
	forged, victim, gone, kept := testenv.ID("r"), testenv.ID("r"), testenv.ID("r"), testenv.ID("r")

	// Forged: subject of one resident, body of another; then the device.
	r := testReading(victim, 1, t0)
	jsPublishJSON(t, js, model.ReadingSubject(forged, r.DeviceID), r)
	r = testReading(forged, 2, t0)
	jsPublishJSON(t, js, model.ReadingSubject(forged, "another-device"), r)
	jsPublishJSON(t, js, model.EventSubject(forged, "d1"), model.Event{ResidentID: victim, HomeID: "h1", DeviceID: "d1", TS: t0, Type: "sos"})
	jsPublishJSON(t, js, model.StatusSubject(forged, "d1"), model.Status{ResidentID: victim, HomeID: "h1", DeviceID: "d1", TS: t0, Online: true})
	// Erased before it was consumed.
	erased.add(gone)
	r = testReading(gone, 3, t0)
	jsPublishJSON(t, js, model.ReadingSubject(gone, r.DeviceID), r)
	r = testReading(kept, 4, t0)
	jsPublishJSON(t, js, model.ReadingSubject(kept, r.DeviceID), r)
	testenv.WaitFor(t, 10*time.Second, "the genuine reading written", func() bool { return store.has("resident_id="+kept) == 1 })
	for _, st := range []string{model.StreamReadings, model.StreamEvents, model.StreamStatus} {
		testenv.WaitFor(t, 10*time.Second, st+" acked", func() bool { return writerSettled(t, js, st) })
	}
	for _, id := range []string{forged, victim, gone} {
		if n := store.has(id); n != 0 {
			t.Errorf("%d lines mention %s", n, id)
		}
	}
	for st, want := range map[string]float64{model.StreamReadings: 2, model.StreamEvents: 1, model.StreamStatus: 1} {
		if got := w.dropped.With(st, DropSubjectMismatch).Value(); got != want {
			t.Errorf("%s subject_mismatch drops = %v, want %v", st, got, want)
		}
	}
	if got := w.dropped.With(model.StreamReadings, DropErasedResident).Value(); got != 1 {
		t.Errorf("erased_resident drops = %v, want 1", got)
	}

	// Erased while its reading is in hand: the write holds, a batch with
	// the resident's reading waits behind it, the erasure marks them and
	// waits for the write in progress.
	late, other := testenv.ID("r"), testenv.ID("r")
	release := make(chan struct{})
	store.mu.Lock()
	store.hold = release
	store.mu.Unlock()
	for len(store.writing) > 0 {
		<-store.writing
	}
	r = testReading(other, 5, t0)
	jsPublishJSON(t, js, model.ReadingSubject(other, r.DeviceID), r)
	<-store.writing // the held write of other's reading began
	r = testReading(late, 6, t0)
	jsPublishJSON(t, js, model.ReadingSubject(late, r.DeviceID), r)
	r = testReading(other, 7, t0)
	jsPublishJSON(t, js, model.ReadingSubject(other, r.DeviceID), r)
	c, err := js.Consumer(context.Background(), model.StreamReadings, DefaultDurable)
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the late reading fetched into a batch", func() bool {
		info, err := c.Info(context.Background())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 3
	})
	erased.add(late)
	fenced := make(chan error, 1)
	go func() { fenced <- w.Fence(context.Background()) }()
	select {
	case err := <-fenced:
		t.Fatalf("Fence returned (%v) while a write that began before it was in progress", err)
	case <-time.After(100 * time.Millisecond):
	}
	store.mu.Lock()
	store.hold = nil
	store.mu.Unlock()
	close(release)
	if err := <-fenced; err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "readings acked", func() bool { return writerSettled(t, js, model.StreamReadings) })
	if n := store.has("resident_id=" + late); n != 0 {
		t.Errorf("the reading of a resident erased while it was in hand was written (%d lines)", n)
	}
	if n := store.has("resident_id=" + other); n != 2 {
		t.Errorf("%d lines of the other resident, want 2", n)
	}
	if got := w.dropped.With(model.StreamReadings, DropErasedResident).Value(); got != 2 {
		t.Errorf("erased_resident drops = %v, want 2", got)
	}
}
