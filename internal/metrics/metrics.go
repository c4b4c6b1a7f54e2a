// Package metrics is a small Prometheus-text-format registry: counters,
// gauges and histograms with labels, lock-free on the hot path. carehub needs
// a few dozen series; the official client would bring a dependency tree
// larger than carehub itself.
package metrics

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Registry holds metric families and renders them for GET /metrics.
type Registry struct {
	mu       sync.Mutex
	families []family
}

// New returns an empty registry.
func New() *Registry { return &Registry{} }

type family interface {
	name() string
	write(w io.Writer)
}

func (r *Registry) add(f family) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.families = append(r.families, f)
}

// WriteText writes every family in the Prometheus text exposition format.
func (r *Registry) WriteText(w io.Writer) {
	r.mu.Lock()
	fs := append([]family(nil), r.families...)
	r.mu.Unlock()
	sort.Slice(fs, func(i, j int) bool { return fs[i].name() < fs[j].name() })
	for _, f := range fs {
		f.write(w)
	}
}

// vec is a set of series of one family keyed by their label values.
type vec[T any] struct {
	fname, help, kind string
	labels            []string
	mu                sync.RWMutex
	series            map[string]*T
	keys              map[string][]string
	newT              func() *T
}

func (v *vec[T]) name() string { return v.fname }

func (v *vec[T]) with(values []string) *T {
	if len(values) != len(v.labels) {
		panic(fmt.Sprintf("metrics: %s wants %d label values, got %d", v.fname, len(v.labels), len(values)))
	}
	key := strings.Join(values, "\xff")
	v.mu.RLock()
	s, ok := v.series[key]
	v.mu.RUnlock()
	if ok {
		return s
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if s, ok = v.series[key]; ok {
		return s
	}
	s = v.newT()
	v.series[key] = s
	v.keys[key] = append([]string(nil), values...)
	return s
}

func (v *vec[T]) sorted() []string {
	keys := make([]string, 0, len(v.series))
	for k := range v.series {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (v *vec[T]) header(w io.Writer) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", v.fname, v.help, v.fname, v.kind)
}

// labelEscaper escapes a label value for the text format. It is built
// once: a Replacer builds its tables on first use, and /metrics escapes
// every label of every series.
var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func labelString(names, values []string, extra ...string) string {
	if len(names) == 0 && len(extra) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n)
		b.WriteString(`="`)
		b.WriteString(labelEscaper.Replace(values[i]))
		b.WriteByte('"')
	}
	for i := 0; i+1 < len(extra); i += 2 {
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		b.WriteString(extra[i])
		b.WriteString(`="`)
		b.WriteString(extra[i+1])
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// Counter is a monotonically increasing value.
type Counter struct{ bits atomic.Uint64 }

// Add adds d (which must not be negative).
func (c *Counter) Add(d float64) {
	for {
		old := c.bits.Load()
		if c.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+d)) {
			return
		}
	}
}

// Inc adds one.
func (c *Counter) Inc() { c.Add(1) }

// Value returns the current value.
func (c *Counter) Value() float64 { return math.Float64frombits(c.bits.Load()) }

// CounterVec is a counter family with labels.
type CounterVec struct{ v *vec[Counter] }

// Counter registers a counter family.
func (r *Registry) Counter(name, help string, labels ...string) *CounterVec {
	cv := &CounterVec{v: &vec[Counter]{fname: name, help: help, kind: "counter", labels: labels,
		series: map[string]*Counter{}, keys: map[string][]string{}, newT: func() *Counter { return &Counter{} }}}
	r.add(cv)
	return cv
}

// With returns the series for the label values, creating it at zero.
func (c *CounterVec) With(values ...string) *Counter { return c.v.with(values) }

func (c *CounterVec) name() string { return c.v.fname }

func (c *CounterVec) write(w io.Writer) {
	c.v.header(w)
	c.v.mu.RLock()
	defer c.v.mu.RUnlock()
	for _, k := range c.v.sorted() {
		fmt.Fprintf(w, "%s%s %s\n", c.v.fname, labelString(c.v.labels, c.v.keys[k]), formatFloat(c.v.series[k].Value()))
	}
}

// Gauge is a value that goes up and down.
type Gauge struct{ bits atomic.Uint64 }

// Set sets the value.
func (g *Gauge) Set(f float64) { g.bits.Store(math.Float64bits(f)) }

// Value returns the current value.
func (g *Gauge) Value() float64 { return math.Float64frombits(g.bits.Load()) }

// GaugeVec is a gauge family with labels.
type GaugeVec struct{ v *vec[Gauge] }

// Gauge registers a gauge family.
func (r *Registry) Gauge(name, help string, labels ...string) *GaugeVec {
	gv := &GaugeVec{v: &vec[Gauge]{fname: name, help: help, kind: "gauge", labels: labels,
		series: map[string]*Gauge{}, keys: map[string][]string{}, newT: func() *Gauge { return &Gauge{} }}}
	r.add(gv)
	return gv
}

// With returns the series for the label values.
func (g *GaugeVec) With(values ...string) *Gauge { return g.v.with(values) }

func (g *GaugeVec) name() string { return g.v.fname }

func (g *GaugeVec) write(w io.Writer) {
	g.v.header(w)
	g.v.mu.RLock()
	defer g.v.mu.RUnlock()
	for _, k := range g.v.sorted() {
		fmt.Fprintf(w, "%s%s %s\n", g.v.fname, labelString(g.v.labels, g.v.keys[k]), formatFloat(g.v.series[k].Value()))
	}
}

type gaugeFunc struct {
	fname, help string
	fn          func() float64
}

// GaugeFunc registers a gauge whose value is read when scraped.
func (r *Registry) GaugeFunc(name, help string, fn func() float64) {
	r.add(&gaugeFunc{fname: name, help: help, fn: fn})
}

func (g *gaugeFunc) name() string { return g.fname }

func (g *gaugeFunc) write(w io.Writer) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %s\n", g.fname, g.help, g.fname, g.fname, formatFloat(g.fn()))
}

// Histogram counts observations into cumulative buckets.
type Histogram struct {
	upper  []float64
	counts []atomic.Uint64
	count  atomic.Uint64
	sum    Counter
}

// Observe records one value.
func (h *Histogram) Observe(f float64) {
	i := sort.SearchFloat64s(h.upper, f)
	if i < len(h.counts) {
		h.counts[i].Add(1)
	}
	h.count.Add(1)
	h.sum.Add(f)
}

// Count returns how many values were observed.
func (h *Histogram) Count() uint64 { return h.count.Load() }

// Sum returns the sum of observed values.
func (h *Histogram) Sum() float64 { return h.sum.Value() }

// HistogramVec is a histogram family with labels.
type HistogramVec struct{ v *vec[Histogram] }

// Histogram registers a histogram family with the given bucket upper bounds.
func (r *Registry) Histogram(name, help string, buckets []float64, labels ...string) *HistogramVec {
	b := append([]float64(nil), buckets...)
	sort.Float64s(b)
	hv := &HistogramVec{v: &vec[Histogram]{fname: name, help: help, kind: "histogram", labels: labels,
		series: map[string]*Histogram{}, keys: map[string][]string{},
		newT: func() *Histogram { return &Histogram{upper: b, counts: make([]atomic.Uint64, len(b))} }}}
	r.add(hv)
	return hv
}

// With returns the series for the label values.
func (h *HistogramVec) With(values ...string) *Histogram { return h.v.with(values) }

func (h *HistogramVec) name() string { return h.v.fname }

func (h *HistogramVec) write(w io.Writer) {
	h.v.header(w)
	h.v.mu.RLock()
	defer h.v.mu.RUnlock()
	for _, k := range h.v.sorted() {
		s, vals := h.v.series[k], h.v.keys[k]
		var cum uint64
		for i, ub := range s.upper {
			cum += s.counts[i].Load()
			fmt.Fprintf(w, "%s_bucket%s %d\n", h.v.fname, labelString(h.v.labels, vals, "le", formatFloat(ub)), cum)
		}
		fmt.Fprintf(w, "%s_bucket%s %d\n", h.v.fname, labelString(h.v.labels, vals, "le", "+Inf"), s.count.Load())
		fmt.Fprintf(w, "%s_sum%s %s\n", h.v.fname, labelString(h.v.labels, vals), formatFloat(s.sum.Value()))
		fmt.Fprintf(w, "%s_count%s %d\n", h.v.fname, labelString(h.v.labels, vals), s.count.Load())
	}
}

// DefBuckets suit latencies in seconds, from 1 ms to 30 s.
var DefBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
