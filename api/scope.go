package api

import (
	"errors"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/internal/query"
)

// Who sees what (contract §4, domain.md privacy): admins and coordinators
// see every resident and home, a caregiver only the residents assigned to
// them and their homes. Anything else answers 404, the same answer as for
// what does not exist, so a caregiver cannot probe for other residents.
// The role checks per route are in server.go's routes (requireRole).

// Principal is who made a request.
type Principal struct {
	ID        string
	Role      string   // admin, coordinator, caregiver
	Residents []string // a caregiver's assigned residents
	token     string   // the bearer token, for logout
}

// staff reports whether p sees every resident.
func (p Principal) staff() bool { return p.Role == RoleAdmin || p.Role == RoleCoordinator }

// CanSee reports whether p may see a resident's data: the query layer's
// rule (query.CanSee), the one the console's pages follow too.
func (p Principal) CanSee(residentID string) bool {
	return query.CanSee(queryPrincipal(p), residentID)
}

func principal(c *fiber.Ctx) Principal {
	p, _ := c.Locals(localPrincipal).(Principal)
	return p
}

func (s *Server) requireRole(roles ...string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		p := principal(c)
		for _, r := range roles {
			if p.Role == r {
				return c.Next()
			}
		}
		return ErrForbidden
	}
}

// canSee reports whether the caller may see a resident (Principal.CanSee).
func (s *Server) canSee(c *fiber.Ctx, residentID string) bool {
	return principal(c).CanSee(residentID)
}

// visibleResident returns the resident named by the :id parameter, or a
// 404 when it does not exist or the caller may not see it.
func (s *Server) visibleResident(c *fiber.Ctx) (devices.Resident, error) {
	return s.residentFor(principal(c), c.Params("id"))
}

// residentFor returns resident id as p may see it, or the 404 answer.
func (s *Server) residentFor(p Principal, id string) (devices.Resident, error) {
	r, err := s.q.Visible(queryPrincipal(p), id)
	if err != nil {
		return devices.Resident{}, ErrNotFound.with("no resident " + truncate(id, 64))
	}
	return r, nil
}

// visibleAlert returns the alert of :id, or 404 when it does not exist or
// belongs to a resident the caller may not see.
func (s *Server) visibleAlert(c *fiber.Ctx) (alerts.Alert, error) {
	if err := s.needAlerts(); err != nil {
		return alerts.Alert{}, err
	}
	a, err := s.q.VisibleAlert(queryPrincipal(principal(c)), c.Params("id"))
	if errors.Is(err, query.ErrNotFound) {
		return alerts.Alert{}, ErrNotFound.with("no such alert")
	}
	if err != nil {
		return alerts.Alert{}, alertError(err, "invalid_field")
	}
	return a, nil
}

// homeResidents returns, for each home, the ids of its residents the caller
// may see, sorted (Residents is sorted by id).
func (s *Server) homeResidents(c *fiber.Ctx) map[string][]string {
	p := principal(c)
	out := map[string][]string{}
	for _, r := range s.o.Registry.Residents() {
		if p.CanSee(r.ID) {
			out[r.HomeID] = append(out[r.HomeID], r.ID)
		}
	}
	return out
}

// canSeeHome: staff see every home, a caregiver the homes of their
// residents.
func (s *Server) canSeeHome(c *fiber.Ctx, visible map[string][]string, homeID string) bool {
	return principal(c).staff() || len(visible[homeID]) > 0
}
