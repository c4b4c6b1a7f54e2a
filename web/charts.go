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
	"strconv"
	"strings"
	"time"

	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/query"
)

// news2Scores are the NEWS2 scoring functions of alerts/rules by metric
// (the same ones the alert rules use), for the bands behind a chart.
var news2Scores = map[string]func(float64) int{
	"heart_rate":  rules.News2Pulse,
	"resp_rate":   rules.News2Resp,
	"spo2":        func(v float64) int { return rules.News2SpO2(v, 1) },
	"body_temp":   rules.News2Temp,
	"systolic_bp": rules.News2Systolic,
}

// band is a value range drawn behind a chart line.
type band struct {
	Lo, Hi float64
	Score  int
}

// news2Bands splits [lo, hi] into ranges of equal NEWS2 score.
func news2Bands(metric string, lo, hi float64) []band {
	score, ok := news2Scores[metric]
	if !ok || hi <= lo {
		return nil
	}
	const steps = 400
	step := (hi - lo) / steps
	var out []band
	for i := 0; i <= steps; i++ {
		v := lo + float64(i)*step
		s := score(v)
		if n := len(out); n > 0 && out[n-1].Score == s {
			out[n-1].Hi = v
			continue
		}
		out = append(out, band{Lo: v, Hi: v, Score: s})
	}
	for i := range out {
		if i+1 < len(out) {
			out[i].Hi = out[i+1].Lo
		}
	}
	return out
}

// segments splits points into runs without gaps: a gap is a step longer
// than maxStep (1.5 windows: an aggregated answer leaves empty windows out).
func segments(pts []query.Point, maxStep time.Duration) [][]query.Point {
	var out [][]query.Point
	for i, p := range pts {
		if i == 0 || p.T.Sub(pts[i-1].T) > maxStep {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], p)
	}
	return out
}

func stats(pts []query.Point) (lo, hi, mean float64, at time.Time) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, p := range pts {
		lo = math.Min(lo, p.V)
		if p.V > hi {
			hi, at = p.V, p.T
		}
		mean += p.V
	}
	return lo, hi, mean / float64(len(pts)), at
}

func stddev(pts []query.Point, mean float64) float64 {
	var s float64
	for _, p := range pts {
		s += (p.V - mean) * (p.V - mean)
	}
	return math.Sqrt(s / float64(len(pts)))
}

func num(v float64) string { return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64) }

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
	sparkW, sparkH, sparkPad             = 140, 36, 3
)

// trendChart draws one metric over [from, to] in windows of every: the
// NEWS2 bands and the resident's usual range (mean ± 2 SD) behind the
// line, the line broken where windows are missing.
func (v *view) trendChart(metric string, pts []query.Point, from, to time.Time, every time.Duration) trend {
	m, _ := catalog.LookupMetric(metric)
	t := trend{Metric: metric, Label: v.T("metric." + metric), Unit: m.Unit}
	if len(pts) == 0 {
		t.Empty = true
		t.Summary = v.T("chart.nodata", t.Label)
		return t
	}
	lo, hi, mean, maxAt := stats(pts)
	sd := stddev(pts, mean)
	segs := segments(pts, every*3/2)
	gaps := len(segs) - 1
	if pts[0].T.Sub(from) > every*3/2 {
		gaps++
	}
	if to.Sub(pts[len(pts)-1].T) > every*3/2 {
		gaps++
	}
	t.Summary = v.T("chart.summary", t.Label, num(mean), m.Unit, num(lo), num(hi), v.DT(maxAt), len(pts), gaps)
	for _, p := range pts {
		t.Rows = append(t.Rows, trendRow{Time: v.DT(p.T), RFC: v.RFC(p.T), Value: num(p.V)})
	}
	nlo, nhi := mean-2*sd, mean+2*sd
	ylo, yhi := math.Min(lo, nlo), math.Max(hi, nhi)
	if yhi-ylo < 1 {
		ylo, yhi = ylo-1, yhi+1
	}
	pad := (yhi - ylo) * 0.08
	ylo, yhi = math.Max(ylo-pad, m.Min), math.Min(yhi+pad, m.Max)
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
	for _, bd := range news2Bands(metric, ylo, yhi) {
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
	for _, val := range []float64{ylo, (ylo + yhi) / 2, yhi} {
		fmt.Fprintf(&b, `<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/><text class="tick" x="%d" y="%.1f" text-anchor="end">%s</text>`,
			padLeft, chartW-padRight, y(val), y(val), padLeft-4, y(val)+4, num(val))
	}
	for i := 0; i <= 4; i++ {
		at := from.Add(time.Duration(float64(to.Sub(from)) * float64(i) / 4))
		label := v.c.cat.ShortDate(v.Lang, at, v.c.o.Location)
		if to.Sub(from) <= 36*time.Hour {
			lt := at.In(v.c.o.Location)
			label = fmt.Sprintf("%02d:%02d", lt.Hour(), lt.Minute())
		}
		anchor := "middle"
		switch i {
		case 0:
			anchor = "start"
		case 4:
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

// sparkline draws daily values over days days ending today as a small
// line; days without a value are left blank, and no value at all draws a
// dashed "no data" line so that missing data never looks like normal.
func sparkline(pts []query.Point, from time.Time, days int, title string) template.HTML {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="spark" viewBox="0 0 %d %d" role="img" aria-label="%s"><title>%s</title>`,
		sparkW, sparkH, template.HTMLEscapeString(title), template.HTMLEscapeString(title))
	if len(pts) == 0 {
		fmt.Fprintf(&b, `<line class="spark-none" x1="%d" x2="%d" y1="%d" y2="%d"/></svg>`, sparkPad, sparkW-sparkPad, sparkH/2, sparkH/2)
		return template.HTML(b.String()) //nolint:gosec // built above
	}
	lo, hi, _, _ := stats(pts)
	if hi-lo < 1 {
		lo, hi = lo-1, hi+1
	}
	x := func(at time.Time) float64 {
		return sparkPad + at.Sub(from).Hours()/24/float64(days-1)*(sparkW-2*sparkPad)
	}
	y := func(val float64) float64 { return sparkPad + (hi-val)/(hi-lo)*(sparkH-2*sparkPad) }
	for _, s := range segments(pts, 36*time.Hour) {
		if len(s) == 1 {
			fmt.Fprintf(&b, `<circle class="dot" cx="%.1f" cy="%.1f" r="2"/>`, x(s[0].T), y(s[0].V))
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
	return template.HTML(b.String()) //nolint:gosec // built above
}
