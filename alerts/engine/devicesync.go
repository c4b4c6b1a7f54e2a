package engine

import (
	"context"
	"time"

	"github.com/carehub/carehub/alerts/rules/eval"
	"github.com/carehub/carehub/devices"
)

// DeviceDirectory is the registry as SyncDevices reads it
// (devices.Registry).
type DeviceDirectory interface {
	Devices(keep func(devices.Device) bool) []devices.Device
	Residents() []devices.Resident
}

// DeviceSetter takes a resident's complete device list
// (eval.Evaluator.SetDevices).
type DeviceSetter interface {
	SetDevices(residentID string, devs []eval.DeviceInfo)
}

// syncEvery is how often SyncDevices reads the registry again. Devices are
// registered, moved and disabled rarely; 30 s is plenty.
const syncEvery = 30 * time.Second

// SyncDevices tells the rules which enabled devices each resident has, at
// once and then every 30 s until ctx ends, so a device that never reported
// still counts for "device offline" and "cannot monitor".
func SyncDevices(ctx context.Context, dir DeviceDirectory, ev DeviceSetter) {
	t := time.NewTicker(syncEvery)
	defer t.Stop()
	for {
		syncDevices(dir, ev)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func syncDevices(dir DeviceDirectory, ev DeviceSetter) {
	byResident := map[string][]eval.DeviceInfo{}
	for _, d := range dir.Devices(func(d devices.Device) bool { return !d.Disabled }) {
		byResident[d.ResidentID] = append(byResident[d.ResidentID], eval.DeviceInfo{ID: d.ID, Kind: d.Kind, HomeID: d.HomeID})
	}
	for _, r := range dir.Residents() {
		ev.SetDevices(r.ID, byResident[r.ID])
	}
}
