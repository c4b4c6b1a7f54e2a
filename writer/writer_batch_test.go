package writer

import (
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
