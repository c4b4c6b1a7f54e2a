package decode

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/model"
)

// decodeReasons are the reasons a decoder may return.
var decodeReasons = map[string]bool{
	model.ReasonEmpty: true, model.ReasonTooLarge: true, model.ReasonMalformed: true, model.ReasonTopicNotAllowed: true,
	model.ReasonUnknownMetric: true, model.ReasonOutOfRange: true, model.ReasonNotFinite: true, model.ReasonBadValue: true,
	model.ReasonBadTimestamp: true, model.ReasonFuture: true, model.ReasonTooOld: true, model.ReasonUnitMismatch: true,
	model.ReasonEventType: true, model.ReasonNoValues: true,
}

// seedDecodeFuzz adds the testdata fixtures and a few hand-made payloads.
func seedDecodeFuzz(f *testing.F, add func([]byte)) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	if len(files) == 0 {
		f.Fatal("no fixtures in testdata")
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		add(b)
	}
	for _, s := range []string{
		`{"ts":1748779140000,"values":{"heart_rate":72,"spo2":97}}`,
		`{"ts":"2025-06-01T11:59:00Z","values":{"presence":true}}`,
		`[{"bn":"urn:dev:care:d1:","bt":1748779140,"n":"spo2","u":"%","v":97},{"n":"body_temp","u":"Far","v":99}]`,
		`[{"bt":1e400,"t":-1e400,"n":"spo2","v":97}]`,
		`{"type":"sos","data":{"a":[1,{"b":"c"}]}}`,
		`{"online":true,"battery_pct":87,"rssi_dbm":-61,"fw":"1.4.2"}`,
		`{"values":{"heart\u005frate":"\u0049nf"}}`,
		`[[[[[]]]]]`, `{"values":{"a":{"b":{"c":[]}}}}`, `"\ud800"`, `{"ts":-1e400}`, ``,
	} {
		add([]byte(s))
	}
}

// checkFuzzRejects checks what every Reject must be: a known reason, a
// bounded detail that quotes little of the payload, a bounded metric label.
func checkFuzzRejects(t *testing.T, rs []Reject) {
	t.Helper()
	if len(rs) > maxRejects+1 {
		t.Fatalf("%d rejects, more than %d", len(rs), maxRejects+1)
	}
	for _, r := range rs {
		if !decodeReasons[r.Reason] {
			t.Errorf("unknown reason %q", r.Reason)
		}
		if r.Detail == "" || len(r.Detail) > 400 {
			t.Errorf("detail of %d bytes: %q", len(r.Detail), r.Detail)
		}
		if len(r.Metric) > maxMetricLabel+3 {
			t.Errorf("metric label of %d bytes", len(r.Metric))
		}
	}
}

func FuzzDecodeTelemetry(f *testing.F) {
	seedDecodeFuzz(f, func(b []byte) { f.Add(b, false); f.Add(b, true) })
	lim := Limits{MaxPayload: 8 << 10, MaxFuture: decodeLim.MaxFuture, MaxAge: decodeLim.MaxAge}
	f.Fuzz(func(t *testing.T, p []byte, senml bool) {
		ct := ""
		if senml {
			ct = SenMLContentType
		}
		samples, rejects := Telemetry("d1", p, ct, decodeNow, lim)
		checkFuzzRejects(t, rejects)
		if len(samples) == 0 && len(rejects) == 0 {
			t.Fatal("a message gave neither samples nor rejects")
		}
		if len(p) > lim.MaxPayload && (len(samples) > 0 || len(rejects) != 1 || rejects[0].Reason != model.ReasonTooLarge) {
			t.Fatalf("oversized payload: %d samples, rejects %v", len(samples), rejects)
		}
		for _, s := range samples {
			if len(s.Values) == 0 {
				t.Fatal("sample without values")
			}
			if s.TS.After(decodeNow.Add(lim.MaxFuture)) || s.TS.Before(decodeNow.Add(-lim.MaxAge)) {
				t.Fatalf("sample time %s outside the window", s.TS)
			}
			for k, v := range s.Values {
				m, ok := catalog.LookupMetric(k)
				if !ok {
					t.Fatalf("sample has non-catalogue metric %q", k)
				}
				if math.IsNaN(v) || math.IsInf(v, 0) || v < m.Min || v > m.Max {
					t.Fatalf("%s=%v outside %v–%v", k, v, m.Min, m.Max)
				}
			}
		}
	})
}

func FuzzDecodeEvent(f *testing.F) {
	seedDecodeFuzz(f, func(b []byte) { f.Add(b) })
	f.Fuzz(func(t *testing.T, p []byte) {
		ev, rejects := Event(p, decodeNow, decodeLim)
		checkFuzzRejects(t, rejects)
		if len(rejects) > 0 {
			return
		}
		if !catalog.ValidEventType(ev.Type) {
			t.Fatalf("accepted event type %q", ev.Type)
		}
		if ev.TS.After(decodeNow.Add(decodeLim.MaxFuture)) || ev.TS.Before(decodeNow.Add(-decodeLim.MaxAge)) {
			t.Fatalf("event time %s outside the window", ev.TS)
		}
		if ev.Data != nil && (len(ev.Data) > maxEventData || ev.Data[0] != '{') {
			t.Fatalf("event data %q", ev.Data)
		}
	})
}

func FuzzDecodeStatus(f *testing.F) {
	seedDecodeFuzz(f, func(b []byte) { f.Add(b) })
	f.Fuzz(func(t *testing.T, p []byte) {
		st, rejects := Status(p, decodeNow)
		checkFuzzRejects(t, rejects)
		if st.TS.IsZero() {
			if len(rejects) == 0 {
				t.Fatal("unusable status without a reject")
			}
			return
		}
		if b := st.BatteryPct; b != nil && (*b < 0 || *b > 100) {
			t.Fatalf("battery %v", *b)
		}
		if r := st.RSSIdBm; r != nil && (*r < -150 || *r > 0) {
			t.Fatalf("rssi %v", *r)
		}
		if len(st.FW) > maxFW {
			t.Fatalf("fw of %d bytes", len(st.FW))
		}
	})
}
