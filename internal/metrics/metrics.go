// Package metrics is carehub's registry of Prometheus metrics: counters,
// gauges and histograms with labels, rendered for GET /metrics.
//
// The series themselves are prometheus/client_golang collectors held in a
// prometheus.Registry of their own (never the global default registry, so
// tests and several components in one process don't collide), and the text
// is written by prometheus/common/expfmt. This package keeps the small API
// carehub's components were written against: a family is registered once,
// With resolves a series once and returns a handle that callers keep, so
// the per-message calls (Inc, Observe) go straight to the client's atomic
// counters without a label lookup.
package metrics

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// Registry holds metric families and renders them for GET /metrics.
type Registry struct {
	reg *prometheus.Registry

	mu       sync.Mutex
	families map[string]any // name -> *CounterVec, *GaugeVec, *HistogramVec or *gaugeFunc
}

// New returns an empty registry.
func New() *Registry {
	return &Registry{reg: prometheus.NewRegistry(), families: map[string]any{}}
}

// WriteText writes every family in the Prometheus text exposition format
// (version 0.0.4), families sorted by name and series by label values.
// Families with no series yet are left out.
func (r *Registry) WriteText(w io.Writer) {
	// Gather reports inconsistencies (which registration rules out) but
	// still returns every family it could collect: render those.
	mfs, _ := r.reg.Gather()
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(w, mf); err != nil {
			return
		}
	}
}

// register returns the family already registered under name if it has the
// same kind and labels (two components of one process sharing a metric then
// share its series), or registers the one make builds. A name reused with
// another kind or other labels is a programming error and panics at start-up,
// as client_golang's MustRegister would.
// build is called only for a new name.
func register[F any](r *Registry, name string, labels []string, build func() (F, prometheus.Collector)) F {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.families[name]; ok {
		f, same := old.(F)
		if same {
			if l, ok := any(f).(interface{ labelNames() []string }); ok && slices.Equal(l.labelNames(), labels) {
				return f
			}
		}
		panic(fmt.Sprintf("metrics: %s registered twice with different kinds or labels", name))
	}
	f, c := build()
	r.reg.MustRegister(c)
	r.families[name] = f
	return f
}

// vec caches the series of one family by label values, so a series is
// resolved by client_golang once and every later With is one map read.
type vec[T any] struct {
	fname  string
	labels []string
	mu     sync.RWMutex
	series map[string]*T
	child  func(values []string) *T
}

func newVec[T any](name string, labels []string, child func([]string) *T) *vec[T] {
	return &vec[T]{fname: name, labels: slices.Clone(labels), series: map[string]*T{}, child: child}
}

func (v *vec[T]) labelNames() []string { return v.labels }

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
	// client_golang panics on a label value that is not UTF-8; a label
	// never should be one, but a metric must not bring the process down.
	vals := slices.Clone(values)
	for i, s := range vals {
		if !utf8.ValidString(s) {
			vals[i] = strings.ToValidUTF8(s, "\uFFFD")
		}
	}
	s = v.child(vals)
	v.series[key] = s
	return s
}

// read returns the client's current state of one series. It allocates: it
// is for tests and diagnostics, not for the hot path.
func read(m prometheus.Metric) *dto.Metric {
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		panic(fmt.Sprintf("metrics: reading a series: %v", err))
	}
	return &out
}

// Counter is a monotonically increasing value.
type Counter struct{ c prometheus.Counter }

// Add adds d. A negative d is ignored: counters only go up, and a metric
// must not bring the process down (client_golang panics on it).
func (c *Counter) Add(d float64) {
	if d < 0 {
		return
	}
	c.c.Add(d)
}

// Inc adds one.
func (c *Counter) Inc() { c.c.Inc() }

// Value returns the current value.
func (c *Counter) Value() float64 { return read(c.c).GetCounter().GetValue() }

// CounterVec is a counter family with labels.
type CounterVec struct{ *vec[Counter] }

// Counter registers a counter family.
func (r *Registry) Counter(name, help string, labels ...string) *CounterVec {
	return register(r, name, labels, func() (*CounterVec, prometheus.Collector) {
		pv := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
		return &CounterVec{newVec(name, labels, func(v []string) *Counter {
			return &Counter{pv.WithLabelValues(v...)}
		})}, pv
	})
}

// With returns the series for the label values, creating it at zero.
func (c *CounterVec) With(values ...string) *Counter { return c.with(values) }

// Gauge is a value that goes up and down.
type Gauge struct{ g prometheus.Gauge }

// Set sets the value.
func (g *Gauge) Set(f float64) { g.g.Set(f) }

// Value returns the current value.
func (g *Gauge) Value() float64 { return read(g.g).GetGauge().GetValue() }

// GaugeVec is a gauge family with labels.
type GaugeVec struct{ *vec[Gauge] }

// Gauge registers a gauge family.
func (r *Registry) Gauge(name, help string, labels ...string) *GaugeVec {
	return register(r, name, labels, func() (*GaugeVec, prometheus.Collector) {
		pv := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
		return &GaugeVec{newVec(name, labels, func(v []string) *Gauge {
			return &Gauge{pv.WithLabelValues(v...)}
		})}, pv
	})
}

// With returns the series for the label values, creating it at zero.
func (g *GaugeVec) With(values ...string) *Gauge { return g.with(values) }

// gaugeFunc is a registered GaugeFunc. The function is swappable so that a
// component started again on the same registry reports its own state.
type gaugeFunc struct {
	mu sync.Mutex
	fn func() float64
}

func (g *gaugeFunc) labelNames() []string { return nil }

func (g *gaugeFunc) value() float64 {
	g.mu.Lock()
	fn := g.fn
	g.mu.Unlock()
	return fn()
}

// GaugeFunc registers a gauge whose value is read when scraped. Registering
// the same name again replaces the function.
func (r *Registry) GaugeFunc(name, help string, fn func() float64) {
	g := register(r, name, nil, func() (*gaugeFunc, prometheus.Collector) {
		g := &gaugeFunc{}
		return g, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, g.value)
	})
	g.mu.Lock()
	g.fn = fn
	g.mu.Unlock()
}

// Histogram counts observations into cumulative buckets.
type Histogram struct{ h prometheus.Histogram }

// Observe records one value.
func (h *Histogram) Observe(f float64) { h.h.Observe(f) }

// Count returns how many values were observed.
func (h *Histogram) Count() uint64 { return read(h.h).GetHistogram().GetSampleCount() }

// Sum returns the sum of observed values.
func (h *Histogram) Sum() float64 { return read(h.h).GetHistogram().GetSampleSum() }

// HistogramVec is a histogram family with labels.
type HistogramVec struct{ *vec[Histogram] }

// Histogram registers a histogram family with the given bucket upper bounds
// (in any order; +Inf is always added).
func (r *Registry) Histogram(name, help string, buckets []float64, labels ...string) *HistogramVec {
	b := slices.Clone(buckets)
	slices.Sort(b)
	b = slices.Compact(b) // client_golang wants them strictly increasing
	return register(r, name, labels, func() (*HistogramVec, prometheus.Collector) {
		pv := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: b}, labels)
		return &HistogramVec{newVec(name, labels, func(v []string) *Histogram {
			return &Histogram{pv.WithLabelValues(v...).(prometheus.Histogram)}
		})}, pv
	})
}

// With returns the series for the label values, creating it empty.
func (h *HistogramVec) With(values ...string) *Histogram { return h.with(values) }

// DefBuckets suit latencies in seconds, from 1 ms to 30 s.
var DefBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
