package query_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/internal/audit"
	"github.com/carehub/carehub/internal/query"
)

// memRegistry is a registry held in slices, sorted by id as devices.Registry's lists are.
type memRegistry struct {
	homes     []devices.Home
	residents []devices.Resident
	devices   []devices.Device
}

func (m memRegistry) Resident(id string) (devices.Resident, bool) {
	for _, r := range m.residents {
		if r.ID == id {
			return r, true
		}
	}
	return devices.Resident{}, false
}
func (m memRegistry) Residents() []devices.Resident { return m.residents }
func (m memRegistry) Homes() []devices.Home         { return m.homes }
func (m memRegistry) Devices(keep func(devices.Device) bool) []devices.Device {
	return slices.DeleteFunc(slices.Clone(m.devices), func(d devices.Device) bool { return !keep(d) })
}

type entries []audit.Entry

func (e *entries) Record(_ context.Context, x audit.Entry) error { *e = append(*e, x); return nil }

func ids[T any](xs []T, id func(T) string) []string {
	out := []string{}
	for _, x := range xs {
		out = append(out, id(x))
	}
	return out
}

// TestRegistryLists: the lists' scope (a caregiver sees their residents'
// homes, no device list at all), paging by id, and the audit entry each
// records (homes.list, residents.list naming the residents disclosed,
// devices.list naming the resident asked for).
func TestRegistryLists(t *testing.T) {
	reg := memRegistry{
		homes:     []devices.Home{{ID: "h1"}, {ID: "h2"}, {ID: "h3"}},
		residents: []devices.Resident{{ID: "r1", HomeID: "h1"}, {ID: "r2", HomeID: "h2"}, {ID: "r3", HomeID: "h2"}},
		devices:   []devices.Device{{ID: "d1", ResidentID: "r1", HomeID: "h1"}, {ID: "d2", ResidentID: "r2", HomeID: "h2"}, {ID: "d3", ResidentID: "r3", HomeID: "h2"}},
	}
	var log entries
	s := &query.Service{Registry: reg, Audit: &log}
	ctx := context.Background()
	co := query.Principal{ID: "co", Role: query.RoleCoordinator}
	cg := query.Principal{ID: "cg", Role: query.RoleCaregiver, Residents: []string{"r2"}}
	homeID := func(h devices.Home) string { return h.ID }
	resID := func(r devices.Resident) string { return r.ID }
	devID := func(d devices.Device) string { return d.ID }

	hs, next, err := s.Homes(ctx, co, query.Page{Limit: 2})
	if got := ids(hs, homeID); err != nil || !slices.Equal(got, []string{"h1", "h2"}) || next != "h2" {
		t.Errorf("staff homes page 1: %v next %q %v", got, next, err)
	}
	if hs, next, _ = s.Homes(ctx, co, query.Page{After: "h2", Limit: 2}); !slices.Equal(ids(hs, homeID), []string{"h3"}) || next != "" {
		t.Errorf("staff homes page 2: %v next %q", ids(hs, homeID), next)
	}
	if hs, _, _ = s.Homes(ctx, cg, query.Page{}); !slices.Equal(ids(hs, homeID), []string{"h2"}) {
		t.Errorf("caregiver homes: %v, want [h2]", ids(hs, homeID))
	}

	rs, next, _ := s.Residents(ctx, co, "h2", query.Page{Limit: 1})
	if !slices.Equal(ids(rs, resID), []string{"r2"}) || next != "r2" {
		t.Errorf("residents of h2, page 1: %v next %q", ids(rs, resID), next)
	}
	if rs, _, _ = s.Residents(ctx, cg, "", query.Page{}); !slices.Equal(ids(rs, resID), []string{"r2"}) {
		t.Errorf("caregiver residents: %v", ids(rs, resID))
	}
	if e := log[len(log)-1]; e.Action != "residents.list" || !slices.Equal(e.Residents, []string{"r2"}) || e.Actor != "cg" {
		t.Errorf("residents.list entry: %+v", e)
	}

	ds, next, _ := s.DeviceList(ctx, co, "", "h2", query.Page{Limit: 1})
	if !slices.Equal(ids(ds, devID), []string{"d2"}) || next != "d2" {
		t.Errorf("devices of h2, page 1: %v next %q", ids(ds, devID), next)
	}
	if ds, next, _ = s.DeviceList(ctx, co, "r3", "", query.Page{After: "d2"}); !slices.Equal(ids(ds, devID), []string{"d3"}) || next != "" {
		t.Errorf("devices of r3 after d2: %v next %q", ids(ds, devID), next)
	}
	if e := log[len(log)-1]; e.Action != "devices.list" || e.ResidentID != "r3" {
		t.Errorf("devices.list entry: %+v", e)
	}
	n := len(log)
	if _, _, err := s.DeviceList(ctx, cg, "r2", "", query.Page{}); !errors.Is(err, query.ErrNotFound) || len(log) != n {
		t.Errorf("caregiver device list: %v, %d entries recorded", err, len(log)-n)
	}
	want := []string{"homes.list", "homes.list", "homes.list", "residents.list", "residents.list", "devices.list", "devices.list"}
	if got := ids(log, func(e audit.Entry) string { return e.Action }); !slices.Equal(got, want) {
		t.Errorf("recorded %v, want %v", got, want)
	}
}
