package api

import (
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/query"
)

type createHomeBody struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// createHome: POST /homes {"id"?, "name"?} (staff) → 201 home; an existing
// id is 409. POST /residents still creates a missing home implicitly.
func (s *Server) createHome(c *fiber.Ctx) error {
	var b createHomeBody
	if err := decode(c, &b); err != nil {
		return err
	}
	h, err := s.o.Registry.CreateHome(c.UserContext(), devices.Home{ID: b.ID, Name: b.Name})
	if err != nil {
		return registryError(err)
	}
	if err := s.audit(c, "", "home.create", "home "+h.ID); err != nil {
		return err
	}
	return c.Status(http.StatusCreated).JSON(h)
}

type homesPage struct {
	Homes      []devices.Home `json:"homes"`
	NextCursor string         `json:"next_cursor,omitempty"`
}

// listHomes: GET /homes?limit=&cursor= → the homes the caller may see, by
// id; cursor is the last id of the previous page.
func (s *Server) listHomes(c *fiber.Ctx) error {
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	after := c.Query("cursor")
	if after != "" && !catalog.ValidID(after) {
		return badRequest("invalid_cursor", "cursor is not one this API returned; start again without it")
	}
	q, p := s.query(c)
	list, next, err := q.Homes(c.UserContext(), p, query.Page{After: after, Limit: limit})
	if err != nil {
		return queryError(err, "")
	}
	out := homesPage{Homes: list, NextCursor: next}
	return c.JSON(out)
}

type homeView struct {
	ID          string       `json:"id"`
	Name        string       `json:"name,omitempty"`
	ResidentIDs []string     `json:"resident_ids"`
	Devices     []deviceView `json:"devices"`
	CreatedAt   time.Time    `json:"created_at"`
	UpdatedAt   time.Time    `json:"updated_at"`
}

// getHome: GET /homes/{id} → the home with the ids of its residents and its
// devices with their health (online, last_seen, battery): what a
// coordinator checks before a visit. A caregiver sees only their own
// residents in it, and their devices. Audited per visible resident, since
// device health is about their home life.
func (s *Server) getHome(c *fiber.Ctx) error {
	id := c.Params("id")
	visible := s.homeResidents(c)
	h, ok := s.o.Registry.Home(id)
	if !catalog.ValidID(id) || !ok || !s.canSeeHome(c, visible, id) {
		return ErrNotFound.with("no home " + truncate(id, 64))
	}
	rids := visible[id]
	if rids == nil {
		rids = []string{}
	}
	for _, rid := range rids {
		if err := s.audit(c, rid, "home.read", "home "+id); err != nil {
			return err
		}
	}
	if len(rids) == 0 {
		if err := s.audit(c, "", "home.read", "home "+id); err != nil {
			return err
		}
	}
	mine := make(map[string]bool, len(rids))
	for _, rid := range rids {
		mine[rid] = true
	}
	out := homeView{ID: h.ID, Name: h.Name, ResidentIDs: rids, Devices: []deviceView{}, CreatedAt: h.CreatedAt, UpdatedAt: h.UpdatedAt}
	for _, d := range s.o.Registry.Devices(func(d devices.Device) bool { return d.HomeID == id && mine[d.ResidentID] }) {
		out.Devices = append(out.Devices, s.viewDevice(d))
	}
	return c.JSON(out)
}
