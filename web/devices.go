package web

import (
	"net/http"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/internal/query"
)

type devicesPage struct {
	Homes         []query.HomeHealth
	CannotMonitor int
	Problems      int
	Names         map[string]string // homes' labels by id, where they have one
}

// devices is GET /devices: device health across homes (offline, battery,
// not worn, homes that cannot be monitored), staff only as GET /devices is
// (a caregiver gets 404); it records devices.list, as that does.
func (c *Console) devices(ctx *fiber.Ctx) error {
	v := c.view(ctx, "")
	homes, err := c.o.Query.DevicesHealth(ctx.UserContext(), v.principal(ctx))
	if err != nil {
		return c.fail(ctx, v, err)
	}
	page := devicesPage{Homes: homes, Names: map[string]string{}}
	for _, h := range homes {
		page.Names[h.HomeID] = c.o.Query.HomeName(h.HomeID)
		if h.CannotMonitor {
			page.CannotMonitor++
		}
		for _, d := range h.Devices {
			if d.Problem() {
				page.Problems++
			}
		}
	}
	v.Title = v.T("devices.title")
	v.Data = page
	return c.render(ctx, http.StatusOK, "devices", v)
}

// Battery is a battery level ("12 %"), "–" when the device sent none.
func (v *view) Battery(pct *float64) string {
	if pct == nil {
		return "–"
	}
	return v.T("devices.pct", *pct)
}
