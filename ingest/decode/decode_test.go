package decode

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/model"
)

// decodeNow is the arrival time of every decoded message in these tests:
// 2025-06-01T12:00:00Z, Unix 1748779200.
var decodeNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// decodeLim are the contract's default limits (contract §1, config).
var decodeLim = Limits{MaxPayload: 64 << 10, MaxFuture: 5 * time.Minute, MaxAge: 90 * 24 * time.Hour}

// at returns decodeNow moved by d.
func decodeAt(d time.Duration) time.Time { return decodeNow.Add(d) }

// wantDecodeReject is what a test expects of one Reject: reason, metric and a
// piece of the detail (empty: not checked).
type wantDecodeReject struct {
	reason, metric, detail string
}

// payload returns s, or the content of testdata/s[1:] when s starts with '@'.
func decodePayload(t testing.TB, s string) []byte {
	t.Helper()
	if !strings.HasPrefix(s, "@") {
		return []byte(s)
	}
	b, err := os.ReadFile(filepath.Join("testdata", s[1:]))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func checkDecodeRejects(t *testing.T, got []Reject, want []wantDecodeReject) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d rejects, want %d:\n%s", len(got), len(want), fmtDecodeRejects(got))
	}
	for i, w := range want {
		g := got[i]
		if g.Reason != w.reason || g.Metric != w.metric || !strings.Contains(g.Detail, w.detail) {
			t.Errorf("reject %d = %+v, want reason %q metric %q detail containing %q", i, g, w.reason, w.metric, w.detail)
		}
		if len(g.Detail) > 300 {
			t.Errorf("reject %d detail is %d bytes: %q", i, len(g.Detail), g.Detail)
		}
	}
}

func fmtDecodeRejects(rs []Reject) string {
	var b strings.Builder
	for _, r := range rs {
		b.WriteString("  " + r.Reason + " [" + r.Metric + "] " + r.Detail + "\n")
	}
	return b.String()
}

func checkDecodeSamples(t *testing.T, got, want []Sample) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d samples %v, want %d %v", len(got), got, len(want), want)
	}
	for i := range want {
		if !got[i].TS.Equal(want[i].TS) {
			t.Errorf("sample %d ts = %s, want %s", i, got[i].TS.Format(time.RFC3339Nano), want[i].TS.Format(time.RFC3339Nano))
		}
		if got[i].TS.Location() != time.UTC {
			t.Errorf("sample %d ts %s is not UTC", i, got[i].TS)
		}
		if len(got[i].Values) != len(want[i].Values) {
			t.Errorf("sample %d values = %v, want %v", i, got[i].Values, want[i].Values)
			continue
		}
		for k, w := range want[i].Values {
			if g, ok := got[i].Values[k]; !ok || math.Abs(g-w) > 1e-9 {
				t.Errorf("sample %d %s = %v (present %v), want %v", i, k, g, ok, w)
			}
		}
	}
}

type decodeVals = map[string]float64

func TestDecodeTelemetry(t *testing.T) {
	tests := []struct {
		name     string
		device   string
		payload  string // '@' = file in testdata
		ct       string
		lim      *Limits
		want     []Sample
		rejects  []wantDecodeReject
		nSamples int // when want is nil: only the count is checked
	}{
		{name: "object, ts absent = arrival", payload: `{"values":{"heart_rate":72,"spo2":97}}`,
			want: []Sample{{TS: decodeNow, Values: decodeVals{"heart_rate": 72, "spo2": 97}}}},
		{name: "object, RFC 3339 ts", payload: `{"ts":"2025-06-01T11:59:30.5Z","values":{"heart_rate":72}}`,
			want: []Sample{{TS: decodeAt(-29500 * time.Millisecond), Values: decodeVals{"heart_rate": 72}}}},
		{name: "object, RFC 3339 with offset", payload: `{"values":{"co2":800},"ts":"2025-06-01T20:59:00+09:00"}`,
			want: []Sample{{TS: decodeAt(-time.Minute), Values: decodeVals{"co2": 800}}}},
		{name: "object, Unix ms ts", payload: `{"ts":1748779140000,"values":{"glucose":104.5}}`,
			want: []Sample{{TS: decodeAt(-time.Minute), Values: decodeVals{"glucose": 104.5}}}},
		{name: "object, ts null = arrival", payload: `{"ts":null,"values":{"lux":300}}`,
			want: []Sample{{TS: decodeNow, Values: decodeVals{"lux": 300}}}},
		{name: "booleans are 0/1", payload: `{"values":{"presence":true,"door_open":false,"in_bed":1}}`,
			want: []Sample{{TS: decodeNow, Values: decodeVals{"presence": 1, "door_open": 0, "in_bed": 1}}}},
		{name: "range bounds are inclusive", payload: `{"values":{"heart_rate":20,"spo2":100,"room_temp":-20}}`,
			want: []Sample{{TS: decodeNow, Values: decodeVals{"heart_rate": 20, "spo2": 100, "room_temp": -20}}}},
		{name: "unknown members ignored, escaped key decoded", payload: `{"seq":7,"values":{"heart\u005frate":72},"fw":"x"}`,
			want: []Sample{{TS: decodeNow, Values: decodeVals{"heart_rate": 72}}}},
		{name: "half-valid object keeps valid values", payload: "@half_valid.json",
			want: []Sample{{TS: decodeAt(-time.Minute), Values: decodeVals{"heart_rate": 72, "in_bed": 1, "door_open": 0}}},
			rejects: []wantDecodeReject{
				{model.ReasonNotFinite, "spo2", `spo2="NaN"`},
				{model.ReasonBadValue, "body_temp", `body_temp is the string "36.6"; send a JSON number`},
				{model.ReasonOutOfRange, "resp_rate", "resp_rate=90 outside 2–80 /min"},
				{model.ReasonUnknownMetric, "mood", `unknown metric "mood"`},
				{model.ReasonBadValue, "glucose", "glucose is null"},
				{model.ReasonBadValue, "weight", "weight is an object"},
				{model.ReasonOutOfRange, "steps", "steps=+Inf outside 0–100000 count"},
			}},
		{name: "array catching up", payload: "@catchup_array.json",
			want: []Sample{
				{TS: decodeAt(-10 * time.Minute), Values: decodeVals{"heart_rate": 71, "spo2": 97}},
				{TS: decodeAt(-9 * time.Minute), Values: decodeVals{"heart_rate": 73, "spo2": 96}},
				{TS: time.Date(2025, 6, 1, 2, 52, 0, 250e6, time.UTC), Values: decodeVals{"heart_rate": 74}},
				{TS: decodeAt(-7 * time.Minute), Values: decodeVals{"spo2": 98}},
				{TS: decodeNow, Values: decodeVals{"heart_rate": 76, "steps": 12}},
			},
			rejects: []wantDecodeReject{
				{model.ReasonOutOfRange, "heart_rate", "record 3: heart_rate=300 outside 20–250 /min"},
				{model.ReasonFuture, "", "record 4: time 2025-06-01T12:30:00Z is 30m0s ahead"},
			}},
		{name: "array with a non-object", payload: `[{"values":{"steps":5}},42]`,
			want:    []Sample{{TS: decodeNow, Values: decodeVals{"steps": 5}}},
			rejects: []wantDecodeReject{{model.ReasonMalformed, "", "record 1 is a number"}}},
		{name: "array empty", payload: `[]`, rejects: []wantDecodeReject{{model.ReasonNoValues, "", "no records"}}},
		{name: "values empty", payload: `{"ts":1748779140000,"values":{}}`, rejects: []wantDecodeReject{{model.ReasonNoValues, "", `"values" is empty`}}},
		{name: "values missing", payload: `{"heart_rate":72}`, rejects: []wantDecodeReject{{model.ReasonNoValues, "", `no "values" object`}}},
		{name: "values not an object", payload: `{"values":[72]}`, rejects: []wantDecodeReject{{model.ReasonMalformed, "", `"values" is an array`}}},
		{name: "all values bad: no no_values", payload: `{"values":{"heart_rate":0,"x":1}}`,
			rejects: []wantDecodeReject{{model.ReasonOutOfRange, "heart_rate", "heart_rate=0 outside"}, {model.ReasonUnknownMetric, "x", ""}}},
		{name: "not finite spellings", payload: `{"values":{"heart_rate":"Inf","spo2":"-infinity","co2":"nan","lux":"+INF"}}`,
			rejects: []wantDecodeReject{{model.ReasonNotFinite, "heart_rate", ""}, {model.ReasonNotFinite, "spo2", ""}, {model.ReasonNotFinite, "co2", ""}, {model.ReasonNotFinite, "lux", ""}}},
		{name: "bad timestamp string", payload: `{"ts":"yesterday","values":{"heart_rate":72,"spo2":97}}`,
			rejects: []wantDecodeReject{{model.ReasonBadTimestamp, "", `ts "yesterday" is not RFC 3339`}}},
		{name: "bad timestamp kind", payload: `{"ts":true,"values":{"heart_rate":72}}`,
			rejects: []wantDecodeReject{{model.ReasonBadTimestamp, "", "ts is a boolean"}}},
		{name: "future beyond 5 min", payload: `{"ts":"2025-06-01T12:05:01Z","values":{"heart_rate":72}}`,
			rejects: []wantDecodeReject{{model.ReasonFuture, "", "at most 5m0s"}}},
		{name: "future within 5 min", payload: `{"ts":"2025-06-01T12:05:00Z","values":{"heart_rate":72}}`,
			want: []Sample{{TS: decodeAt(5 * time.Minute), Values: decodeVals{"heart_rate": 72}}}},
		{name: "too old", payload: `{"ts":"2025-01-01T00:00:00Z","values":{"heart_rate":72}}`,
			rejects: []wantDecodeReject{{model.ReasonTooOld, "", "older than the 2160h0m0s kept"}}},
		{name: "Unix seconds by mistake", payload: `{"ts":1748779140,"values":{"heart_rate":72}}`,
			rejects: []wantDecodeReject{{model.ReasonTooOld, "", "looks like Unix seconds"}}},
		{name: "huge ms", payload: `{"ts":1e300,"values":{"heart_rate":72}}`,
			rejects: []wantDecodeReject{{model.ReasonFuture, "", "far in the future"}}},
		{name: "no age limit when MaxAge is 0", payload: `{"ts":"2001-01-01T00:00:00Z","values":{"steps":1}}`,
			lim:  &Limits{MaxFuture: time.Minute},
			want: []Sample{{TS: time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC), Values: decodeVals{"steps": 1}}}},
		{name: "empty", payload: ``, rejects: []wantDecodeReject{{model.ReasonEmpty, "", "empty"}}},
		{name: "too large before parsing", payload: `{"values":{"steps":1}}  `, lim: &Limits{MaxPayload: 20},
			rejects: []wantDecodeReject{{model.ReasonTooLarge, "", "24 bytes; at most 20"}}},
		{name: "malformed names the offset", payload: `{"values":{"heart_rate":72,}}`,
			rejects: []wantDecodeReject{{model.ReasonMalformed, "", "invalid JSON at byte offset 28: invalid character '}'"}}},
		{name: "malformed truncated", payload: `{"values":{"heart_rate":7`,
			rejects: []wantDecodeReject{{model.ReasonMalformed, "", "invalid JSON at byte offset 25: unexpected end of JSON input"}}},
		{name: "not an object or array", payload: `"hello"`, rejects: []wantDecodeReject{{model.ReasonMalformed, "", "telemetry is a string"}}},
		{name: "SenML content type, object", payload: `{"values":{"steps":1}}`, ct: "application/senml+json",
			rejects: []wantDecodeReject{{model.ReasonMalformed, "", "a SenML pack is a JSON array"}}},

		// SenML (RFC 8428).
		{name: "SenML wearable: bn, bt, bu, units, Far, merge", device: "band-7", payload: "@senml_wearable.json",
			want: []Sample{
				{TS: decodeAt(-time.Minute), Values: decodeVals{"heart_rate": 72, "resp_rate": 16, "spo2": 97, "body_temp": 37}},
				{TS: decodeAt(-30 * time.Second), Values: decodeVals{"heart_rate": 74, "steps": 120}},
			}},
		{name: "SenML relative times, K and %RH, vb", device: "env-1", payload: "@senml_env_relative.json",
			want: []Sample{
				{TS: decodeNow, Values: decodeVals{"room_temp": 22, "humidity": 45, "co2": 612, "presence": 1}},
				{TS: decodeAt(-time.Minute), Values: decodeVals{"room_temp": 21.5}},
			}},
		{name: "SenML hostile records", device: "env-1", payload: "@senml_hostile.json",
			want: []Sample{{TS: decodeAt(-time.Minute), Values: decodeVals{"room_temp": 20}}},
			rejects: []wantDecodeReject{
				{model.ReasonUnitMismatch, "humidity", `humidity in "%EL"; send %`},
				{model.ReasonUnitMismatch, "spo2", `spo2 in "%RH"`},
				{model.ReasonBadValue, "co2", `"vs"`},
				{model.ReasonBadValue, "lux", `"vd"`},
				{model.ReasonBadValue, "lux", "has no value"},
				{model.ReasonBadValue, "lux", "more than one"},
				{model.ReasonMalformed, "", `must-understand field "foo_"`},
				{model.ReasonUnknownMetric, "sound_db", `unknown metric "sound_db"`},
				{model.ReasonBadTimestamp, "", "record 9: t is not a number"},
				{model.ReasonFuture, "", "record 10: time 2025-06-01T12:59:00Z"},
				{model.ReasonTopicNotAllowed, "", `record 11: name "urn:dev:care:other-dev:room_temp" is not of device env-1`},
			}},
		{name: "SenML without bn, by content type", device: "d1", ct: "application/senml+json; charset=utf-8",
			payload: `[{"n":"weight","u":"kg","v":71.2,"t":-5}]`,
			want:    []Sample{{TS: decodeAt(-5 * time.Second), Values: decodeVals{"weight": 71.2}}}},
		{name: "SenML absolute t, no bt", device: "d1", payload: `[{"n":"weight","v":71.2,"t":1748779170.25}]`,
			want: []Sample{{TS: decodeAt(-29750 * time.Millisecond), Values: decodeVals{"weight": 71.2}}}},
		{name: "SenML bv base value", device: "d1", payload: `[{"bn":"urn:dev:care:d1:","bv":1000,"n":"steps","v":5},{"n":"steps","t":-1,"v":7}]`,
			want: []Sample{{TS: decodeNow, Values: decodeVals{"steps": 1005}}, {TS: decodeAt(-time.Second), Values: decodeVals{"steps": 1007}}}},
		{name: "SenML full name in n", device: "d1", payload: `[{"n":"urn:dev:care:d1:spo2","v":95}]`,
			want: []Sample{{TS: decodeNow, Values: decodeVals{"spo2": 95}}}},
		{name: "SenML foreign bn", device: "d1", payload: `[{"bn":"urn:dev:care:d2:","n":"spo2","v":95},{"n":"heart_rate","v":60}]`,
			rejects: []wantDecodeReject{{model.ReasonTopicNotAllowed, "", "record 0"}, {model.ReasonTopicNotAllowed, "", "record 1"}}},
		{name: "SenML other urn is an unknown metric", device: "d1", payload: `[{"bn":"urn:dev:mac:0024be:","n":"spo2","v":95}]`,
			rejects: []wantDecodeReject{{model.ReasonUnknownMetric, "urn:dev:mac:0024be:spo2", "bn urn:dev:care:{device_id}: or absent"}}},
		{name: "SenML out of range after conversion", device: "d1", payload: `[{"n":"body_temp","u":"Far","v":120}]`,
			rejects: []wantDecodeReject{{model.ReasonOutOfRange, "body_temp", "(converted from Far) outside 30–45 Cel"}}},
		{name: "SenML unit mismatch", device: "d1", payload: `[{"n":"weight","u":"lb","v":150}]`,
			rejects: []wantDecodeReject{{model.ReasonUnitMismatch, "weight", `weight in "lb"; send kg`}}},
		{name: "SenML too old relative", device: "d1", payload: `[{"n":"weight","v":70,"t":-8000000}]`,
			rejects: []wantDecodeReject{{model.ReasonTooOld, "", "older than"}}},
		{name: "SenML opposite infinities", device: "d1", payload: `[{"bt":1e400,"n":"weight","v":70,"t":-1e400}]`,
			rejects: []wantDecodeReject{{model.ReasonBadTimestamp, "", "not a number"}}},
		{name: "SenML base fields only", device: "d1", payload: `[{"bn":"urn:dev:care:d1:","bt":1748779140}]`,
			rejects: []wantDecodeReject{{model.ReasonNoValues, "", "only base fields"}}},
		{name: "SenML record without name", device: "d1", payload: `[{"v":3}]`,
			rejects: []wantDecodeReject{{model.ReasonMalformed, "", "has no name"}}},
		{name: "SenML wrong field type", device: "d1", payload: `[{"n":5,"v":3}]`,
			rejects: []wantDecodeReject{{model.ReasonMalformed, "", "n is a number"}}},
		{name: "SenML record not an object", device: "d1", payload: `[{"n":"steps","v":3},"x"]`,
			want:    []Sample{{TS: decodeNow, Values: decodeVals{"steps": 3}}},
			rejects: []wantDecodeReject{{model.ReasonMalformed, "", "SenML record 1 is a string"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lim := decodeLim
			if tc.lim != nil {
				lim = *tc.lim
			}
			dev := tc.device
			if dev == "" {
				dev = "dev-1"
			}
			samples, rejects := Telemetry(dev, decodePayload(t, tc.payload), tc.ct, decodeNow, lim)
			checkDecodeRejects(t, rejects, tc.rejects)
			checkDecodeSamples(t, samples, tc.want)
		})
	}
}

// TestDecodeTelemetryRejectCap proves a message of junk cannot turn into an
// unbounded number of Rejects: it is cut at maxRejects plus one summary.
func TestDecodeTelemetryRejectCap(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"values":{"heart_rate":72`)
	for i := range 1000 {
		b.WriteString(`,"junk_` + strings.Repeat("x", i%90) + `":1`)
	}
	b.WriteString("}}")
	samples, rejects := Telemetry("d1", []byte(b.String()), "", decodeNow, decodeLim)
	if len(samples) != 1 || samples[0].Values["heart_rate"] != 72 {
		t.Fatalf("samples = %v, want heart_rate 72 kept", samples)
	}
	if len(rejects) != maxRejects+1 {
		t.Fatalf("got %d rejects, want %d", len(rejects), maxRejects+1)
	}
	last := rejects[len(rejects)-1]
	if last.Reason != model.ReasonUnknownMetric || !strings.Contains(last.Detail, "968 more problems") {
		t.Errorf("summary reject = %+v", last)
	}
	for _, r := range rejects {
		if len(r.Metric) > maxMetricLabel || len(r.Detail) > 300 {
			t.Errorf("reject too long: metric %d bytes, detail %d bytes", len(r.Metric), len(r.Detail))
		}
	}
}

func TestDecodeEvent(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    DeviceEvent
		rejects []wantDecodeReject
	}{
		{name: "sos with data", payload: `{"ts":"2025-06-01T11:59:59Z","type":"sos","data":{"button":"pendant", "press_ms":1200}}`,
			want: DeviceEvent{TS: decodeAt(-time.Second), Type: "sos", Data: []byte(`{"button":"pendant", "press_ms":1200}`)}},
		{name: "fall without ts or data", payload: `{"type":"fall"}`, want: DeviceEvent{TS: decodeNow, Type: "fall"}},
		{name: "data null", payload: `{"type":"door_open","ts":1748779199000,"data":null}`, want: DeviceEvent{TS: decodeAt(-time.Second), Type: "door_open"}},
		{name: "unknown type", payload: `{"type":"party"}`, want: DeviceEvent{TS: decodeNow},
			rejects: []wantDecodeReject{{model.ReasonEventType, "", `event type "party" is not one of: sos,`}}},
		{name: "type missing", payload: `{"data":{}}`, want: DeviceEvent{TS: decodeNow, Data: []byte(`{}`)},
			rejects: []wantDecodeReject{{model.ReasonMalformed, "", `no "type"`}}},
		{name: "type not a string", payload: `{"type":1}`, want: DeviceEvent{TS: decodeNow},
			rejects: []wantDecodeReject{{model.ReasonMalformed, "", `"type" is a number`}}},
		{name: "data not an object", payload: `{"type":"sos","data":[1]}`, want: DeviceEvent{TS: decodeNow, Type: "sos"},
			rejects: []wantDecodeReject{{model.ReasonMalformed, "", `"data" is an array`}}},
		{name: "data too large", payload: `{"type":"sos","data":{"x":"` + strings.Repeat("a", maxEventData) + `"}}`, want: DeviceEvent{TS: decodeNow, Type: "sos"},
			rejects: []wantDecodeReject{{model.ReasonTooLarge, "", "at most 4096"}}},
		{name: "future ts", payload: `{"type":"sos","ts":"2025-06-01T13:00:00Z"}`, want: DeviceEvent{TS: decodeNow, Type: "sos"},
			rejects: []wantDecodeReject{{model.ReasonFuture, "", "1h0m0s ahead"}}},
		{name: "bad ts and bad type: both said", payload: `{"type":"SOS","ts":"now"}`, want: DeviceEvent{TS: decodeNow},
			rejects: []wantDecodeReject{{model.ReasonEventType, "", `"SOS"`}, {model.ReasonBadTimestamp, "", `"now"`}}},
		{name: "not an object", payload: `["sos"]`, rejects: []wantDecodeReject{{model.ReasonMalformed, "", "got an array"}}},
		{name: "empty", payload: ``, rejects: []wantDecodeReject{{model.ReasonEmpty, "", ""}}},
		{name: "malformed", payload: `{"type":"sos"`, rejects: []wantDecodeReject{{model.ReasonMalformed, "", "offset 13"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, rejects := Event([]byte(tc.payload), decodeNow, decodeLim)
			checkDecodeRejects(t, rejects, tc.rejects)
			if !ev.TS.Equal(tc.want.TS) || ev.Type != tc.want.Type || string(ev.Data) != string(tc.want.Data) {
				t.Errorf("event = {%s %q %s}, want {%s %q %s}", ev.TS, ev.Type, ev.Data, tc.want.TS, tc.want.Type, tc.want.Data)
			}
		})
	}
	t.Run("every contract event type", func(t *testing.T) {
		for _, typ := range []string{"sos", "sos_cancel", "fall", "fall_cancel", "smoke", "gas", "co", "water_leak",
			"door_open", "door_close", "motion", "bed_exit", "bed_enter", "tamper", "toilet_flush"} {
			ev, rejects := Event([]byte(`{"type":"`+typ+`"}`), decodeNow, decodeLim)
			if len(rejects) != 0 || ev.Type != typ {
				t.Errorf("%s: %+v %v", typ, ev, rejects)
			}
		}
	})
	t.Run("data does not alias the payload", func(t *testing.T) {
		p := []byte(`{"type":"sos","data":{"a":1}}`)
		ev, _ := Event(p, decodeNow, decodeLim)
		copy(p, strings.Repeat("x", len(p)))
		if string(ev.Data) != `{"a":1}` {
			t.Errorf("data changed with the payload buffer: %s", ev.Data)
		}
	})
}

func TestDecodeStatus(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	tests := []struct {
		name    string
		payload string
		want    DeviceStatus
		rejects []wantDecodeReject
	}{
		{name: "full", payload: `{"online":true,"battery_pct":87,"rssi_dbm":-61,"fw":"1.4.2"}`,
			want: DeviceStatus{TS: decodeNow, Online: true, BatteryPct: f(87), RSSIdBm: f(-61), FW: "1.4.2"}},
		{name: "last will", payload: `{"online":false}`, want: DeviceStatus{TS: decodeNow}},
		{name: "nulls are absent, unknown ignored", payload: `{"online":true,"battery_pct":null,"fw":null,"uptime_s":5}`,
			want: DeviceStatus{TS: decodeNow, Online: true}},
		{name: "battery out of range keeps online", payload: `{"online":true,"battery_pct":101,"rssi_dbm":-61}`,
			want:    DeviceStatus{TS: decodeNow, Online: true, RSSIdBm: f(-61)},
			rejects: []wantDecodeReject{{model.ReasonOutOfRange, "battery_pct", "battery_pct=101 outside 0–100 %"}}},
		{name: "rssi out of range", payload: `{"online":true,"rssi_dbm":5}`, want: DeviceStatus{TS: decodeNow, Online: true},
			rejects: []wantDecodeReject{{model.ReasonOutOfRange, "rssi_dbm", "rssi_dbm=5 outside -150–0 dBm"}}},
		{name: "battery a string", payload: `{"online":true,"battery_pct":"87"}`, want: DeviceStatus{TS: decodeNow, Online: true},
			rejects: []wantDecodeReject{{model.ReasonBadValue, "battery_pct", "a string"}}},
		{name: "fw too long", payload: `{"online":true,"fw":"` + strings.Repeat("9", 65) + `"}`, want: DeviceStatus{TS: decodeNow, Online: true},
			rejects: []wantDecodeReject{{model.ReasonBadValue, "fw", "at most 64 bytes"}}},
		{name: "fw with control chars", payload: `{"online":true,"fw":"1.0\n"}`, want: DeviceStatus{TS: decodeNow, Online: true},
			rejects: []wantDecodeReject{{model.ReasonBadValue, "fw", "printable"}}},
		{name: "fw not a string", payload: `{"online":true,"fw":1.4}`, want: DeviceStatus{TS: decodeNow, Online: true},
			rejects: []wantDecodeReject{{model.ReasonBadValue, "fw", "a number"}}},
		{name: "online missing", payload: `{"battery_pct":50}`, rejects: []wantDecodeReject{{model.ReasonMalformed, "", `needs "online"`}}},
		{name: "online not a boolean", payload: `{"online":"true"}`, rejects: []wantDecodeReject{{model.ReasonMalformed, "", `needs "online"`}}},
		{name: "not an object", payload: `true`, rejects: []wantDecodeReject{{model.ReasonMalformed, "", "got a boolean"}}},
		{name: "empty", payload: ``, rejects: []wantDecodeReject{{model.ReasonEmpty, "", ""}}},
		{name: "too large", payload: `{"online":true,"x":"` + strings.Repeat("a", maxStatusPayload) + `"}`,
			rejects: []wantDecodeReject{{model.ReasonTooLarge, "", "at most 4096"}}},
		{name: "malformed", payload: `{online:true}`, rejects: []wantDecodeReject{{model.ReasonMalformed, "", "offset 2"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, rejects := Status([]byte(tc.payload), decodeNow)
			checkDecodeRejects(t, rejects, tc.rejects)
			w := tc.want
			if !st.TS.Equal(w.TS) || st.Online != w.Online || st.FW != w.FW || !eqDecodePtr(st.BatteryPct, w.BatteryPct) || !eqDecodePtr(st.RSSIdBm, w.RSSIdBm) {
				t.Errorf("status = %+v, want %+v", st, w)
			}
		})
	}
}

func eqDecodePtr(a, b *float64) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func TestTopic(t *testing.T) {
	tests := []struct {
		topic, dev, kind string
		ok               bool
	}{
		{"care/v1/dev/band-7/telemetry", "band-7", "telemetry", true},
		{"care/v1/dev/band-7/event", "band-7", "event", true},
		{"care/v1/dev/band-7/status", "band-7", "status", true},
		{"care/v1/dev/band-7/config", "band-7", "config", true},
		{"care/v1/dev/band-7/telemetry/x", "", "", false},
		{"care/v1/dev/band-7/", "", "", false},
		{"care/v1/dev/band-7", "", "", false},
		{"care/v1/dev//telemetry", "", "", false},
		{"care/v1/dev/Band-7/telemetry", "", "", false},
		{"care/v1/dev/-band/telemetry", "", "", false},
		{"care/v1/dev/" + strings.Repeat("a", 65) + "/telemetry", "", "", false},
		{"care/v1/dev/band-7/metrics", "", "", false},
		{"care/v2/dev/band-7/telemetry", "", "", false},
		{"/care/v1/dev/band-7/telemetry", "", "", false},
		{"", "", "", false},
	}
	for _, tc := range tests {
		dev, kind, ok := Topic(tc.topic)
		if dev != tc.dev || kind != tc.kind || ok != tc.ok {
			t.Errorf("Topic(%q) = %q, %q, %v; want %q, %q, %v", tc.topic, dev, kind, ok, tc.dev, tc.kind, tc.ok)
		}
	}
}

// TestEveryReason proves each rejection reason of the decoders is produced
// by some input, so none of the contract's reasons is dead. unknown_device
// and device_disabled are the pipeline's, which knows the registry.
func TestEveryReason(t *testing.T) {
	tel := func(p string) []Reject {
		_, r := Telemetry("d1", []byte(p), "", decodeNow, decodeLim)
		return r
	}
	cases := map[string]func() []Reject{
		model.ReasonEmpty:           func() []Reject { return tel("") },
		model.ReasonTooLarge:        func() []Reject { return tel(`{"values":{"steps":1}}` + strings.Repeat(" ", 64<<10)) },
		model.ReasonMalformed:       func() []Reject { return tel(`{`) },
		model.ReasonTopicNotAllowed: func() []Reject { return tel(`[{"bn":"urn:dev:care:d2:","n":"steps","v":1}]`) },
		model.ReasonUnknownMetric:   func() []Reject { return tel(`{"values":{"hr":1}}`) },
		model.ReasonOutOfRange:      func() []Reject { return tel(`{"values":{"spo2":101}}`) },
		model.ReasonNotFinite:       func() []Reject { return tel(`{"values":{"spo2":"Infinity"}}`) },
		model.ReasonBadValue:        func() []Reject { return tel(`{"values":{"spo2":[97]}}`) },
		model.ReasonBadTimestamp:    func() []Reject { return tel(`{"ts":"2025-06-01 12:00:00","values":{"spo2":97}}`) },
		model.ReasonFuture:          func() []Reject { return tel(`{"ts":1748779600000,"values":{"spo2":97}}`) },
		model.ReasonTooOld:          func() []Reject { return tel(`{"ts":0,"values":{"spo2":97}}`) },
		model.ReasonUnitMismatch:    func() []Reject { return tel(`[{"n":"spo2","u":"/","v":0.97}]`) },
		model.ReasonNoValues:        func() []Reject { return tel(`{"values":{}}`) },
		model.ReasonEventType: func() []Reject {
			_, r := Event([]byte(`{"type":"alarm"}`), decodeNow, decodeLim)
			return r
		},
		model.ReasonBadTopic: func() []Reject {
			if _, _, ok := Topic("care/v1/dev/d1/other"); !ok {
				return []Reject{{Reason: model.ReasonBadTopic}}
			}
			return nil
		},
	}
	for reason, f := range cases {
		got := f()
		if len(got) != 1 || got[0].Reason != reason {
			t.Errorf("%s: got %+v", reason, got)
		}
	}
	all := []string{model.ReasonEmpty, model.ReasonTooLarge, model.ReasonMalformed, model.ReasonBadTopic, model.ReasonTopicNotAllowed, model.ReasonUnknownMetric,
		model.ReasonOutOfRange, model.ReasonNotFinite, model.ReasonBadValue, model.ReasonBadTimestamp, model.ReasonFuture, model.ReasonTooOld,
		model.ReasonUnitMismatch, model.ReasonEventType, model.ReasonNoValues}
	for _, r := range all {
		if cases[r] == nil {
			t.Errorf("reason %s has no case", r)
		}
	}
}

// TestUnitConversionsTargetCatalogue keeps the conversion table honest: each
// conversion leads to a unit the catalogue uses, for a metric that has it.
func TestUnitConversionsTargetCatalogue(t *testing.T) {
	units := map[string]bool{}
	for _, m := range catalog.Metrics() {
		units[m.Unit] = true
	}
	for _, c := range unitConversions {
		if !units[c.to] {
			t.Errorf("%s converts to %s, which no metric has", c.from, c.to)
		}
		if c.metric != "" {
			if m, ok := catalog.LookupMetric(c.metric); !ok || m.Unit != c.to {
				t.Errorf("%s is for %s, whose unit is not %s", c.from, c.metric, c.to)
			}
		}
	}
	if got := unitConversions[0].conv(212); got != 100 {
		t.Errorf("212 Far = %v Cel, want 100", got)
	}
	hasFar := false
	for _, c := range unitConversions {
		hasFar = hasFar || (c.from == "Far" && c.to == "Cel")
	}
	if !hasFar {
		t.Error("Far → Cel conversion (contract §1) missing")
	}
}

// BenchmarkDecodeTelemetry measures the hot path: one object with a Unix-ms
// ts and three values.
func BenchmarkDecodeTelemetry(b *testing.B) {
	p := []byte(`{"ts":1748779140000,"values":{"heart_rate":72,"spo2":97,"resp_rate":16}}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		s, r := Telemetry("band-7", p, "", decodeNow, decodeLim)
		if len(s) != 1 || len(r) != 0 {
			b.Fatal(s, r)
		}
	}
}

// BenchmarkDecodeTelemetryRFC3339 is the same with an RFC 3339 ts.
func BenchmarkDecodeTelemetryRFC3339(b *testing.B) {
	p := []byte(`{"ts":"2025-06-01T11:59:00.123Z","values":{"heart_rate":72,"spo2":97,"resp_rate":16}}`)
	b.ReportAllocs()
	for b.Loop() {
		if s, r := Telemetry("band-7", p, "", decodeNow, decodeLim); len(s) != 1 || len(r) != 0 {
			b.Fatal(s, r)
		}
	}
}

// BenchmarkDecodeTelemetrySenML decodes the six-record wearable pack.
func BenchmarkDecodeTelemetrySenML(b *testing.B) {
	p := decodePayload(b, "@senml_wearable.json")
	b.ReportAllocs()
	for b.Loop() {
		if s, r := Telemetry("band-7", p, "", decodeNow, decodeLim); len(s) != 2 || len(r) != 0 {
			b.Fatal(s, r)
		}
	}
}

func BenchmarkDecodeEvent(b *testing.B) {
	p := []byte(`{"ts":1748779140000,"type":"fall","data":{"confidence":0.93}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, r := Event(p, decodeNow, decodeLim); len(r) != 0 {
			b.Fatal(r)
		}
	}
}

func BenchmarkDecodeStatus(b *testing.B) {
	p := []byte(`{"online":true,"battery_pct":87,"rssi_dbm":-61,"fw":"1.4.2"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, r := Status(p, decodeNow); len(r) != 0 {
			b.Fatal(r)
		}
	}
}

// TestRecordCap: arrays and SenML packs longer than MaxRecords are
// rejected whole as too_many_records before their records are decoded;
// at the cap they pass.
func TestRecordCap(t *testing.T) {
	now := time.Now()
	lim := Limits{MaxRecords: 3, MaxAge: time.Hour, MaxFuture: time.Minute}
	for _, c := range []struct {
		name, payload string
		samples       int
		reason        string
	}{
		{"array at the cap", `[{"values":{"steps":1}},{"values":{"steps":2}},{"values":{"steps":3}}]`, 1, ""},
		{"array over the cap", `[{"values":{"steps":1}},{"values":{"steps":2}},{"values":{"steps":3}},{"values":{"steps":4}}]`, 0, model.ReasonTooManyRecords},
		{"SenML over the cap", `[{"n":"steps","v":1},{"n":"steps","v":2},{"n":"steps","v":3},{"n":"steps","v":4}]`, 0, model.ReasonTooManyRecords},
		{"over the cap of garbage", `[1,2,3,4]`, 0, model.ReasonTooManyRecords},
		{"object", `{"values":{"steps":1}}`, 1, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, rej := Telemetry("d1", []byte(c.payload), "", now, lim)
			if c.reason == "" {
				if len(rej) != 0 || len(s) == 0 {
					t.Fatalf("samples %v, rejects %v", s, rej)
				}
				return
			}
			if len(s) != 0 || len(rej) != 1 || rej[0].Reason != c.reason || !strings.Contains(rej[0].Detail, "at most 3") {
				t.Fatalf("samples %v, rejects %+v; want one %s", s, rej, c.reason)
			}
		})
	}
	// Zero means the default.
	if _, rej := Telemetry("d1", []byte("["+strings.Repeat(`{"values":{"steps":1}},`, DefaultMaxRecords)+`{"values":{"steps":1}}]`), "", now, Limits{}); len(rej) != 1 || rej[0].Reason != model.ReasonTooManyRecords {
		t.Fatalf("DefaultMaxRecords+1 records: %+v", rej)
	}
}
