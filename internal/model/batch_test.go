package model

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"
)

// TestReadingBatchJSON: a batch is {"readings":[...]} as encoding/json
// writes it, and UnmarshalReadings reads both shapes of contract §3, in
// order, whoever wrote them; a resident called "batch" is no problem
// because the shape is read from the body.
func TestReadingBatchJSON(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 9, 0, 0, 123e6, time.UTC)
	rs := []Reading{
		{ResidentID: "r1", HomeID: "h1", DeviceID: "d1", DeviceKind: "wearable", TS: t0, Values: map[string]float64{"heart_rate": 72, "spo2": 97}},
		{ResidentID: "r1", HomeID: "h1", DeviceID: "d1", DeviceKind: "wearable", TS: t0.Add(time.Second), Values: map[string]float64{"heart_rate": 73}},
		{ResidentID: "r1", HomeID: "h1", DeviceID: "d1", DeviceKind: "wearable", TS: t0.Add(2 * time.Second), Values: map[string]float64{}},
	}
	b := ReadingBatchJSON(rs)
	std, _ := json.Marshal(ReadingBatch{Readings: rs})
	if string(b) != string(std) {
		t.Fatalf("batch JSON\n%s\nencoding/json\n%s", b, std)
	}
	got, err := UnmarshalReadings(b, nil)
	if err != nil || !reflect.DeepEqual(got, rs) {
		t.Fatalf("fast path: %v, %+v", err, got)
	}
	// Another publisher's layout takes encoding/json.
	indented, _ := json.MarshalIndent(ReadingBatch{Readings: rs}, "", "  ")
	got, err = UnmarshalReadings(indented, nil)
	if err != nil || !reflect.DeepEqual(got, rs) {
		t.Fatalf("slow path: %v, %+v", err, got)
	}
	// A single reading, even of a resident called "batch".
	one := rs[0]
	one.ResidentID = "batch"
	got, err = UnmarshalReadings(ReadingJSON(&one), nil)
	if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], one) {
		t.Fatalf("single: %v, %+v", err, got)
	}
	for _, bad := range []string{`{"readings":[]}`, `{"readings":[{"resident_id":"r1"},`, `[1]`, `{"readings":{}}`} {
		if _, err := UnmarshalReadings([]byte(bad), nil); err == nil {
			t.Errorf("%s decoded without error", bad)
		}
	}
	if _, err := UnmarshalReadings([]byte(`{"readings":[]}`), nil); !errors.Is(err, ErrEmptyBatch) {
		t.Errorf("empty batch: %v", err)
	}
	if ReadingBatchSubject("r1") != "care.readings.batch.r1" {
		t.Error(ReadingBatchSubject("r1"))
	}
}
