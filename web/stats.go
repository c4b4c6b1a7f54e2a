package web

import (
	"fmt"
	"html/template"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/internal/query"
	"github.com/carehub/carehub/web/chart"
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
		Chart: chart.ShareBars(weeks, v.WeekStart, v.T("stats.chart")), Target: 100 * query.AnswerTarget1Pct}
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
	if d >= time.Hour {
		return v.T("stats.hours", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	return v.T("stats.minutes", int(d/time.Minute), int(d%time.Minute/time.Second))
}

// Week writes an ISO week key ("2026-W49") as its days, Monday to
// Sunday ("11. 30. ~ 12. 6."); a key it cannot read stays as it is.
func (v *view) Week(key string) string {
	mon, ok := query.WeekStart(key, v.c.o.Location)
	if !ok {
		return key
	}
	return v.T("stats.week", v.c.cat.ShortDate(v.Lang, mon, v.c.o.Location), v.c.cat.ShortDate(v.Lang, mon.AddDate(0, 0, 6), v.c.o.Location))
}

// WeekStart writes a week key as its Monday ("11. 30."), for the chart.
func (v *view) WeekStart(key string) string {
	if mon, ok := query.WeekStart(key, v.c.o.Location); ok {
		return v.c.cat.ShortDate(v.Lang, mon, v.c.o.Location)
	}
	return key
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
