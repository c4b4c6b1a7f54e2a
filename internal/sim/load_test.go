package sim

import (
	"testing"
	"time"
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
