// Package web is the care console: server-rendered pages for coordinators
// and care workers (issue 12), served by carehub's own Fiber app next to
// the JSON API. Pages read residents' data only through internal/query, the
// same functions the API uses, so scoping and the audit trail are the
// API's. Every string a person reads comes from the catalogues in i18n/
// (Korean first); every asset is embedded and served under a checksummed
// URL; every page carries a Content-Security-Policy that allows no inline
// script and nothing from another origin.
package web

import (
	"bytes"
	"context"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/query"
	"github.com/carehub/carehub/internal/users"
	"github.com/carehub/carehub/web/i18n"
)

// SessionStore is what the console needs of internal/users.Store.
type SessionStore interface {
	Login(ctx context.Context, id, password string) (string, time.Time, error)
	Authenticate(ctx context.Context, token string) (users.User, error)
	Revoke(ctx context.Context, token string) error
}

// Options are the console's dependencies, built by the composition root.
type Options struct {
	Query    *query.Service
	Users    SessionStore
	Location *time.Location // CARE_TIMEZONE: every time on a page is shown in it
	Clock    func() time.Time
	Log      zerolog.Logger
	// SecureCookies marks the session cookie Secure (HTTPS deployments);
	// requests that arrive over TLS get it anyway.
	SecureCookies bool
}

// CSP is the Content-Security-Policy of every console answer: scripts,
// styles, images and connections from carehub itself only, no inline
// script or style, no framing, forms only back to carehub.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; worker-src 'self'; manifest-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// Console renders the pages.
type Console struct {
	o      Options
	cat    i18n.Catalogs
	assets map[string]asset
	pages  map[string]*template.Template
	// checkLogin is the API's password check (Register).
	checkLogin LoginFunc
}

// pageNames are the templates under templates/ that are whole pages; each
// defines "content" inside layout.html.
var pageNames = []string{"login", "overview", "resident", "inbox", "alert", "error", "stats", "devices",
	"users", "assignments", "settings", "escalation", "audit", // web/admin
	"reg_homes", "reg_residents", "reg_resident", "reg_devices"} // web/registry

// New loads the catalogues, assets and templates; an error here is a
// build mistake (a template that does not parse).
func New(o Options) (*Console, error) {
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Location == nil {
		o.Location = time.UTC
	}
	if o.Query == nil || o.Users == nil {
		return nil, errors.New("web: Query and Users are required")
	}
	c := &Console{o: o, pages: map[string]*template.Template{}}
	var err error
	if c.cat, err = i18n.Builtin(); err != nil {
		return nil, err
	}
	if c.assets, err = loadAssets(files); err != nil {
		return nil, err
	}
	tfs, err := fs.Sub(files, "templates")
	if err != nil {
		return nil, err
	}
	for _, name := range pageNames {
		t, err := template.New("layout.html").ParseFS(tfs, "layout.html", "parts_*.html", name+".html")
		if err != nil {
			return nil, err
		}
		c.pages[name] = t
	}
	if err := c.loadPhonePages(tfs); err != nil {
		return nil, err
	}
	return c, nil
}

// LoginFunc checks a password the way the API's POST /auth/login does
// (api.Server.Login: its limits per user and address, logs and audit); its
// errors carry an HTTP status (StatusCode).
type LoginFunc func(ctx *fiber.Ctx, id, password string) (string, time.Time, error)

// Register mounts the console on app: pages at the root, assets under
// /static/. The JSON API keeps /api/v1 and the probes; the paths do not
// overlap. login is the API's password check; nil checks with Users and
// audits here, without the API's attempt limits (tests only).
func (c *Console) Register(app *fiber.App, login LoginFunc) {
	c.checkLogin = login
	app.Get("/static/*", c.static)
	h := c.headers
	app.Get("/login", h, c.loginPage)
	app.Post("/login", h, c.login)
	app.Post("/logout", h, c.auth, c.logout)
	app.Get("/", h, c.auth, c.overview)
	app.Get("/residents/:id", h, c.auth, c.resident)
	app.Get("/alerts", h, c.auth, c.inbox)
	app.Get("/alerts/rows", h, c.auth, c.inboxRows)
	app.Get("/alerts/:id", h, c.auth, c.alertPage)
	app.Get("/stats", h, c.auth, c.stats)
	app.Get("/devices", h, c.auth, c.devices)
	c.registerPhone(app)
}

// headers marks every page: the CSP, and no caching (pages hold personal
// data; a shared care-home PC's browser cache must not keep them).
func (c *Console) headers(ctx *fiber.Ctx) error {
	ctx.Set("Content-Security-Policy", CSP)
	ctx.Set(fiber.HeaderCacheControl, "no-store")
	ctx.Set(fiber.HeaderXFrameOptions, "DENY")
	return ctx.Next()
}

// render writes page with v as its data.
func (c *Console) render(ctx *fiber.Ctx, status int, page string, v *view) error {
	t, ok := c.pages[page]
	if !ok {
		return errors.New("web: no page " + page)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		return err
	}
	ctx.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return ctx.Status(status).Send(buf.Bytes())
}

// fail renders the error page for a query error: 404 for what the caller
// may not see (the same answer as for what does not exist), 503 otherwise.
func (c *Console) fail(ctx *fiber.Ctx, v *view, err error) error {
	status, key := http.StatusServiceUnavailable, "error.unavailable"
	if errors.Is(err, query.ErrNotFound) {
		status, key = http.StatusNotFound, "error.notfound"
	} else {
		c.o.Log.Error().Err(err).Str("path", ctx.Route().Path).Msg("console page failed")
	}
	v.Title = v.T("error.title")
	v.Data = v.T(key)
	return c.render(ctx, status, "error", v)
}
