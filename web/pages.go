package web

import (
	"context"
	"html/template"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/internal/query"
	"github.com/carehub/carehub/web/chart"
)

// sparkDays is the overview's sparkline span (issue 12: 14 days).
const sparkDays = 14

// sparkMetric is the metric the overview's sparklines show.
const sparkMetric = "heart_rate"

type overviewRow struct {
	query.OverviewRow
	Spark template.HTML
}

func (c *Console) overview(ctx *fiber.Ctx) error {
	v := c.view(ctx, "")
	rows, err := c.o.Query.Overview(ctx.UserContext(), v.principal(ctx))
	if err != nil {
		return c.fail(ctx, v, err)
	}
	sq := c.sparkQuery(v.Now)
	from := sq.From
	series := c.o.Query.OverviewTrends(ctx.UserContext(), rows, sq)
	out := make([]overviewRow, len(rows))
	for i, r := range rows {
		title := v.T("spark.title", r.Resident.Name)
		if len(series[i]) == 0 {
			title = v.T("spark.nodata")
		}
		out[i] = overviewRow{OverviewRow: r, Spark: chart.Sparkline(series[i], from, sparkDays, title)}
	}
	v.Title = v.T("overview.title")
	v.Data = out
	return c.render(ctx, http.StatusOK, "overview", v)
}

// sparkQuery asks for the overview's sparklines: daily means of the last
// sparkDays calendar days, today's so far included.
func (c *Console) sparkQuery(now time.Time) query.ReadingsQuery {
	from := startOfDay(now, c.o.Location).AddDate(0, 0, -(sparkDays - 1))
	return query.ReadingsQuery{Metric: sparkMetric, From: from, To: now, Every: 24 * time.Hour, Fn: "mean"}
}

// WarmOverview asks for the overview's sparklines now and every so often,
// until ctx ends, so that no coordinator waits for them: the first
// overview of a day would otherwise read two weeks of every resident's
// heart rate. It does nothing without a DailySource.
func (c *Console) WarmOverview(ctx context.Context, every time.Duration) {
	if c.o.Query.Daily == nil {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		q := c.sparkQuery(c.o.Clock())
		if _, err := c.o.Query.Daily.DailyMeans(ctx, q.Metric, q.From, q.To); err != nil && ctx.Err() == nil {
			c.o.Log.Warn().Err(err).Msg("sparkline warm-up failed; the next overview asks InfluxDB itself")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func startOfDay(t time.Time, loc *time.Location) time.Time {
	y, m, d := t.In(loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, loc)
}

// trendMetrics are the vital and activity metrics a resident page charts,
// in this order; metrics without data in the range are listed as such.
var trendMetrics = []string{"heart_rate", "spo2", "resp_rate", "body_temp", "systolic_bp", "diastolic_bp", "glucose", "weight", "steps", "sleep_min", "motion"}

// ranges a resident page offers, with their aggregation window.
var ranges = map[string]struct {
	span, every time.Duration
	fn          string
}{
	"day":   {24 * time.Hour, 10 * time.Minute, "mean"},
	"week":  {7 * 24 * time.Hour, time.Hour, "mean"},
	"month": {30 * 24 * time.Hour, 6 * time.Hour, "mean"},
}

// activityFn: activity metrics are counts, so windows add up.
var activityFn = map[string]string{"steps": "max", "motion": "count", "sleep_min": "max"}

type residentPage struct {
	Resident devices.Resident
	Home     string // the home's label, if it has one
	Devices  []devices.Device
	Mode     string
	Range    string
	Ranges   []string
	Trends   []trend
	NoData   []string // labels of the metrics without data in the range
}

// resident is a resident's page: profile, devices, mode and charts. It
// records what GET /residents/{id}, GET /residents/{id}/devices and
// GET /residents/{id}/readings record: one entry each.
func (c *Console) resident(ctx *fiber.Ctx) error {
	v := c.view(ctx, "")
	p := v.principal(ctx)
	r, err := c.o.Query.Resident(ctx.UserContext(), p, ctx.Params("id"))
	if err != nil {
		return c.fail(ctx, v, err)
	}
	devs, err := c.o.Query.Devices(ctx.UserContext(), p, r.ID)
	if err != nil {
		return c.fail(ctx, v, err)
	}
	rng := ctx.Query("range", "week")
	spec, ok := ranges[rng]
	if !ok {
		rng, spec = "week", ranges["week"]
	}
	to := v.Now
	from := to.Add(-spec.span)
	qs := make([]query.ReadingsQuery, len(trendMetrics))
	for i, m := range trendMetrics {
		fn := spec.fn
		if f, ok := activityFn[m]; ok {
			fn = f
		}
		qs[i] = query.ReadingsQuery{Metric: m, From: from, To: to, Every: spec.every, Fn: fn}
	}
	series, err := c.o.Query.ReadingsSet(ctx.UserContext(), p, r.ID, qs)
	if err != nil {
		return c.fail(ctx, v, err)
	}
	page := residentPage{Resident: r, Home: c.o.Query.HomeName(r.HomeID), Devices: devs, Range: rng, Ranges: []string{"day", "week", "month"}}
	if c.o.Query.Mode != nil {
		page.Mode = c.o.Query.Mode(r.ID, v.Now)
	}
	// Metrics with data get a chart; the others are named in one line.
	for i, m := range trendMetrics {
		t := v.trendChart(m, series[i], from, to, spec.every)
		if t.Empty {
			page.NoData = append(page.NoData, t.Label)
			continue
		}
		page.Trends = append(page.Trends, t)
	}
	v.Title = v.T("resident.title", r.Name)
	v.Data = page
	return c.render(ctx, http.StatusOK, "resident", v)
}

type inboxPage struct {
	Alerts []alerts.Alert
	Open   int
	Names  map[string]string // resident names by id, for the rows
}

// inboxAlerts lists the unresolved alerts the caller may see: unacknowledged
// first, then by severity, then newest first. It records alerts.list, as
// GET /alerts does.
func (c *Console) inboxAlerts(ctx *fiber.Ctx, v *view) (inboxPage, error) {
	list, err := c.o.Query.Alerts(ctx.UserContext(), v.principal(ctx), alerts.Filter{Limit: alerts.DefaultListLimit})
	if err != nil {
		return inboxPage{}, err
	}
	list = slices.DeleteFunc(list, func(a alerts.Alert) bool { return a.Status == alerts.StatusResolved })
	sort.SliceStable(list, func(i, j int) bool {
		a, b := list[i], list[j]
		if (a.Status == alerts.StatusOpen) != (b.Status == alerts.StatusOpen) {
			return a.Status == alerts.StatusOpen
		}
		if x, y := query.SeverityRank[a.Severity], query.SeverityRank[b.Severity]; x != y {
			return x > y
		}
		return a.RaisedAt.After(b.RaisedAt)
	})
	page := inboxPage{Alerts: list, Names: map[string]string{}}
	for _, a := range list {
		if a.Status == alerts.StatusOpen {
			page.Open++
		}
		c.lookupNames(ctx.UserContext(), v, a.AcknowledgedBy)
		// The alerts.list entry names these residents already.
		if r, err := c.o.Query.Visible(v.principal(ctx), a.ResidentID); err == nil {
			page.Names[a.ResidentID] = r.Name
		}
	}
	return page, nil
}

// inbox is the alerts inbox; console.js keeps it live over
// GET /api/v1/alerts/stream and re-reads the rows from inboxRows.
func (c *Console) inbox(ctx *fiber.Ctx) error {
	v := c.view(ctx, "")
	page, err := c.inboxAlerts(ctx, v)
	if err != nil {
		return c.fail(ctx, v, err)
	}
	v.Title = v.T("alerts.title")
	v.Data = page
	return c.render(ctx, http.StatusOK, "inbox", v)
}

// inboxRows is the inbox's table body alone, for console.js.
func (c *Console) inboxRows(ctx *fiber.Ctx) error {
	v := c.view(ctx, "")
	page, err := c.inboxAlerts(ctx, v)
	if err != nil {
		return c.fail(ctx, v, err)
	}
	v.Data = page
	t := c.pages["inbox"]
	ctx.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return t.ExecuteTemplate(ctx.Response().BodyWriter(), "rows", v)
}

type alertPage struct {
	Alert    alerts.Alert
	Resident devices.Resident
	Trend    *trend
	Outcomes []string
}

// alertAround is how much of the alert's metric its page shows: before
// the alert, and after it up to now.
const alertBefore, alertAfter = 3 * time.Hour, time.Hour

// alertPage is one alert with its timeline and the readings around it. It
// records alert.read (GET /alerts/{id}) and, when the alert has a metric,
// readings.read.
func (c *Console) alertPage(ctx *fiber.Ctx) error {
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
	page := alertPage{Alert: a, Resident: r, Outcomes: []string{
		alerts.OutcomeFalseAlarm, alerts.OutcomeOKByPhone, alerts.OutcomeVisited, alerts.OutcomeEmergencyServices, alerts.OutcomeHospital,
	}}
	if a.Metric != "" {
		from := a.RaisedAt.Add(-alertBefore)
		to := a.RaisedAt.Add(alertAfter)
		if to.After(v.Now) {
			to = v.Now
		}
		every := 5 * time.Minute
		series, err := c.o.Query.ReadingsSet(ctx.UserContext(), p, r.ID, []query.ReadingsQuery{{Metric: a.Metric, From: from, To: to, Every: every, Fn: "mean"}})
		if err != nil {
			return c.fail(ctx, v, err)
		}
		t := v.trendChart(a.Metric, series[0], from, to, every)
		page.Trend = &t
	}
	v.Title = v.T("alert.title", v.T("severity."+a.Severity))
	v.Data = page
	return c.render(ctx, http.StatusOK, "alert", v)
}

// people are the user ids an alert's page names: who acknowledged,
// resolved, was assigned, was notified or wrote in its timeline.
func people(a alerts.Alert) []string {
	ids := append([]string{a.AcknowledgedBy, a.ResolvedBy, a.AssignedTo}, a.Recipients...)
	for _, n := range a.Notes {
		ids = append(ids, n.By)
	}
	return ids
}
