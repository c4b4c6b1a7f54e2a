package query

import (
	"context"

	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/internal/audit"
)

// The registry's lists: GET /homes, GET /residents and GET /devices, and
// the console's registry pages. Each answers the ids after After (lists are
// sorted by id), at most Limit (0 = all), and the cursor of the next page
// ("" on the last).

// Page is where a list starts and how long it is.
type Page struct {
	After string
	Limit int
}

// take appends the items of all after pg.After to a page of at most
// pg.Limit, and returns the page with the next page's cursor.
func take[T any](all []T, id func(T) string, keep func(T) bool, pg Page) ([]T, string) {
	out := []T{}
	for _, x := range all {
		if id(x) <= pg.After || !keep(x) {
			continue
		}
		if pg.Limit > 0 && len(out) == pg.Limit {
			return out, id(out[pg.Limit-1])
		}
		out = append(out, x)
	}
	return out, ""
}

// Staff reports whether p sees every resident and home.
func Staff(p Principal) bool { return p.Role == RoleAdmin || p.Role == RoleCoordinator }

// Homes is GET /homes: the homes p may see (staff all, a caregiver the
// homes of their residents), audited as homes.list before the answer.
func (s *Service) Homes(ctx context.Context, p Principal, pg Page) ([]devices.Home, string, error) {
	if err := s.Record(ctx, p, audit.Entry{Action: "homes.list"}); err != nil {
		return nil, "", err
	}
	mine := map[string]bool{}
	if !Staff(p) {
		for _, r := range s.Registry.Residents() {
			if CanSee(p, r.ID) {
				mine[r.HomeID] = true
			}
		}
	}
	out, next := take(s.Registry.Homes(), func(h devices.Home) string { return h.ID },
		func(h devices.Home) bool { return Staff(p) || mine[h.ID] }, pg)
	return out, next, nil
}

// Residents is GET /residents: the residents p may see, of one home when
// homeID is set, audited as residents.list naming the residents the page
// discloses.
func (s *Service) Residents(ctx context.Context, p Principal, homeID string, pg Page) ([]devices.Resident, string, error) {
	out, next := take(s.Registry.Residents(), func(r devices.Resident) string { return r.ID },
		func(r devices.Resident) bool { return (homeID == "" || r.HomeID == homeID) && CanSee(p, r.ID) }, pg)
	ids := make([]string, len(out))
	for i, r := range out {
		ids[i] = r.ID
	}
	if err := s.Record(ctx, p, audit.Entry{Action: "residents.list", Residents: ids}); err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// DeviceList is GET /devices: every device, of one resident and/or one
// home when given; staff only (anyone else gets ErrNotFound, nothing
// recorded), audited as devices.list naming the resident asked for.
func (s *Service) DeviceList(ctx context.Context, p Principal, residentID, homeID string, pg Page) ([]devices.Device, string, error) {
	if !Staff(p) {
		return nil, "", ErrNotFound
	}
	if err := s.Record(ctx, p, audit.Entry{ResidentID: residentID, Action: "devices.list"}); err != nil {
		return nil, "", err
	}
	all := s.Registry.Devices(func(d devices.Device) bool {
		return d.ID > pg.After && (residentID == "" || d.ResidentID == residentID) && (homeID == "" || d.HomeID == homeID)
	})
	out, next := take(all, func(d devices.Device) string { return d.ID }, func(devices.Device) bool { return true }, pg)
	return out, next, nil
}
