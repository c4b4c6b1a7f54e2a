package query

import (
	"context"
	"sort"

	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/internal/audit"
)

// PresenceSource answers a device's presence (devices.PresenceTracker).
type PresenceSource interface {
	Presence(deviceID string) (devices.Presence, bool)
}

// LowBatteryPct is the battery level the device health page marks low when
// the rules have not (yet) raised low_battery.
const LowBatteryPct = 20

// DeviceHealth is one device's state: the problems are from its presence
// and from the device alerts open for it (device_offline, low_battery,
// wearable_not_worn).
type DeviceHealth struct {
	Device     devices.Device
	Resident   devices.Resident
	Presence   *devices.Presence // nil when the device was never seen
	Offline    bool
	LowBattery bool
	NotWorn    bool
}

// Problem reports whether the device needs someone's attention.
func (d DeviceHealth) Problem() bool { return d.Offline || d.LowBattery || d.NotWorn }

// HomeHealth is one home's devices. A home cannot be monitored when none
// of its enabled devices is online, or it has none: nothing there would
// raise an alert.
type HomeHealth struct {
	HomeID        string
	Devices       []DeviceHealth
	CannotMonitor bool
}

// DevicesHealth is the device health across homes, staff only as GET
// /devices is (anyone else gets ErrNotFound), audited as devices.list like
// it: homes that cannot be monitored first, then by home id.
func (s *Service) DevicesHealth(ctx context.Context, p Principal) ([]HomeHealth, error) {
	if p.Role != RoleAdmin && p.Role != RoleCoordinator {
		return nil, ErrNotFound
	}
	if err := s.Record(ctx, p, audit.Entry{Action: "devices.list"}); err != nil {
		return nil, err
	}
	open := map[string]map[string]bool{} // device id → open device rules
	if s.Manager != nil {
		for _, a := range s.openAlerts() {
			if a.DeviceID == "" {
				continue
			}
			if open[a.DeviceID] == nil {
				open[a.DeviceID] = map[string]bool{}
			}
			open[a.DeviceID][a.Rule] = true
		}
	}
	homes := map[string]*HomeHealth{}
	for _, d := range s.Registry.Devices(func(devices.Device) bool { return true }) {
		h := homes[d.HomeID]
		if h == nil {
			h = &HomeHealth{HomeID: d.HomeID, CannotMonitor: true}
			homes[d.HomeID] = h
		}
		dh := DeviceHealth{Device: d, Offline: true}
		dh.Resident, _ = s.Registry.Resident(d.ResidentID)
		if s.Presence != nil {
			if pr, ok := s.Presence.Presence(d.ID); ok {
				dh.Presence = &pr
				dh.Offline = !pr.Online
				dh.LowBattery = pr.BatteryPct != nil && *pr.BatteryPct < LowBatteryPct
			}
		}
		rs := open[d.ID]
		dh.Offline = dh.Offline || rs[rules.RuleDeviceOffline]
		dh.LowBattery = dh.LowBattery || rs[rules.RuleLowBattery]
		dh.NotWorn = rs[rules.RuleWearableNotWorn]
		if !d.Disabled && !dh.Offline {
			h.CannotMonitor = false
		}
		h.Devices = append(h.Devices, dh)
	}
	// A home whose residents have no device at all cannot be monitored
	// either.
	for _, r := range s.Registry.Residents() {
		if homes[r.HomeID] == nil {
			homes[r.HomeID] = &HomeHealth{HomeID: r.HomeID, CannotMonitor: true}
		}
	}
	out := make([]HomeHealth, 0, len(homes))
	for _, h := range homes {
		sort.SliceStable(h.Devices, func(i, j int) bool { return h.Devices[i].Problem() && !h.Devices[j].Problem() })
		out = append(out, *h)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].CannotMonitor != out[j].CannotMonitor {
			return out[i].CannotMonitor
		}
		return out[i].HomeID < out[j].HomeID
	})
	return out, nil
}

// HomeName is a home's label ("Unit 302"), "" when it has none or the
// registry keeps no homes.
func (s *Service) HomeName(id string) string {
	if reg, ok := s.Registry.(interface {
		Home(id string) (devices.Home, bool)
	}); ok {
		h, _ := reg.Home(id)
		return h.Name
	}
	return ""
}
