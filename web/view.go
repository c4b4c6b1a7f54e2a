package web

import (
	"context"
	"html/template"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/internal/query"
	"github.com/carehub/carehub/internal/users"
	"github.com/carehub/carehub/web/chart"
	"github.com/carehub/carehub/web/i18n"
	"github.com/carehub/carehub/web/rulemsg"
)

// view is what every template gets: the language, the signed-in user, the
// CSRF token for its forms and the page's own Data. Its methods are the
// templates' only helpers (style.md: no logic in templates beyond loops
// and lookups).
type view struct {
	c     *Console
	Lang  string
	User  *users.User
	CSRF  string
	Now   time.Time
	Title string
	Path  string
	Data  any
	names map[string]string // people's display names by user id (Who)
}

// view builds the data of a page for the request; csrf is the token the
// page's forms carry (the session's, or the login form's).
func (c *Console) view(ctx *fiber.Ctx, csrf string) *view {
	lang := ctx.Cookies(langCookie)
	if q := ctx.Query("lang"); q != "" {
		lang = i18n.Pick(q)
		ctx.Cookie(&fiber.Cookie{Name: langCookie, Value: lang, Path: "/", MaxAge: 365 * 24 * 3600, SameSite: fiber.CookieSameSiteLaxMode})
	}
	v := &view{c: c, Lang: i18n.Pick(lang), Now: c.o.Clock(), Path: ctx.Path(), CSRF: csrf}
	if u, ok := ctx.Locals(localUser).(users.User); ok {
		v.User = &u
		if tok, ok := ctx.Locals(localToken).(string); ok && csrf == "" {
			v.CSRF = csrfToken(tok)
		}
	}
	return v
}

func (v *view) principal(ctx *fiber.Ctx) query.Principal { return Principal(ctx) }

// T is the catalogue text of key in the page's language.
func (v *view) T(key string, args ...any) string { return v.c.cat.T(v.Lang, key, args...) }

// Texts is the catalogue's texts under prefix as JSON (i18n.Texts).
func (v *view) Texts(prefix string) string { return v.c.cat.Texts(v.Lang, prefix) }

// DT formats a time in CARE_TIMEZONE (Korean: "2026. 12. 3.(Thu) 15:05", weekday in Hangul).
func (v *view) DT(t time.Time) string { return v.c.cat.DateTime(v.Lang, t, v.c.o.Location) }

// DTp formats an optional time; nil is empty.
func (v *view) DTp(t *time.Time) string {
	if t == nil {
		return ""
	}
	return v.DT(*t)
}

// Since says how long ago t was ("3 min ago").
func (v *view) Since(t time.Time) string { return v.c.cat.Since(v.Lang, t, v.Now, v.c.o.Location) }

// RFC is t for <time datetime>, in UTC.
func (v *view) RFC(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// Unacked says how long an alert raised at t has waited (i18n.Unacked).
func (v *view) Unacked(t time.Time) string { return v.c.cat.Unacked(v.Lang, t, v.Now) }

// Asset is the checksummed URL of a static file.
func (v *view) Asset(name string) string { return v.c.assetURL(name) }

// Other is the language the switch offers.
func (v *view) Other() string {
	if v.Lang == "ko" {
		return "en"
	}
	return "ko"
}

// severity is how a severity shows: never colour alone, also a word and a
// shape (IEC 60601-1-8 style: more marks = more urgent).
type severity struct {
	Class, Word, Shape string
	Rank               int
}

var severityShapes = map[string]string{"critical": "▲▲▲", "high": "▲▲", "warning": "▲", "info": "○"}

// Sev describes a severity for a badge.
func (v *view) Sev(s string) severity {
	shape, ok := severityShapes[s]
	if !ok {
		return severity{}
	}
	return severity{Class: "sev-" + s, Word: v.T("severity." + s), Shape: shape, Rank: query.SeverityRank[s]}
}

// Badge is a severity badge: a shape, a word and a colour class together,
// so that no one needs to tell colours apart (WCAG 1.4.1).
func (v *view) Badge(s string) template.HTML {
	sv := v.Sev(s)
	if sv.Word == "" {
		return ""
	}
	return template.HTML(`<span class="badge ` + sv.Class + `" data-severity="` + template.HTMLEscapeString(s) + `"><span class="shape" aria-hidden="true">` +
		sv.Shape + `</span> ` + template.HTMLEscapeString(sv.Word) + `</span>`) //nolint:gosec // fixed markup, escaped text
}

// Msg is what an alert is about, in the page's language (rulemsg).
func (v *view) Msg(a alerts.Alert) string { return rulemsg.Text(v.T, a) }

// Kind is a device kind in words (the catalogue's "kind.<kind>").
func (v *view) Kind(kind string) string {
	if s := v.T("kind." + kind); s != "kind."+kind {
		return s
	}
	return kind
}

// Who names a person by user id: their display name when the page looked
// it up (Console.lookupNames), the system in words, else the id.
func (v *view) Who(id string) string {
	if id == alerts.SystemActor {
		return v.T("actor.system")
	}
	if n := v.names[id]; n != "" {
		return n
	}
	return id
}

// lookupNames finds the display names of the people ids name, for Who
// (the users store's Get); one that cannot be read shows as its id.
func (c *Console) lookupNames(ctx context.Context, v *view, ids ...string) {
	g, ok := c.o.Users.(interface {
		Get(ctx context.Context, id string) (users.User, error)
	})
	if v.names == nil {
		v.names = map[string]string{}
	}
	for _, id := range ids {
		if _, done := v.names[id]; ok && !done && id != "" && id != alerts.SystemActor {
			u, _ := g.Get(ctx, id)
			v.names[id] = u.Name
		}
	}
}

// Num is a reading's value as the charts write it (one decimal at most).
func (v *view) Num(f float64) string { return chart.Num(f) }
