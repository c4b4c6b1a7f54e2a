package wire

import (
	"encoding/json"
	"math/rand"
	"testing"
	"time"

	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/sim"
)

// Two messages of one device in the same millisecond would be one point in
// InfluxDB and make the benchmark report a loss: timestamps must advance.
func TestLoadTimestampsAdvancePerDevice(t *testing.T) {
	c := &loadConn{devices: []Credentials{{DeviceID: "a"}, {DeviceID: "b"}}}
	now := time.UnixMilli(1_700_000_000_000)
	got := []int64{c.nextTS(0, now), c.nextTS(0, now), c.nextTS(1, now), c.nextTS(0, now), c.nextTS(1, now.Add(time.Second))}
	want := []int64{now.UnixMilli(), now.UnixMilli() + 1, now.UnixMilli(), now.UnixMilli() + 2, now.UnixMilli() + 1000}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("timestamps %v, want %v", got, want)
		}
	}
}

// TestLoadPayloadsAreValid: the load's noise never leaves the catalogue's
// range, so a benchmark measures accepted readings only. spo2 97 ± 1
// reaches 101 about once in 4,000 draws; 100,000 find it if unclamped.
func TestLoadPayloadsAreValid(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for i := range 100_000 {
		var s sim.Sample
		if err := json.Unmarshal(loadPayload(rng, MaxLoadValues, int64(i+1)), &s); err != nil {
			t.Fatal(err)
		}
		if len(s.Values) != MaxLoadValues {
			t.Fatalf("%d values", len(s.Values))
		}
		checkSample(t, s)
	}
}

// TestStormPayload: a storm reading keeps the load's values and adds
// systolic_bp on the side of the threshold asked for, inside the
// catalogue's range.
func TestStormPayload(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, low := range []bool{true, false} {
		var s sim.Sample
		if err := json.Unmarshal(stormPayload(loadPayload(rng, 3, 42), low), &s); err != nil {
			t.Fatal(err)
		}
		want := float64(stormHigh)
		if low {
			want = stormLow
		}
		if s.TS != 42 || len(s.Values) != 4 || s.Values["systolic_bp"] != want || s.Values["heart_rate"] == 0 {
			t.Fatalf("low=%v: %+v", low, s)
		}
		if c, ok := catalog.LookupMetric("systolic_bp"); !ok || want < c.Min || want > c.Max {
			t.Fatalf("systolic_bp %v outside the catalogue", want)
		}
	}
}
