package web

// Charts are drawn here, on the server, as inline SVG: no chart library,
// no script, nothing to vendor, and the same drawing in every browser and
// in screenshots. A canvas chart would be invisible to screen readers; each
// chart here also gets a sentence and a table (see trend). The browser
// only scales the SVG; CSS classes colour it (inline styles are forbidden
// by the CSP).

import (
	"fmt"
	"html/template"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/query"
	"github.com/carehub/carehub/web/chart"
	"github.com/carehub/carehub/web/rulemsg"
)

// trend is one metric's chart with its text for screen readers.
type trend struct {
	Metric, Label, Unit string
	SVG                 template.HTML
	Summary             string
	Rows                []trendRow
	Empty               bool
	Bands, Normal       bool
}

type trendRow struct{ Time, RFC, Value string }

// Chart geometry, in SVG user units (the SVG scales to its box).
const (
	chartW, chartH                       = 720, 220
	padLeft, padRight, padTop, padBottom = 52, 10, 10, 26
)

// trendChart draws one metric over [from, to] in windows of every: the
// NEWS2 bands and the resident's usual range (mean ± 2 SD) behind the
// line, the line broken where windows are missing.
func (v *view) trendChart(metric string, pts []query.Point, from, to time.Time, every time.Duration) trend {
	m, _ := catalog.LookupMetric(metric)
	t := trend{Metric: metric, Label: v.T("metric." + metric), Unit: rulemsg.Unit(v.T, m.Unit)}
	if len(pts) == 0 {
		t.Empty = true
		t.Summary = v.T("chart.nodata", t.Label)
		return t
	}
	lo, hi, mean, maxAt := chart.Stats(pts)
	sd := chart.Stddev(pts, mean)
	segs := chart.Segments(pts, every*3/2)
	gaps := len(segs) - 1
	if pts[0].T.Sub(from) > every*3/2 {
		gaps++
	}
	if to.Sub(pts[len(pts)-1].T) > every*3/2 {
		gaps++
	}
	t.Summary = v.T("chart.summary", t.Label, chart.Num(mean), t.Unit, chart.Num(lo), chart.Num(hi), v.DT(maxAt), len(pts), gaps)
	for _, p := range pts {
		t.Rows = append(t.Rows, trendRow{Time: v.DT(p.T), RFC: v.RFC(p.T), Value: chart.Num(p.V)})
	}
	nlo, nhi := mean-2*sd, mean+2*sd
	ylo, yhi := math.Min(lo, nlo), math.Max(hi, nhi)
	if yhi-ylo < 1 {
		ylo, yhi = ylo-1, yhi+1
	}
	pad := (yhi - ylo) * 0.08
	ticks := chart.NiceTicks(math.Max(ylo-pad, m.Min), math.Min(yhi+pad, m.Max))
	// No tick beyond what the metric can be (SpO2 over 100 %).
	ticks = slices.DeleteFunc(ticks, func(t float64) bool { return t < m.Min || t > m.Max })
	ylo, yhi = math.Min(ticks[0], lo), math.Max(ticks[len(ticks)-1], hi)
	span := to.Sub(from).Seconds()
	x := func(at time.Time) float64 {
		return padLeft + at.Sub(from).Seconds()/span*(chartW-padLeft-padRight)
	}
	y := func(val float64) float64 {
		val = math.Max(ylo, math.Min(yhi, val))
		return padTop + (yhi-val)/(yhi-ylo)*(chartH-padTop-padBottom)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s" data-testid="chart-%s">`,
		chartW, chartH, template.HTMLEscapeString(t.Summary), metric)
	fmt.Fprintf(&b, `<rect class="plot" x="%d" y="%d" width="%d" height="%d"/>`, padLeft, padTop, chartW-padLeft-padRight, chartH-padTop-padBottom)
	for _, bd := range chart.News2Bands(metric, ylo, yhi) {
		if bd.Score == 0 {
			continue
		}
		t.Bands = true
		fmt.Fprintf(&b, `<rect class="news2 news2-%d" x="%d" y="%.1f" width="%d" height="%.1f"/>`,
			bd.Score, padLeft, y(bd.Hi), chartW-padLeft-padRight, y(bd.Lo)-y(bd.Hi))
	}
	if len(pts) >= 3 && sd > 0 {
		t.Normal = true
		fmt.Fprintf(&b, `<rect class="normal" x="%d" y="%.1f" width="%d" height="%.1f"/>`,
			padLeft, y(nhi), chartW-padLeft-padRight, y(nlo)-y(nhi))
	}
	for _, val := range ticks {
		fmt.Fprintf(&b, `<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/><text class="tick" x="%d" y="%.1f" text-anchor="end">%s</text>`,
			padLeft, chartW-padRight, y(val), y(val), padLeft-4, y(val)+4, chart.Num(val))
	}
	for _, at := range chart.TimeTicks(from, to, v.c.o.Location) {
		label := v.c.cat.ShortDate(v.Lang, at, v.c.o.Location)
		if to.Sub(from) <= 36*time.Hour {
			label = at.In(v.c.o.Location).Format("15:04")
		}
		anchor := "middle"
		switch {
		case x(at) < padLeft+24:
			anchor = "start"
		case x(at) > chartW-padRight-24:
			anchor = "end"
		}
		fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%d" text-anchor="%s">%s</text>`, x(at), chartH-8, anchor, template.HTMLEscapeString(label))
	}
	for _, s := range segs {
		if len(s) == 1 {
			fmt.Fprintf(&b, `<circle class="dot" cx="%.1f" cy="%.1f" r="2.5"/>`, x(s[0].T), y(s[0].V))
			continue
		}
		b.WriteString(`<path class="line" d="`)
		for i, p := range s {
			cmd := "L"
			if i == 0 {
				cmd = "M"
			}
			fmt.Fprintf(&b, "%s%.1f %.1f", cmd, x(p.T), y(p.V))
		}
		b.WriteString(`"/>`)
	}
	b.WriteString(`</svg>`)
	t.SVG = template.HTML(b.String()) //nolint:gosec // built above; the only text is escaped
	return t
}
