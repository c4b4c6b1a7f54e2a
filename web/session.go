package web

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/internal/audit"
	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/query"
	"github.com/carehub/carehub/internal/users"
)

// Cookies. The session cookie holds the user's token from internal/users
// (the same tokens the API's bearers are: one expiry, one revocation); it
// is HttpOnly, so no script can read it, and SameSite=Strict, so no other
// site's page can send it.
const (
	sessionCookie = "carehub_session"
	loginCookie   = "carehub_login_csrf" // the login form's CSRF token, before a session exists
	langCookie    = "carehub_lang"
	csrfField     = "csrf"
	// CSRFHeader carries the session's CSRF token on the console's own
	// fetch calls to /api/v1 (acknowledge, resolve, ...).
	CSRFHeader   = "X-CSRF-Token"
	localUser    = "web.user"
	localToken   = "web.token"
	loginCSRFTTL = time.Hour
)

// csrfToken is the CSRF token of a session: derived from the session token
// (a secret the page cannot read), so it needs no server state, survives a
// restart and is the same on every instance.
func csrfToken(session string) string {
	sum := sha256.Sum256([]byte("carehub-csrf\x00" + session))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func sameToken(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// sameOrigin refuses what a browser says came from another site: Fetch
// Metadata first, then Origin against the Host the request was sent to.
func sameOrigin(ctx *fiber.Ctx) bool {
	switch ctx.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return false
	}
	// "null": carehub answers with Referrer-Policy: no-referrer, under
	// which Chromium sends Origin: null on its own form posts; the token
	// still has to match.
	if o := ctx.Get(fiber.HeaderOrigin); o != "" && o != "null" {
		u, err := url.Parse(o)
		if err != nil || u.Host != string(ctx.Request().Host()) {
			return false
		}
	}
	return true
}

// Session authenticates an API request from the console's session cookie
// (api.Options.Session): the user token, or false. A request that changes
// something (not GET or HEAD) must carry the session's CSRF token in
// X-CSRF-Token and come from carehub's own pages.
func (c *Console) Session(ctx *fiber.Ctx) (string, bool) {
	tok := ctx.Cookies(sessionCookie)
	if tok == "" {
		return "", false
	}
	switch ctx.Method() {
	case fiber.MethodGet, fiber.MethodHead:
		return tok, true
	}
	if !sameOrigin(ctx) || !sameToken(ctx.Get(CSRFHeader), csrfToken(tok)) {
		return "", false
	}
	return tok, true
}

// auth lets a page through only with a valid session; a person without one
// goes to the login page.
func (c *Console) auth(ctx *fiber.Ctx) error {
	tok := ctx.Cookies(sessionCookie)
	if tok != "" {
		u, err := c.o.Users.Authenticate(ctx.UserContext(), tok)
		if err == nil {
			ctx.Locals(localUser, u)
			ctx.Locals(localToken, tok)
			return ctx.Next()
		}
		if !errors.Is(err, users.ErrUnauthorized) {
			return c.fail(ctx, c.view(ctx, ""), errors.Join(query.ErrUnavailable, err))
		}
		c.clearCookie(ctx, sessionCookie)
	}
	if ctx.Method() != fiber.MethodGet {
		return ctx.SendStatus(http.StatusUnauthorized)
	}
	if strings.HasPrefix(ctx.Path(), "/m/") { // the phone app: back to it after login
		return ctx.Redirect("/login?next="+url.QueryEscape(ctx.OriginalURL()), http.StatusSeeOther)
	}
	return ctx.Redirect("/login", http.StatusSeeOther)
}

// nextPage is where a login goes on to: a phone page the person asked
// for, else the overview. Only /m/ paths, so no one can make the form
// send people elsewhere.
func nextPage(next string) string {
	if strings.HasPrefix(next, "/m/") && !strings.ContainsAny(next, "\\\r\n") {
		return next
	}
	return "/"
}

func (c *Console) secure(ctx *fiber.Ctx) bool { return c.o.SecureCookies || ctx.Protocol() == "https" }

func (c *Console) setCookie(ctx *fiber.Ctx, name, value string, expires time.Time) {
	ctx.Cookie(&fiber.Cookie{Name: name, Value: value, Path: "/", Expires: expires, HTTPOnly: true, Secure: c.secure(ctx), SameSite: fiber.CookieSameSiteStrictMode})
}

func (c *Console) clearCookie(ctx *fiber.Ctx, name string) {
	ctx.Cookie(&fiber.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HTTPOnly: true, Secure: c.secure(ctx), SameSite: fiber.CookieSameSiteStrictMode})
}

// loginForm is the login page's data.
type loginForm struct {
	User    string
	Problem string
	Next    string // a /m/ page to go on to
}

func (c *Console) loginPage(ctx *fiber.Ctx) error {
	return c.showLogin(ctx, http.StatusOK, loginForm{Next: nextPage(ctx.Query("next"))})
}

// showLogin renders the login form with a fresh login CSRF token, kept in
// a cookie and echoed in the form (double submit; SameSite=Strict keeps
// other sites from sending the cookie).
func (c *Console) showLogin(ctx *fiber.Ctx, status int, f loginForm) error {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	tok := base64.RawURLEncoding.EncodeToString(b)
	c.setCookie(ctx, loginCookie, tok, c.o.Clock().Add(loginCSRFTTL))
	v := c.view(ctx, tok)
	v.Title = v.T("login.title")
	v.Data = f
	return c.render(ctx, status, "login", v)
}

// login checks the form's CSRF token, then the password with the user
// store (which limits attempts per user), records the attempt in the audit
// trail like POST /auth/login, and starts the session.
func (c *Console) login(ctx *fiber.Ctx) error {
	if !sameOrigin(ctx) || !sameToken(ctx.FormValue(csrfField), ctx.Cookies(loginCookie)) {
		return c.refuseCSRF(ctx)
	}
	id, next := ctx.FormValue("user"), nextPage(ctx.FormValue("next"))
	tok, exp, err := c.passwordLogin(ctx, id, ctx.FormValue("password"))
	if err != nil {
		var st interface{ StatusCode() int }
		switch {
		case errors.Is(err, users.ErrUnauthorized), errors.As(err, &st) && st.StatusCode() == http.StatusUnauthorized:
			return c.showLogin(ctx, http.StatusUnauthorized, loginForm{User: id, Problem: "login.failed", Next: next})
		case errors.Is(err, users.ErrBusy), errors.As(err, &st) && st.StatusCode() == http.StatusTooManyRequests:
			return c.showLogin(ctx, http.StatusTooManyRequests, loginForm{User: id, Problem: "login.busy", Next: next})
		}
		return c.fail(ctx, c.view(ctx, ""), errors.Join(query.ErrUnavailable, err))
	}
	c.clearCookie(ctx, loginCookie)
	c.setCookie(ctx, sessionCookie, tok, exp)
	return ctx.Redirect(next, http.StatusSeeOther)
}

// passwordLogin checks the password with the API's check (its limits,
// logs and audit entry), or without Register's hook directly with the
// user store, auditing the attempt here.
func (c *Console) passwordLogin(ctx *fiber.Ctx, id, password string) (string, time.Time, error) {
	if c.checkLogin != nil {
		return c.checkLogin(ctx, id, password)
	}
	tok, exp, err := c.o.Users.Login(ctx.UserContext(), id, password)
	e := audit.Entry{Action: "login", Target: id, Outcome: audit.OutcomeOK}
	if !catalog.ValidID(id) {
		e.Target = "" // may be a password typed in the wrong field
	}
	p := query.Principal{ID: e.Target, Source: ctx.IP()}
	if err != nil {
		e.Outcome = audit.OutcomeDenied
		_ = c.o.Query.Record(ctx.UserContext(), p, e)
		return "", time.Time{}, err
	}
	if err := c.o.Query.Record(ctx.UserContext(), p, e); err != nil {
		_ = c.o.Users.Revoke(ctx.UserContext(), tok)
		return "", time.Time{}, err
	}
	return tok, exp, nil
}

// logout revokes the session's token (so a copied cookie stops working
// too) and clears the cookie.
func (c *Console) logout(ctx *fiber.Ctx) error {
	tok, _ := ctx.Locals(localToken).(string)
	if !sameOrigin(ctx) || !sameToken(ctx.FormValue(csrfField), csrfToken(tok)) {
		return c.refuseCSRF(ctx)
	}
	if err := c.o.Users.Revoke(ctx.UserContext(), tok); err != nil {
		return c.fail(ctx, c.view(ctx, ""), errors.Join(query.ErrUnavailable, err))
	}
	c.clearCookie(ctx, sessionCookie)
	return ctx.Redirect("/login", http.StatusSeeOther)
}

func (c *Console) refuseCSRF(ctx *fiber.Ctx) error {
	v := c.view(ctx, "")
	v.Title = v.T("error.title")
	v.Data = v.T("error.csrf")
	return c.render(ctx, http.StatusForbidden, "error", v)
}
