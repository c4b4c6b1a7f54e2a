package web

import (
	"net/http"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/devices"
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
		page.Names[h.HomeID] = c.homeName(h.HomeID)
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

// homeName is a home's label ("Unit 302"), "" when it has none.
func (c *Console) homeName(id string) string {
	if reg, ok := c.o.Query.Registry.(interface {
		Home(id string) (devices.Home, bool)
	}); ok {
		h, _ := reg.Home(id)
		return h.Name
	}
	return ""
}

// Battery is a battery level ("12 %"), "–" when the device sent none.
func (v *view) Battery(pct *float64) string {
	if pct == nil {
		return "–"
	}
	return v.T("devices.pct", *pct)
}
