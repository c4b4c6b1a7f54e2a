package writer

import (
	"context"
	"testing"
	"time"

	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/testenv"
)

// TestWriterStoresBatches (contract §3, issue 9 item 7): a batch on
// care.readings.batch.{partition} is stored as one point per reading, next
// to single readings; a batch with a reading that makes no point, or
// without readings, is set aside whole as a dead letter.
func TestWriterStoresBatches(t *testing.T) {
	js, _ := writerJS(t)
	in := testenv.SharedInflux(t)
	store, db := openWriterInflux(t, in)
	startWriter(t, Options{JS: js, Store: store, BatchSize: 100, BatchInterval: 50 * time.Millisecond})

	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	var rs []model.Reading
	for i := range 250 {
		rs = append(rs, testReading("rb", i, t0))
	}
	jsPublishRaw(t, js, model.ReadingBatchSubject("rb"), model.ReadingBatchJSON(rs[:200]))
	for i := 200; i < 250; i++ {
		jsPublishRaw(t, js, model.ReadingSubject("rb", "wear-rb"), model.ReadingJSON(&rs[i]))
	}
	// Another publisher's layout (spaces, other key order) is a batch too.
	jsPublishRaw(t, js, model.ReadingBatchSubject("rc"), []byte(`{ "readings": [
		{"values": {"heart_rate": 71}, "ts": "`+t0.Format(time.RFC3339Nano)+`", "device_id": "wear-rc", "resident_id": "rc", "home_id": "h-rc", "device_kind": "wearable"},
		{"values": {"heart_rate": 72}, "ts": "`+t0.Add(time.Second).Format(time.RFC3339Nano)+`", "device_id": "wear-rc", "resident_id": "rc", "home_id": "h-rc", "device_kind": "wearable"}]}`))
	bad := testReading("rd", 0, t0)
	bad.DeviceID = "Not An Id"
	jsPublishRaw(t, js, model.ReadingBatchSubject("rd"), model.ReadingBatchJSON([]model.Reading{testReading("rd", 1, t0), bad}))
	jsPublishRaw(t, js, model.ReadingBatchSubject("re"), []byte(`{"readings":[]}`))

	testenv.WaitFor(t, 30*time.Second, "all readings acked", func() bool { return writerSettled(t, js, model.StreamReadings) })
	if got := influxCount(t, in, db, `SELECT count(heart_rate) FROM readings WHERE resident_id='rb'`); got != 250 {
		t.Fatalf("%d heart_rate points of the batch and singles, want 250", got)
	}
	if got := influxCount(t, in, db, `SELECT count(heart_rate) FROM readings WHERE resident_id='rc'`); got != 2 {
		t.Fatalf("%d points of the foreign batch, want 2", got)
	}
	if got := influxCount(t, in, db, `SELECT count(heart_rate) FROM readings WHERE resident_id='rd'`); got != 0 {
		t.Fatalf("%d points of the batch with a bad reading, want 0 (set aside whole)", got)
	}
	dls := fetchDeadLetters(t, js, 2)
	for _, dl := range dls {
		if dl.Reason != DeadReasonNotPoint || dl.Stream != model.StreamReadings {
			t.Errorf("dead letter %+v", dl)
		}
	}
}

// samePartition returns n resident ids of one reading partition and one of
// another.
func samePartition(n int) (ids []string, other string) {
	ids = []string{testenv.ID("r")}
	p := model.ReadingPartition(ids[0])
	for len(ids) < n || other == "" {
		id := testenv.ID("r")
		switch {
		case model.ReadingPartition(id) != p:
			if other == "" {
				other = id
			}
		case len(ids) < n:
			ids = append(ids, id)
		}
	}
	return ids, other
}

// TestWriterPartitionBatches (issue 14 item 2): a partition batch holds
// several residents' readings. Each is stored once, also when the same
// batch is delivered twice (points are idempotent by series and time); a
// reading of a resident of another partition drops the whole message as
// forged; an erased resident's readings are left out and the others'
// stored.
func TestWriterPartitionBatches(t *testing.T) {
	js, _ := writerJS(t)
	in := testenv.SharedInflux(t)
	store, db := openWriterInflux(t, in)
	erased := &erasedSet{ids: map[string]bool{}}
	w, _ := startWriter(t, Options{JS: js, Store: store, BatchSize: 100, BatchInterval: 20 * time.Millisecond, Erased: erased.Erased})
	ids, other := samePartition(3)
	a, b, gone := ids[0], ids[1], ids[2]
	subject := model.ReadingPartitionSubject(model.ReadingPartition(a))
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)

	var rs []model.Reading
	for i := range 10 {
		rs = append(rs, testReading(a, i, t0), testReading(b, i, t0))
	}
	body := model.ReadingBatchJSON(rs)
	jsPublishRaw(t, js, subject, body)
	jsPublishRaw(t, js, subject, body) // published again after a lost PubAck
	jsPublishRaw(t, js, subject, model.ReadingBatchJSON([]model.Reading{testReading(a, 20, t0), testReading(other, 20, t0)}))
	erased.add(gone)
	jsPublishRaw(t, js, subject, model.ReadingBatchJSON([]model.Reading{testReading(gone, 30, t0), testReading(b, 30, t0)}))

	testenv.WaitFor(t, 30*time.Second, "all readings acked", func() bool { return writerSettled(t, js, model.StreamReadings) })
	for rid, want := range map[string]int{a: 10, b: 11, gone: 0, other: 0} {
		if got := influxCount(t, in, db, `SELECT count(heart_rate) FROM readings WHERE resident_id='`+rid+`'`); got != want {
			t.Errorf("%d heart_rate points of %s, want %d", got, rid, want)
		}
	}
	if got := w.dropped.With(model.StreamReadings, DropSubjectMismatch).Value(); got != 1 {
		t.Errorf("subject_mismatch drops = %v, want 1", got)
	}
}

// TestWriterPartitionBatchErasedInHand: a partition batch already encoded
// when one of its residents is erased is handed back, not dropped, and
// stored again without the erased resident's readings.
func TestWriterPartitionBatchErasedInHand(t *testing.T) {
	js, _ := writerJS(t)
	store := newHeldStore()
	erased := &erasedSet{ids: map[string]bool{}}
	w, _ := startWriter(t, Options{JS: js, Store: store, BatchSize: 100, BatchInterval: 20 * time.Millisecond, Erased: erased.Erased})
	ids, _ := samePartition(3)
	first, late, kept := ids[0], ids[1], ids[2]
	subject := model.ReadingPartitionSubject(model.ReadingPartition(late))
	t0 := time.Now()
	release := make(chan struct{})
	store.mu.Lock()
	store.hold = release
	store.mu.Unlock()
	jsPublishRaw(t, js, subject, model.ReadingBatchJSON([]model.Reading{testReading(first, 1, t0)}))
	<-store.writing // the held write began
	jsPublishRaw(t, js, subject, model.ReadingBatchJSON([]model.Reading{testReading(late, 2, t0), testReading(kept, 2, t0)}))
	c, err := js.Consumer(context.Background(), model.StreamReadings, DefaultDurable)
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the mixed batch fetched", func() bool {
		info, err := c.Info(context.Background())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 2
	})
	erased.add(late)
	fenced := make(chan error, 1)
	go func() { fenced <- w.Fence(context.Background()) }()
	store.mu.Lock()
	store.hold = nil
	store.mu.Unlock()
	close(release)
	if err := <-fenced; err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the kept resident's reading written", func() bool { return store.has("resident_id="+kept) == 1 })
	testenv.WaitFor(t, 10*time.Second, "readings acked", func() bool { return writerSettled(t, js, model.StreamReadings) })
	if n := store.has("resident_id=" + late); n != 0 {
		t.Errorf("%d lines of the resident erased while their batch was in hand", n)
	}
}
