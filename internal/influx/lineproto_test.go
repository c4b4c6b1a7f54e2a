package influx

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/carehub/carehub/internal/model"
)

var ts = time.Date(2026, 11, 25, 9, 30, 0, 123_000_000, time.UTC) // 1795599000123 ms

func ptr(f float64) *float64 { return &f }

func TestEncodeReading(t *testing.T) {
	base := model.Reading{ResidentID: "r1", HomeID: "h1", DeviceID: "d1", DeviceKind: "wearable", TS: ts}
	with := func(f func(*model.Reading)) model.Reading { r := base; f(&r); return r }
	tests := []struct {
		name string
		r    model.Reading
		want string
		err  error
	}{
		{"fields sorted, tags sorted, ms time",
			with(func(r *model.Reading) {
				r.Values = map[string]float64{"spo2": 97, "heart_rate": 72.5, "body_temp": 36.6}
			}),
			"readings,device_id=d1,device_kind=wearable,home_id=h1,resident_id=r1 body_temp=36.6,heart_rate=72.5,spo2=97 1795599000123\n", nil},
		{"non-finite values left out",
			with(func(r *model.Reading) { r.Values = map[string]float64{"a": math.NaN(), "b": math.Inf(1), "c": -3e-7} }),
			"readings,device_id=d1,device_kind=wearable,home_id=h1,resident_id=r1 c=-3e-07 1795599000123\n", nil},
		{"empty tag left out",
			with(func(r *model.Reading) { r.DeviceKind = ""; r.Values = map[string]float64{"lux": 200000} }),
			"readings,device_id=d1,home_id=h1,resident_id=r1 lux=200000 1795599000123\n", nil},
		{"comma, equals and space escaped in tags and field keys",
			with(func(r *model.Reading) { r.DeviceID = `a,b=c d`; r.Values = map[string]float64{"x y,z=w": 1} }),
			`readings,device_id=a\,b\=c\ d,device_kind=wearable,home_id=h1,resident_id=r1 x\ y\,z\=w=1 1795599000123` + "\n", nil},
		{"utf-8 and quotes pass through",
			with(func(r *model.Reading) { r.HomeID = `집"1`; r.Values = map[string]float64{"v": 1} }),
			`readings,device_id=d1,device_kind=wearable,home_id=집"1,resident_id=r1 v=1 1795599000123` + "\n", nil},
		{"backslash refused", with(func(r *model.Reading) { r.ResidentID = `r\`; r.Values = map[string]float64{"v": 1} }), "", ErrBadKey},
		{"newline refused", with(func(r *model.Reading) { r.ResidentID = "r\n1"; r.Values = map[string]float64{"v": 1} }), "", ErrBadKey},
		{"invalid utf-8 refused", with(func(r *model.Reading) { r.ResidentID = "r\xff"; r.Values = map[string]float64{"v": 1} }), "", ErrBadKey},
		{"newline in field key refused", with(func(r *model.Reading) { r.Values = map[string]float64{"v\n": 1} }), "", ErrBadKey},
		{"no values", with(func(r *model.Reading) { r.Values = nil }), "", ErrNoFields},
		{"only NaN", with(func(r *model.Reading) { r.Values = map[string]float64{"v": math.NaN()} }), "", ErrNoFields},
		{"zero time", with(func(r *model.Reading) { r.TS = time.Time{}; r.Values = map[string]float64{"v": 1} }), "", ErrNoTime},
		{"time beyond 2262", with(func(r *model.Reading) {
			r.TS = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)
			r.Values = map[string]float64{"v": 1}
		}), "", ErrNoTime},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("keep\n")
			got, err := EncodeReading(prefix, tt.r)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if string(got) != "keep\n"+tt.want {
				t.Fatalf("got  %q\nwant %q", got, "keep\n"+tt.want)
			}
			if app := AppendReading([]byte("keep\n"), tt.r); string(app) != "keep\n"+tt.want {
				t.Fatalf("AppendReading = %q", app)
			}
		})
	}
}

func TestEncodeEventStatusAlert(t *testing.T) {
	ev := AppendEvent(nil, model.Event{ResidentID: "r1", HomeID: "h1", DeviceID: "d1", DeviceKind: "sos", TS: ts, Type: "sos"})
	if want := "events,device_id=d1,home_id=h1,resident_id=r1,type=sos value=1 1795599000123\n"; string(ev) != want {
		t.Errorf("event\n got %q\nwant %q", ev, want)
	}
	st := AppendStatus(nil, model.Status{ResidentID: "r1", HomeID: "h1", DeviceID: "d1", TS: ts, Online: true, BatteryPct: ptr(87), RSSIdBm: ptr(-61)})
	if want := "device_status,device_id=d1,home_id=h1 battery_pct=87,online=true,rssi_dbm=-61 1795599000123\n"; string(st) != want {
		t.Errorf("status\n got %q\nwant %q", st, want)
	}
	lw := AppendStatus(nil, model.Status{HomeID: "h1", DeviceID: "d1", TS: ts})
	if want := "device_status,device_id=d1,home_id=h1 online=false 1795599000123\n"; string(lw) != want {
		t.Errorf("last will\n got %q\nwant %q", lw, want)
	}
	al := AppendAlert(nil, AlertPoint{ResidentID: "r1", Rule: "heart_rate", Severity: "high", Transition: "raised", TS: ts, Value: 131, SecondsSinceRaised: 0})
	if want := "alerts,resident_id=r1,rule=heart_rate,severity=high,transition=raised seconds_since_raised=0,value=131 1795599000123\n"; string(al) != want {
		t.Errorf("alert\n got %q\nwant %q", al, want)
	}
	if _, err := EncodeEvent(nil, model.Event{ResidentID: "r1", Type: "so\ns", TS: ts}); !errors.Is(err, ErrBadKey) {
		t.Errorf("event with newline in type: err = %v", err)
	}
	if _, err := EncodeAlert(nil, AlertPoint{ResidentID: "r1", TS: ts, Value: math.NaN()}); !errors.Is(err, ErrNoFields) {
		t.Errorf("alert with NaN: err = %v", err)
	}
}

func TestAppendReadingAllocations(t *testing.T) {
	r := model.Reading{ResidentID: "r1", HomeID: "h1", DeviceID: "d1", DeviceKind: "wearable", TS: ts,
		Values: map[string]float64{"heart_rate": 72, "spo2": 97, "body_temp": 36.6}}
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() { buf = AppendReading(buf[:0], r) })
	if allocs > 0 {
		t.Fatalf("AppendReading allocates %.0f times per reading, want 0", allocs)
	}
}

func BenchmarkAppendReading(b *testing.B) {
	r := model.Reading{ResidentID: "r-00042", HomeID: "h-00042", DeviceID: "wear-00042", DeviceKind: "wearable", TS: ts,
		Values: map[string]float64{"heart_rate": 72, "spo2": 97, "body_temp": 36.6}}
	buf := make([]byte, 0, 1<<20)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendReading(buf[:0], r)
	}
	b.SetBytes(int64(len(buf)))
}
