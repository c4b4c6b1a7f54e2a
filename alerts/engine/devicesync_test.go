package engine

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/carehub/carehub/alerts/rules/eval"
	"github.com/carehub/carehub/devices"
)

type fakeDirectory struct {
	devs      []devices.Device
	residents []devices.Resident
}

func (f fakeDirectory) Devices(keep func(devices.Device) bool) []devices.Device {
	var out []devices.Device
	for _, d := range f.devs {
		if keep(d) {
			out = append(out, d)
		}
	}
	return out
}

func (f fakeDirectory) Residents() []devices.Resident { return f.residents }

type recordedDevices struct {
	mu  sync.Mutex
	got map[string][]eval.DeviceInfo
}

func (r *recordedDevices) SetDevices(residentID string, devs []eval.DeviceInfo) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got[residentID] = devs
}

func (r *recordedDevices) snapshot() map[string][]eval.DeviceInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string][]eval.DeviceInfo, len(r.got))
	for k, v := range r.got {
		out[k] = v
	}
	return out
}

// TestSyncDevices: every resident in the registry gets its complete list
// of enabled devices at once, one without any an empty list (so the rules
// forget devices removed from it), and SyncDevices returns when ctx ends.
func TestSyncDevices(t *testing.T) {
	dir := fakeDirectory{
		devs: []devices.Device{
			{ID: "d1", Kind: "bed", ResidentID: "r1", HomeID: "h1"},
			{ID: "d2", Kind: "door", ResidentID: "r1", HomeID: "h1", Disabled: true},
			{ID: "d3", Kind: "wearable", ResidentID: "r1", HomeID: "h1"},
			{ID: "d4", Kind: "bed", ResidentID: "gone", HomeID: "h2"},
		},
		residents: []devices.Resident{{ID: "r1", HomeID: "h1"}, {ID: "r2", HomeID: "h2"}},
	}
	rec := &recordedDevices{got: map[string][]eval.DeviceInfo{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); SyncDevices(ctx, dir, rec) }()

	want := map[string][]eval.DeviceInfo{
		"r1": {{ID: "d1", Kind: "bed", HomeID: "h1"}, {ID: "d3", Kind: "wearable", HomeID: "h1"}},
		"r2": nil,
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(rec.snapshot()) < len(want) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := rec.snapshot(); !reflect.DeepEqual(got, want) {
		t.Errorf("devices set %v, want %v", got, want)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("SyncDevices did not return after its context ended")
	}
}
