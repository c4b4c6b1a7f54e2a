package model

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"
)

func TestReadingJSONRoundTrip(t *testing.T) {
	readings := []Reading{
		{ResidentID: "r1", HomeID: "h1", DeviceID: "d-1", DeviceKind: "wearable",
			TS: time.Date(2026, 11, 25, 9, 0, 0, 123000000, time.UTC), Values: map[string]float64{"heart_rate": 72, "spo2": 97.5, "body_temp": 36.65}},
		{ResidentID: "r_2", HomeID: "h2", DeviceID: "d2", DeviceKind: "env",
			TS: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Values: map[string]float64{"lux": 150000, "co2": 1e-7}},
		{ResidentID: "r3", HomeID: "h3", DeviceID: "d3", DeviceKind: "motion", TS: time.Unix(0, 0).UTC(), Values: map[string]float64{}},
	}
	for _, r := range readings {
		b := AppendReadingJSON(nil, &r)
		std, _ := json.Marshal(r)
		if string(b) != string(std) {
			t.Errorf("AppendReadingJSON = %s\nencoding/json  = %s", b, std)
		}
		// ReadingJSON sizes its buffer: the same bytes, and no growing.
		if sized := ReadingJSON(&r); string(sized) != string(b) {
			t.Errorf("ReadingJSON = %s, want %s", sized, b)
		}
		if n := testing.AllocsPerRun(100, func() { _ = ReadingJSON(&r) }); n > 1 {
			t.Errorf("ReadingJSON: %v allocations, want 1", n)
		}
		var fast Reading
		if !fastReading(b, &fast) {
			t.Fatalf("fast path refused its own encoding: %s", b)
		}
		var slow Reading
		if err := json.Unmarshal(b, &slow); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Errorf("fast %+v != encoding/json %+v", fast, slow)
		}
	}
}

// TestUnmarshalReadingFallback: other publishers' layouts decode as
// encoding/json decodes them.
func TestUnmarshalReadingFallback(t *testing.T) {
	for _, in := range []string{
		`{"ts":"2026-11-25T09:00:00Z","resident_id":"r1","home_id":"h1","device_id":"d1","device_kind":"bp","values":{"systolic_bp":120}}`,
		`{"resident_id":"r\u0031","home_id":"h1","device_id":"d1","device_kind":"bp","ts":"2026-11-25T09:00:00Z","values":{"systolic_bp":120}}`,
		`{"resident_id":"r1","home_id":"h1","device_id":"d1","device_kind":"bp","ts":"2026-11-25T09:00:00Z","values":{"a":1,"a":2}}`,
		`{"resident_id":"r1","home_id":"h1","device_id":"d1","device_kind":"bp","ts":"2026-11-25T09:00:00Z","values":{"a":1},"extra":true}`,
	} {
		var got, want Reading
		errGot := UnmarshalReading([]byte(in), &got)
		errWant := json.Unmarshal([]byte(in), &want)
		if (errGot == nil) != (errWant == nil) || !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %+v (%v)\nwant %+v (%v)", in, got, errGot, want, errWant)
		}
	}
}

func FuzzUnmarshalReading(f *testing.F) {
	r := Reading{ResidentID: "r1", HomeID: "h1", DeviceID: "d1", DeviceKind: "wearable", TS: time.Now().UTC(), Values: map[string]float64{"heart_rate": 70}}
	f.Add(AppendReadingJSON(nil, &r))
	f.Add([]byte(`{"resident_id":"r1","home_id":"h1","device_id":"d1","device_kind":"x","ts":"bad","values":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var fast Reading
		if !fastReading(data, &fast) {
			return
		}
		var slow Reading
		if err := json.Unmarshal(data, &slow); err != nil {
			t.Fatalf("fast path accepted what encoding/json refuses (%v): %q", err, data)
		}
		for k, v := range slow.Values {
			if fv, ok := fast.Values[k]; !ok || (fv != v && !(math.IsNaN(fv) && math.IsNaN(v))) {
				t.Fatalf("values differ: fast %v slow %v for %q", fast.Values, slow.Values, data)
			}
		}
		if fast.ResidentID != slow.ResidentID || fast.DeviceID != slow.DeviceID || !fast.TS.Equal(slow.TS) || len(fast.Values) != len(slow.Values) {
			t.Fatalf("fast %+v != slow %+v for %q", fast, slow, data)
		}
	})
}

func BenchmarkUnmarshalReading(b *testing.B) {
	r := Reading{ResidentID: "r1", HomeID: "h1", DeviceID: "d1", DeviceKind: "wearable", TS: time.Now().UTC(), Values: map[string]float64{"heart_rate": 70, "spo2": 97, "resp_rate": 15}}
	data := AppendReadingJSON(nil, &r)
	b.ReportAllocs()
	for b.Loop() {
		var out Reading
		if err := UnmarshalReading(data, &out); err != nil {
			b.Fatal(err)
		}
	}
}
