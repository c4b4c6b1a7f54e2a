// Package admin is the console's management pages (issue 12 item 6):
// users and their roles (admins), which residents each caregiver looks
// after, a resident's escalation chain and rule settings (staff), and the
// audit trail (admins). The pages only read; every change goes through the
// JSON API from the page's forms (console.js's form.apiform), so a page
// can do nothing the API would not let its user do. Reads of a resident's
// data go through internal/query and leave the audit entries of their API
// twins. Whoever may not use a page gets 404, as for a page that does not
// exist.
package admin

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/alerts/escalation"
	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/internal/audit"
	"github.com/carehub/carehub/internal/query"
	"github.com/carehub/carehub/internal/users"
	"github.com/carehub/carehub/web"
)

// Users is what the pages read of internal/users.Store.
type Users interface {
	List(ctx context.Context, role string) ([]users.User, error)
}

// Options are the pages' dependencies. Query is the console's query layer
// with RuleSettings, Chains and AuditLog set.
type Options struct {
	Query    *query.Service
	Users    Users
	Location *time.Location // CARE_TIMEZONE: the audit filter's times are in it
	Clock    func() time.Time
}

type pages struct {
	o Options
	c *web.Console
}

// Register mounts the pages on app, behind the console's session check.
func Register(app *fiber.App, c *web.Console, o Options) error {
	if o.Query == nil || o.Users == nil {
		return errors.New("admin: Query and Users are required")
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Location == nil {
		o.Location = time.UTC
	}
	p := &pages{o: o, c: c}
	admin := c.Only(users.RoleAdmin)
	staff := c.Only(users.RoleAdmin, users.RoleCoordinator)
	h := c.Headers
	app.Get("/users", h, c.Auth, admin, p.users)
	app.Get("/assignments", h, c.Auth, staff, p.assignments)
	app.Get("/residents/:id/settings", h, c.Auth, staff, p.settings)
	app.Get("/residents/:id/escalation", h, c.Auth, staff, p.escalation)
	app.Get("/audit", h, c.Auth, admin, p.audit)
	return nil
}

// Roles a user may have, in the order the forms offer them.
var roles = []string{users.RoleCaregiver, users.RoleCoordinator, users.RoleAdmin}

type usersPage struct {
	Users []users.User
	Roles []string
	Self  string
}

// users is GET /users: everyone with access, with forms to create a user,
// change a role, disable or enable, reset a password and log out
// everywhere (the API's user administration, which audits each change).
// It reads what GET /api/v1/users answers, which is not audited.
func (p *pages) users(ctx *fiber.Ctx) error {
	list, err := p.o.Users.List(ctx.UserContext(), "")
	if err != nil {
		return p.c.Fail(ctx, errors.Join(query.ErrUnavailable, err))
	}
	return p.c.Page(ctx, http.StatusOK, "users", usersPage{Users: list, Roles: roles, Self: web.Principal(ctx).ID}, "users.title")
}

type caregiver struct {
	users.User
	Names []string // the names of the assigned residents
}

type assignmentsPage struct {
	Caregivers []caregiver
	Residents  []devices.Resident
}

// assignments is GET /assignments: each caregiver with the residents they
// look after, and a form per caregiver (PUT /api/v1/users/{id}/residents).
// The page names every resident, so it records what GET /residents does:
// residents.list naming them.
func (p *pages) assignments(ctx *fiber.Ctx) error {
	cgs, err := p.o.Users.List(ctx.UserContext(), users.RoleCaregiver)
	if err != nil {
		return p.c.Fail(ctx, errors.Join(query.ErrUnavailable, err))
	}
	res := p.o.Query.Registry.Residents()
	ids := make([]string, len(res))
	names := make(map[string]string, len(res))
	for i, r := range res {
		ids[i], names[r.ID] = r.ID, r.Name
	}
	if err := p.o.Query.Record(ctx.UserContext(), web.Principal(ctx), audit.Entry{Action: "residents.list", Residents: ids}); err != nil {
		return p.c.Fail(ctx, err)
	}
	page := assignmentsPage{Residents: res, Caregivers: make([]caregiver, len(cgs))}
	for i, u := range cgs {
		page.Caregivers[i].User = u
		for _, id := range u.ResidentIDs {
			if n, ok := names[id]; ok {
				page.Caregivers[i].Names = append(page.Caregivers[i].Names, n)
			}
		}
	}
	return p.c.Page(ctx, http.StatusOK, "assignments", page, "assign.title")
}

type ruleRow struct {
	Rule     string
	Disabled bool
	Override bool
	Snoozed  *rules.Snooze // in force now
	Snooze   string        // the stored snooze (in force or ended) as JSON, kept unless unticked
	Limit    *limitForm
}

type settingsPage struct {
	Resident   devices.Resident
	Settings   rules.Settings
	Rules      []ruleRow
	Intervals  []interval
	ETag       string
	Until      string // mode_until in the console's time zone, for datetime-local
	TZ         string // that zone's offset now ("+09:00"), which the form appends
	Scales     []int
	Modes      []string
	Severities []string
	Units      []string
}

// settings is GET /residents/{id}/settings: the resident's rule settings
// as a form, rule by rule, that replaces them (PUT with If-Match, so a
// change someone made meanwhile is not overwritten). Recorded as
// settings.read, as its API twin.
func (p *pages) settings(ctx *fiber.Ctx) error {
	pr := web.Principal(ctx)
	st, err := p.o.Query.Settings(ctx.UserContext(), pr, ctx.Params("id"))
	if err != nil {
		return p.c.Fail(ctx, err)
	}
	r, err := p.o.Query.Visible(pr, ctx.Params("id"))
	if err != nil {
		return p.c.Fail(ctx, err)
	}
	// What the form shows: the stored settings, or with ?scale= the other
	// SpO2 scale chosen, whose default SpO2 limits the page then shows
	// (console.js asks for them when the scale select changes).
	shown := st
	if q := ctx.QueryInt("scale"); slices.Contains(scales, q) {
		shown.SpO2Scale = q
	}
	now := p.o.Clock()
	page := settingsPage{Resident: r, Settings: shown, ETag: query.SettingsETag(st), Intervals: intervalsOf(st),
		TZ: now.In(p.o.Location).Format("-07:00"), Scales: scales, Modes: modes, Severities: severities, Units: units}
	if !st.ModeUntil.IsZero() {
		page.Until = st.ModeUntil.In(p.o.Location).Format("2006-01-02T15:04")
	}
	for _, name := range rules.RuleNames() {
		row := ruleRow{Rule: name, Disabled: st.Disabled[name], Limit: limitFormOf(name, shown)}
		_, row.Override = st.Limits[name]
		if z, ok := st.Snoozed[name]; ok {
			row.Snooze = snoozeJSON(z)
			if now.Before(z.Until) {
				row.Snoozed = &z
			}
		}
		page.Rules = append(page.Rules, row)
	}
	return p.c.Page(ctx, http.StatusOK, "settings", page, "settings.title", r.Name)
}

type tierRow struct {
	N       int // 1 for the first tier
	Role    string
	Users   []users.User // by id; a user the viewer may not list shows as its id
	Choices []choice     // who the form offers: the viewer's staff, then anyone else named
}

// choice is one person a tier's form offers, ticked when named.
type choice struct {
	users.User
	On bool
}

type escalationPage struct {
	Resident   devices.Resident
	Tiers      []tierRow // without the emergency tier, and one empty tier to add
	Emergency  bool      // the chain ends with the emergency tier
	EmergencyN int       // its number
	Last       int       // its index in the form's field names: after every other
	Roles      []string  // the roles a tier other than the emergency one may have
	Staff      []users.User
}

// escalation is GET /residents/{id}/escalation: who is told, tier by tier,
// and a form that replaces the chain: a fieldset per tier with its role and
// the people named, an empty one to add a tier, and whether 119 is called
// last. Recorded as escalation.read, as its API twin. Names come from the
// users the viewer may list (GET /api/v1/users: admins everyone,
// coordinators caregivers).
func (p *pages) escalation(ctx *fiber.Ctx) error {
	pr := web.Principal(ctx)
	ch, err := p.o.Query.Chain(ctx.UserContext(), pr, ctx.Params("id"))
	if err != nil {
		return p.c.Fail(ctx, err)
	}
	r, err := p.o.Query.Visible(pr, ctx.Params("id"))
	if err != nil {
		return p.c.Fail(ctx, err)
	}
	role := ""
	if pr.Role != users.RoleAdmin {
		role = users.RoleCaregiver
	}
	staff, err := p.o.Users.List(ctx.UserContext(), role)
	if err != nil {
		return p.c.Fail(ctx, errors.Join(query.ErrUnavailable, err))
	}
	page := escalationPage{Resident: r, Staff: staff, Last: len(ch.Tiers) + 2, EmergencyN: len(ch.Tiers),
		Roles: []string{escalation.RoleCaregiver, escalation.RoleBackup, escalation.RoleCoordinator, escalation.RoleGuardian}}
	for i, t := range append(ch.Tiers, escalation.Tier{}) {
		if t.Role == escalation.RoleEmergency {
			page.Emergency = true
			continue
		}
		row := tierRow{N: i + 1, Role: t.Role}
		for _, s := range staff {
			row.Choices = append(row.Choices, choice{s, slices.Contains(t.UserIDs, s.ID)})
		}
		for _, id := range t.UserIDs {
			u := users.User{ID: id}
			if i := slices.IndexFunc(staff, func(s users.User) bool { return s.ID == id }); i >= 0 {
				u = staff[i]
			} else {
				row.Choices = append(row.Choices, choice{u, true})
			}
			row.Users = append(row.Users, u)
		}
		page.Tiers = append(page.Tiers, row)
	}
	return p.c.Page(ctx, http.StatusOK, "escalation", page, "chain.title", r.Name)
}
