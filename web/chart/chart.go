// Package chart draws the console's charts as SVG on the server: NEWS2
// bands, gaps left as gaps, and sparklines where missing data never looks
// like normal. It is pure: values in, markup out.
package chart

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/internal/query"
)

// Sparkline geometry, in SVG user units.
const sparkW, sparkH, sparkPad = 140, 36, 3

// news2Scores are the NEWS2 scoring functions of alerts/rules by metric
// (the same ones the alert rules use), for the bands behind a chart.
var news2Scores = map[string]func(float64) int{
	"heart_rate":  rules.News2Pulse,
	"resp_rate":   rules.News2Resp,
	"spo2":        func(v float64) int { return rules.News2SpO2(v, 1) },
	"body_temp":   rules.News2Temp,
	"systolic_bp": rules.News2Systolic,
}

// Band is a value range drawn behind a chart line.
type Band struct {
	Lo, Hi float64
	Score  int
}

// News2Bands splits [lo, hi] into ranges of equal NEWS2 score.
func News2Bands(metric string, lo, hi float64) []Band {
	score, ok := news2Scores[metric]
	if !ok || hi <= lo {
		return nil
	}
	const steps = 400
	step := (hi - lo) / steps
	var out []Band
	for i := 0; i <= steps; i++ {
		v := lo + float64(i)*step
		s := score(v)
		if n := len(out); n > 0 && out[n-1].Score == s {
			out[n-1].Hi = v
			continue
		}
		out = append(out, Band{Lo: v, Hi: v, Score: s})
	}
	for i := range out {
		if i+1 < len(out) {
			out[i].Hi = out[i+1].Lo
		}
	}
	return out
}

// Segments splits points into runs without gaps: a gap is a step longer
// than maxStep (1.5 windows: an aggregated answer leaves empty windows out).
func Segments(pts []query.Point, maxStep time.Duration) [][]query.Point {
	var out [][]query.Point
	for i, p := range pts {
		if i == 0 || p.T.Sub(pts[i-1].T) > maxStep {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], p)
	}
	return out
}

// Stats are the lowest, highest and mean value, and when the highest was.
func Stats(pts []query.Point) (lo, hi, mean float64, at time.Time) {
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

// Stddev is the points' standard deviation around mean.
func Stddev(pts []query.Point, mean float64) float64 {
	var s float64
	for _, p := range pts {
		s += (p.V - mean) * (p.V - mean)
	}
	return math.Sqrt(s / float64(len(pts)))
}

// Num formats a value with at most one decimal.
func Num(v float64) string { return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64) }

// Sparkline draws daily values over days days ending today as a small
// line; days without a value are left blank, and no value at all draws a
// dashed "no data" line so that missing data never looks like normal.
func Sparkline(pts []query.Point, from time.Time, days int, title string) template.HTML {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="spark" viewBox="0 0 %d %d" role="img" aria-label="%s"><title>%s</title>`,
		sparkW, sparkH, template.HTMLEscapeString(title), template.HTMLEscapeString(title))
	if len(pts) == 0 {
		fmt.Fprintf(&b, `<line class="spark-none" x1="%d" x2="%d" y1="%d" y2="%d"/></svg>`, sparkPad, sparkW-sparkPad, sparkH/2, sparkH/2)
		return template.HTML(b.String()) //nolint:gosec // built above
	}
	lo, hi, _, _ := Stats(pts)
	if hi-lo < 1 {
		lo, hi = lo-1, hi+1
	}
	x := func(at time.Time) float64 {
		return sparkPad + at.Sub(from).Hours()/24/float64(days-1)*(sparkW-2*sparkPad)
	}
	y := func(val float64) float64 { return sparkPad + (hi-val)/(hi-lo)*(sparkH-2*sparkPad) }
	for _, s := range Segments(pts, 36*time.Hour) {
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

// ShareBars is the statistics page's chart: a bar per week (labelled
// label(key)) of the share of critical alerts answered within 60 s,
// with the target as a line and the share written above the bar; a week
// without critical alerts has no bar (a dashed outline and "–"), not a
// zero one.
func ShareBars(weeks []query.StatsGroup, label func(key string) string, title string) template.HTML {
	const w, h, pad, top, bar = 320, 120, 20, 16, 40
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="bars" viewBox="0 0 %d %d" role="img" aria-label="%s">`, w, top+h+pad, template.HTMLEscapeString(title))
	step := float64(w-pad) / float64(max(len(weeks), 1))
	for i, g := range weeks {
		x := float64(pad) + float64(i)*step + (step-bar)/2
		value := "–"
		if s := g.Critical.Share60s; s != nil {
			bh := max(*s*h, 1.5) // 0 % is a line on the axis, not nothing
			fmt.Fprintf(&b, `<rect class="bar" x="%.1f" y="%.1f" width="%d" height="%.1f"></rect>`, x, top+h-bh, bar, bh)
			value = Num(100**s) + " %"
		} else {
			fmt.Fprintf(&b, `<rect class="bar-none" x="%.1f" y="%d" width="%d" height="%d"></rect>`, x, top, bar, h)
		}
		fmt.Fprintf(&b, `<text class="val" x="%.1f" y="%d" text-anchor="middle">%s</text>`, x+bar/2, top-4, value)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`, x+bar/2, top+h+pad-4, template.HTMLEscapeString(label(g.Key)))
	}
	ty := top + h - query.AnswerTarget1Pct*h
	fmt.Fprintf(&b, `<line class="target" x1="%d" x2="%d" y1="%.1f" y2="%.1f"></line></svg>`, pad, w, ty, ty)
	return template.HTML(b.String()) // #nosec G203 -- built here from numbers and escaped keys
}

// NiceTicks are the value axis' labels for [lo, hi]: three to six round
// values (steps of 1, 2, 2.5 or 5 times a power of ten) from at or below
// lo to at or above hi, so a scale reads 60, 80, 100 and not 54.9, 81.8.
func NiceTicks(lo, hi float64) []float64 {
	if hi <= lo {
		hi = lo + 1
	}
	raw := (hi - lo) / 4
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := 10 * mag
	for _, f := range []float64{1, 2, 2.5, 5} {
		if f*mag >= raw {
			step = f * mag
			break
		}
	}
	first := math.Floor(lo / step)
	var out []float64
	for i := 0.0; ; i++ {
		v := (first + i) * step
		out = append(out, v)
		if v >= hi-step*1e-9 {
			return out
		}
	}
}

// TimeTicks are where the time axis is labelled: local midnights (every
// day over a week, every 7th day over a month) or, over a day, every six
// hours, so a label stands where its day or hour begins.
func TimeTicks(from, to time.Time, loc *time.Location) []time.Time {
	step := 7
	switch span := to.Sub(from); {
	case span <= 36*time.Hour:
		var out []time.Time
		for t := from.In(loc).Truncate(time.Hour); !t.After(to); t = t.Add(time.Hour) {
			if t.Hour()%6 == 0 && !t.Before(from) {
				out = append(out, t)
			}
		}
		return out
	case span <= 8*24*time.Hour:
		step = 1
	}
	var out []time.Time
	for t := time.Date(from.In(loc).Year(), from.In(loc).Month(), from.In(loc).Day(), 0, 0, 0, 0, loc).AddDate(0, 0, 1); !t.After(to); t = t.AddDate(0, 0, step) {
		out = append(out, t)
	}
	return out
}
