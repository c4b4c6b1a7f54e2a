package web

import (
	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/internal/query"
	"github.com/carehub/carehub/internal/users"
)

// What subpackages of the console (web/admin) use to add pages: the
// session check, the page headers, the layout and the error page, so that
// their pages are this console's pages (one CSP, one catalogue, one
// layout). Their templates sit in templates/ with the others (pageNames).

// Auth is the session check of every page (a person without a session
// goes to the login page).
func (c *Console) Auth(ctx *fiber.Ctx) error { return c.auth(ctx) }

// Headers sets every page's CSP and no-store.
func (c *Console) Headers(ctx *fiber.Ctx) error { return c.headers(ctx) }

// Page renders page with data inside the layout with status, titled by
// the catalogue text of titleKey with args.
func (c *Console) Page(ctx *fiber.Ctx, status int, page string, data any, titleKey string, args ...any) error {
	v := c.view(ctx, "")
	v.Title = v.T(titleKey, args...)
	v.Data = data
	return c.render(ctx, status, page, v)
}

// Fail renders the error page for a query error: 404 for query.ErrNotFound
// (what the person may not see looks like what does not exist), 503 else.
func (c *Console) Fail(ctx *fiber.Ctx, err error) error { return c.fail(ctx, c.view(ctx, ""), err) }

// CurrentUser is the signed-in user of a request that passed Auth.
func CurrentUser(ctx *fiber.Ctx) (users.User, bool) {
	u, ok := ctx.Locals(localUser).(users.User)
	return u, ok
}

// Principal is the signed-in user as the query layer sees them.
func Principal(ctx *fiber.Ctx) query.Principal {
	u, ok := CurrentUser(ctx)
	if !ok {
		return query.Principal{Source: ctx.IP()}
	}
	return query.Principal{ID: u.ID, Role: u.Role, Residents: u.ResidentIDs, Source: ctx.IP()}
}

// Only lets a page through for the roles named; anyone else gets the 404
// page, the same answer as for a page that does not exist. It goes after
// Auth.
func (c *Console) Only(roles ...string) fiber.Handler {
	return func(ctx *fiber.Ctx) error {
		if u, ok := CurrentUser(ctx); ok {
			for _, r := range roles {
				if u.Role == r {
					return ctx.Next()
				}
			}
		}
		return c.Fail(ctx, query.ErrNotFound)
	}
}
