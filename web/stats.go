package web

import (
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/internal/query"
)

// statsWeeks is how far back the statistics page looks: four whole weeks
// to compare, as GET /alerts/stats by default.
const statsWeeks = 4

// statsPage is the response statistics page: per week and per care
// worker, the same numbers as GET /alerts/stats?group_by=week|caregiver.
type statsPage struct {
	From, To time.Time
	Total    query.StatsGroup
	Weeks    []query.StatsGroup
	Workers  []query.StatsGroup
	Chart    template.HTML
	Target   float64 // the 60 s target share, in %
}

// stats is GET /stats (staff only, as GET /alerts/stats): a caregiver gets
// the same 404 as for what does not exist. It records alerts.stats once,
// as one GET /alerts/stats would.
func (c *Console) stats(ctx *fiber.Ctx) error {
	v := c.view(ctx, "")
	p := v.principal(ctx)
	if p.Role != query.RoleAdmin && p.Role != query.RoleCoordinator {
		return c.fail(ctx, v, query.ErrNotFound)
	}
	to := v.Now
	from := to.Add(-statsWeeks * 7 * 24 * time.Hour)
	keys := query.StatsKeys(c.o.Location)
	total, groups, err := c.o.Query.AlertStatsBy(ctx.UserContext(), p, from, to, keys["week"], keys["caregiver"])
	if err != nil {
		return c.fail(ctx, v, err)
	}
	weeks, workers := groups[0], groups[1]
	for _, w := range workers {
		c.lookupNames(ctx.UserContext(), v, w.Key)
	}
	v.Title = v.T("stats.title")
	v.Data = statsPage{From: from, To: to, Total: total, Weeks: weeks, Workers: workers,
		Chart: shareChart(weeks, v.T("stats.chart")), Target: 100 * query.AnswerTarget1Pct}
	return c.render(ctx, http.StatusOK, "stats", v)
}

// Secs formats a duration in seconds for the statistics tables: "–" when
// there is none.
func (v *view) Secs(s *float64) string {
	if s == nil {
		return "–"
	}
	d := time.Duration(*s * float64(time.Second)).Round(time.Second)
	if d < time.Minute {
		return v.T("stats.seconds", int(d/time.Second))
	}
	return v.T("stats.minutes", int(d/time.Minute), int(d%time.Minute/time.Second))
}

// Pct formats a share as a percentage: "–" when there is none.
func (v *view) Pct(s *float64) string {
	if s == nil {
		return "–"
	}
	return fmt.Sprintf("%.0f %%", 100**s)
}

// Worker names a care worker group: the unanswered group in words, a
// care worker by name.
func (v *view) Worker(key string) string {
	if key == query.UnansweredGroup {
		return v.T("stats.unanswered")
	}
	return v.Who(key)
}

// shareChart is a bar per week of the share of critical alerts answered
// within 60 s, with the target as a line; a week without critical alerts
// has no bar (a dashed outline), not a zero one.
func shareChart(weeks []query.StatsGroup, title string) template.HTML {
	const w, h, pad, bar = 320, 120, 20, 40
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="bars" viewBox="0 0 %d %d" role="img" aria-label="%s">`, w, h+pad, template.HTMLEscapeString(title))
	step := float64(w-pad) / float64(max(len(weeks), 1))
	for i, g := range weeks {
		x := float64(pad) + float64(i)*step + (step-bar)/2
		if s := g.Critical.Share60s; s != nil {
			bh := *s * h
			fmt.Fprintf(&b, `<rect class="bar" x="%.1f" y="%.1f" width="%d" height="%.1f"></rect>`, x, h-bh, bar, bh)
		} else {
			fmt.Fprintf(&b, `<rect class="bar-none" x="%.1f" y="0" width="%d" height="%d"></rect>`, x, bar, h)
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`, x+bar/2, h+pad-4, template.HTMLEscapeString(g.Key[len(g.Key)-3:]))
	}
	ty := h - query.AnswerTarget1Pct*h
	fmt.Fprintf(&b, `<line class="target" x1="%d" x2="%d" y1="%.1f" y2="%.1f"></line></svg>`, pad, w, ty, ty)
	return template.HTML(b.String()) // #nosec G203 -- built here from numbers and escaped keys
}
