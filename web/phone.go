package web

import (
	"bytes"
	"encoding/json"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/internal/notify"
	"github.com/carehub/carehub/internal/query"
	"github.com/carehub/carehub/web/chart"
	"github.com/carehub/carehub/web/i18n"
)

// The phone app (issue 13): /m/, made for one hand and a small screen. It
// uses the console's sessions, catalogue, CSP and assets; the alert
// actions are the API's own endpoints, called by phone.js with the
// session's CSRF token; push subscriptions go to /api/v1/push/subscriptions.

// phonePageNames are the phone's pages; each defines "content" inside
// phone_layout.html.
var phonePageNames = []string{"phone_alerts", "phone_alert", "phone_device"}

func (c *Console) loadPhonePages(tfs fs.FS) error {
	for _, name := range phonePageNames {
		t, err := template.New("phone_layout.html").ParseFS(tfs, "phone_layout.html", name+".html")
		if err != nil {
			return err
		}
		c.pages[name] = t
	}
	return nil
}

// registerPhone mounts /m/: the pages, the manifest and the service worker.
func (c *Console) registerPhone(app *fiber.App) {
	h := c.headers
	app.Get("/m/manifest.webmanifest", c.manifest)
	app.Get("/m/sw.js", c.serviceWorker)
	app.Get("/m/", h, c.auth, c.phoneAlerts)
	app.Get("/m/phone", h, c.auth, c.phoneDevice)
	app.Get("/m/alerts/:id", h, c.auth, c.phoneAlert)
}

// phoneAlerts lists the care worker's unresolved alerts: unacknowledged
// first, then the most severe, then the newest (the inbox's order). It
// records alerts.list, as GET /alerts does.
func (c *Console) phoneAlerts(ctx *fiber.Ctx) error {
	v := c.view(ctx, "")
	page, err := c.inboxAlerts(ctx, v)
	if err != nil {
		return c.fail(ctx, v, err)
	}
	// The list shows masked names only: it is glanced at in public.
	for id, n := range page.Names {
		page.Names[id] = notify.MaskName(n)
	}
	v.Title = v.T("m.alerts.title")
	v.Data = page
	return c.renderPhone(ctx, http.StatusOK, "phone_alerts", v)
}

type phoneReading struct {
	Label, Value, Unit string
	At                 time.Time
}

type phoneAlertPage struct {
	Alert    alerts.Alert
	Resident devices.Resident
	Masked   string
	Address  string
	Readings []phoneReading // newest first
	Outcomes []string
}

// phoneLatest is how many of the alert metric's latest readings the page
// lists.
const phoneLatest = 5

// phoneAlert is one alert on the phone: the masked name (revealed on a
// tap), the home, the latest readings of the alert's metric and what the
// rule saw, and the acknowledge button in the thumb zone. It records what
// the console's alert page records: alert.read and, with a metric,
// readings.read.
func (c *Console) phoneAlert(ctx *fiber.Ctx) error {
	v := c.view(ctx, "")
	p := v.principal(ctx)
	a, err := c.o.Query.Alert(ctx.UserContext(), p, ctx.Params("id"))
	if err != nil {
		return c.fail(ctx, v, err)
	}
	r, err := c.o.Query.Visible(p, a.ResidentID)
	if err != nil {
		return c.fail(ctx, v, err)
	}
	c.lookupNames(ctx.UserContext(), v, people(a)...)
	page := phoneAlertPage{Alert: a, Resident: r, Masked: notify.MaskName(r.Name), Address: r.HomeID, Outcomes: []string{
		alerts.OutcomeFalseAlarm, alerts.OutcomeOKByPhone, alerts.OutcomeVisited, alerts.OutcomeEmergencyServices, alerts.OutcomeHospital,
	}}
	if n := c.o.Query.HomeName(r.HomeID); n != "" {
		page.Address = n
	}
	if a.Metric != "" {
		to := v.Now
		from := a.RaisedAt.Add(-alertBefore)
		series, err := c.o.Query.ReadingsSet(ctx.UserContext(), p, r.ID, []query.ReadingsQuery{{Metric: a.Metric, From: from, To: to, Every: 5 * time.Minute, Fn: "last"}})
		if err != nil {
			return c.fail(ctx, v, err)
		}
		t := v.trendChart(a.Metric, nil, from, to, 5*time.Minute)
		pts := series[0]
		for i := len(pts) - 1; i >= 0 && len(page.Readings) < phoneLatest; i-- {
			page.Readings = append(page.Readings, phoneReading{Label: t.Label, Value: chart.Num(pts[i].V), Unit: t.Unit, At: pts[i].T})
		}
	}
	v.Title = v.T("alert.title", v.T("severity."+a.Severity))
	v.Data = page
	return c.renderPhone(ctx, http.StatusOK, "phone_alert", v)
}

// phoneDevice is "this phone": whether it will receive alerts and how to
// fix it. The facts (permission, subscription, installed) are only known
// in the browser: phone.js fills them in; the page carries every text.
func (c *Console) phoneDevice(ctx *fiber.Ctx) error {
	v := c.view(ctx, "")
	v.Title = v.T("m.phone.title")
	return c.renderPhone(ctx, http.StatusOK, "phone_device", v)
}

func (c *Console) renderPhone(ctx *fiber.Ctx, status int, page string, v *view) error {
	return c.render(ctx, status, page, v)
}

// manifest is the web app manifest, in the request's language.
func (c *Console) manifest(ctx *fiber.Ctx) error {
	v := c.view(ctx, "")
	m := map[string]any{
		"name":             v.T("m.app.name"),
		"short_name":       v.T("m.app.short"),
		"lang":             v.Lang,
		"start_url":        "/m/",
		"scope":            "/m/",
		"id":               "/m/",
		"display":          "standalone",
		"orientation":      "portrait",
		"background_color": "#ffffff",
		"theme_color":      "#243447",
		"icons": []map[string]string{
			{"src": c.assetURL("icon-192.png"), "sizes": "192x192", "type": "image/png"},
			{"src": c.assetURL("icon-512.png"), "sizes": "512x512", "type": "image/png"},
			{"src": c.assetURL("icon-512.png"), "sizes": "512x512", "type": "image/png", "purpose": "maskable"},
			{"src": c.assetURL("icon.svg"), "sizes": "any", "type": "image/svg+xml"},
		},
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	ctx.Set(fiber.HeaderContentType, "application/manifest+json")
	ctx.Set(fiber.HeaderCacheControl, "no-cache")
	return ctx.Send(b)
}

// swTexts are the catalogue keys the service worker shows.
var swTexts = []string{"m.sw.ack", "m.sw.open", "m.sw.acked", "m.sw.ackfailed"}

// serviceWorker serves static/sw.js with the catalogue's texts in both
// languages put in place of its SW_TEXTS marker, so the worker holds no
// text of its own. It is served under /m/, so its scope is /m/ without a
// Service-Worker-Allowed header, and is always revalidated (a changed
// worker must reach the phones).
func (c *Console) serviceWorker(ctx *fiber.Ctx) error {
	a, ok := c.assets["sw.js"]
	if !ok {
		return ctx.SendStatus(http.StatusNotFound)
	}
	texts := map[string]map[string]string{}
	for _, lang := range i18n.Languages {
		texts[lang] = map[string]string{}
		for _, k := range swTexts {
			texts[lang][strings.TrimPrefix(k, "m.sw.")] = c.cat.T(lang, k)
		}
	}
	js, err := json.Marshal(texts)
	if err != nil {
		return err
	}
	body := bytes.Replace(a.body, []byte("/*SW_TEXTS*/{}"), js, 1)
	ctx.Set(fiber.HeaderContentType, "text/javascript; charset=utf-8")
	ctx.Set(fiber.HeaderCacheControl, "no-cache")
	ctx.Set("Content-Security-Policy", CSP)
	return ctx.Send(body)
}
