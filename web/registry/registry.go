// Package registry builds the data of the console's registry pages
// (issue 12 item 6): homes, residents with their consent, and devices with
// their MQTT credentials. It reads only; every change is a call from the
// page to the JSON API (console.js's form.apiform), so validation, the
// audit entry of each change and the show-once password stay the API's.
// Reads go through internal/query, so a page records what its API twin
// records. The pages are staff's, as the API's registry endpoints are: for
// anyone else every builder answers query.ErrNotFound before it reads or
// records anything.
package registry

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/query"
	"github.com/carehub/carehub/web"
)

// Reader is what the pages need of devices.Registry beyond the query
// layer: a resident with the revision GET /residents/{id} gives as its
// ETag, which the page's forms send back as If-Match.
type Reader interface {
	ResidentRevision(id string) (devices.Resident, uint64, bool)
}

// Pages builds the registry pages' data.
type Pages struct {
	Query    *query.Service
	Registry Reader
}

// Scopes are the consent scopes a page offers (devices.ValidConsentScope).
var Scopes = []string{devices.ConsentMonitoring, devices.ConsentMonitoringExport}

// Register mounts the pages on app behind the console's session check
// (the builders refuse anyone but staff).
func Register(app *fiber.App, c *web.Console, pg Pages) error {
	if pg.Query == nil || pg.Registry == nil {
		return errors.New("registry: Query and Registry are required")
	}
	h := c.Headers
	app.Get("/registry/homes", h, c.Auth, page(c, "reg_homes", func(ctx *fiber.Ctx, p query.Principal) (titled, error) {
		return pg.Homes(ctx.UserContext(), p)
	}))
	app.Get("/registry/residents", h, c.Auth, page(c, "reg_residents", func(ctx *fiber.Ctx, p query.Principal) (titled, error) {
		return pg.Residents(ctx.UserContext(), p, ctx.Query("home_id"))
	}))
	app.Get("/registry/residents/:id", h, c.Auth, page(c, "reg_resident", func(ctx *fiber.Ctx, p query.Principal) (titled, error) {
		return pg.Resident(ctx.UserContext(), p, ctx.Params("id"))
	}))
	app.Get("/registry/devices", h, c.Auth, page(c, "reg_devices", func(ctx *fiber.Ctx, p query.Principal) (titled, error) {
		return pg.Devices(ctx.UserContext(), p, ctx.Query("home_id"), ctx.Query("resident_id"))
	}))
	return nil
}

// titled is a page's data that names its title.
type titled interface{ Heading() (string, []any) }

// page renders the page whose data build makes.
func page(c *web.Console, name string, build func(*fiber.Ctx, query.Principal) (titled, error)) fiber.Handler {
	return func(ctx *fiber.Ctx) error {
		data, err := build(ctx, web.Principal(ctx))
		if err != nil {
			return c.Fail(ctx, err)
		}
		key, args := data.Heading()
		return c.Page(ctx, http.StatusOK, name, data, key, args...)
	}
}

func staffOnly(p query.Principal) error {
	if !query.Staff(p) {
		return query.ErrNotFound
	}
	return nil
}

// HomeRow is a home with how many residents and devices it has.
type HomeRow struct {
	devices.Home
	Residents, Devices int
}

// HomesPage is /registry/homes: every home, and a form to add one.
type HomesPage struct{ Homes []HomeRow }

// Heading is the page's title: a catalogue key and its arguments.
func (HomesPage) Heading() (string, []any) { return "reg.homes.title", nil }

// Homes records homes.list, as GET /homes does.
func (pg Pages) Homes(ctx context.Context, p query.Principal) (HomesPage, error) {
	if err := staffOnly(p); err != nil {
		return HomesPage{}, err
	}
	homes, _, err := pg.Query.Homes(ctx, p, query.Page{})
	if err != nil {
		return HomesPage{}, err
	}
	residents, devs := map[string]int{}, map[string]int{}
	for _, r := range pg.Query.Registry.Residents() {
		residents[r.HomeID]++
	}
	for _, d := range pg.Query.Registry.Devices(func(devices.Device) bool { return true }) {
		devs[d.HomeID]++
	}
	out := HomesPage{Homes: make([]HomeRow, len(homes))}
	for i, h := range homes {
		out.Homes[i] = HomeRow{Home: h, Residents: residents[h.ID], Devices: devs[h.ID]}
	}
	return out, nil
}

// ResidentRow is a resident with the state of their consent.
type ResidentRow struct {
	devices.Resident
	ConsentState string
}

// ConsentState is "given", "withdrawn" or "none" (nothing recorded yet):
// without a consent given, the resident must not be monitored.
func ConsentState(c *devices.Consent) string {
	switch {
	case c == nil:
		return "none"
	case c.Given:
		return "given"
	}
	return "withdrawn"
}

// ResidentsPage is /registry/residents: the residents (of one home when
// HomeID is set) with their consent, and a form to add one.
type ResidentsPage struct {
	HomeID    string
	Residents []ResidentRow
	HomeIDs   []string // the homes of the residents listed, for the form's suggestions
}

// Heading is the page's title.
func (ResidentsPage) Heading() (string, []any) { return "reg.residents.title", nil }

// Residents records residents.list naming the residents listed, as GET
// /residents does. A home id that is not an id lists nothing.
func (pg Pages) Residents(ctx context.Context, p query.Principal, homeID string) (ResidentsPage, error) {
	if err := staffOnly(p); err != nil {
		return ResidentsPage{}, err
	}
	if homeID != "" && !catalog.ValidID(homeID) {
		return ResidentsPage{}, query.ErrNotFound
	}
	list, _, err := pg.Query.Residents(ctx, p, homeID, query.Page{})
	if err != nil {
		return ResidentsPage{}, err
	}
	out := ResidentsPage{HomeID: homeID, Residents: make([]ResidentRow, len(list))}
	seen := map[string]bool{}
	for i, r := range list {
		out.Residents[i] = ResidentRow{Resident: r, ConsentState: ConsentState(r.Consent)}
		if !seen[r.HomeID] {
			seen[r.HomeID] = true
			out.HomeIDs = append(out.HomeIDs, r.HomeID)
		}
	}
	sort.Strings(out.HomeIDs)
	return out, nil
}

// ResidentPage is /registry/residents/{id}: the profile to edit, the
// consent to record or withdraw, and the resident's devices.
type ResidentPage struct {
	Resident     devices.Resident
	ConsentState string
	// ETag is the revision the page shows, as GET /residents/{id}'s ETag:
	// the forms send it as If-Match, so an edit made meanwhile by someone
	// else is refused (412) rather than overwritten.
	ETag    string
	Devices []devices.Device
	Kinds   []string
	Scopes  []string
}

// Heading is the page's title: the resident's name.
func (r ResidentPage) Heading() (string, []any) { return "reg.resident.title", []any{r.Resident.Name} }

// Resident records resident.read and devices.read, as GET /residents/{id}
// and GET /residents/{id}/devices do.
func (pg Pages) Resident(ctx context.Context, p query.Principal, id string) (ResidentPage, error) {
	if err := staffOnly(p); err != nil {
		return ResidentPage{}, err
	}
	r, err := pg.Query.Resident(ctx, p, id)
	if err != nil {
		return ResidentPage{}, err
	}
	out := ResidentPage{Resident: r, Kinds: catalog.Kinds(), Scopes: Scopes}
	if pg.Registry != nil {
		if cur, rev, ok := pg.Registry.ResidentRevision(r.ID); ok {
			out.Resident, out.ETag = cur, `"`+strconv.FormatUint(rev, 10)+`"`
		}
	}
	out.ConsentState = ConsentState(out.Resident.Consent)
	if out.Devices, err = pg.Query.Devices(ctx, p, r.ID); err != nil {
		return ResidentPage{}, err
	}
	return out, nil
}

// DevicesPage is /registry/devices: the devices across homes, or of one
// home or resident, with disable/enable and rotate, and a form to add one.
type DevicesPage struct {
	HomeID, ResidentID string
	Devices            []devices.Device
	Kinds              []string
}

// Heading is the page's title.
func (DevicesPage) Heading() (string, []any) { return "reg.devices.title", nil }

// Devices records devices.list, naming the resident asked for, as GET
// /devices does.
func (pg Pages) Devices(ctx context.Context, p query.Principal, homeID, residentID string) (DevicesPage, error) {
	if err := staffOnly(p); err != nil {
		return DevicesPage{}, err
	}
	if (homeID != "" && !catalog.ValidID(homeID)) || (residentID != "" && !catalog.ValidID(residentID)) {
		return DevicesPage{}, query.ErrNotFound
	}
	list, _, err := pg.Query.DeviceList(ctx, p, residentID, homeID, query.Page{})
	if err != nil {
		return DevicesPage{}, err
	}
	return DevicesPage{HomeID: homeID, ResidentID: residentID, Devices: list, Kinds: catalog.Kinds()}, nil
}
