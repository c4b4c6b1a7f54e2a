package metrics

import (
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestTextMatchesHandwrittenRegistry renders a registry with a counter vec,
// gauges, a gauge func and histograms with buckets, and compares it line by
// line with what the hand-written registry this package replaced rendered
// for the same calls (testdata/handwritten.txt): HELP and TYPE lines, series
// names and labels, bucket le labels, _sum and _count, values. Dashboards
// and carebench's scrape() read exactly these lines.
//
// The one difference is client_golang's: labels are written in name order,
// not in declaration order (a Prometheus server never cared).
func TestTextMatchesHandwrittenRegistry(t *testing.T) {
	old, err := os.ReadFile("testdata/handwritten.txt")
	if err != nil {
		t.Fatal(err)
	}
	reordered := map[string]string{
		`carehub_alert_transitions_total{transition="opened",severity="high"} 1`: `carehub_alert_transitions_total{severity="high",transition="opened"} 1`,
	}
	var want []string
	for _, l := range strings.Split(strings.TrimSpace(string(old)), "\n") {
		if r, ok := reordered[l]; ok {
			l = r
		}
		want = append(want, l)
	}

	var b strings.Builder
	representative().WriteText(&b)
	got := strings.Split(strings.TrimSpace(b.String()), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("text differs from the hand-written registry's:\n--- got\n%s\n--- want\n%s", b.String(), strings.Join(want, "\n"))
	}

	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(b.String()))
	if err != nil {
		t.Fatalf("output is not valid text exposition format: %v", err)
	}
	if len(mfs) != 8 {
		t.Errorf("parsed %d families, want 8", len(mfs))
	}
}

func TestReaders(t *testing.T) {
	r := New()
	c := r.Counter("c_total", "C.", "k").With("a")
	c.Inc()
	c.Add(1.5)
	c.Add(-3) // ignored: counters only go up, and this must not panic
	if got := c.Value(); got != 2.5 {
		t.Errorf("counter = %v, want 2.5", got)
	}
	g := r.Gauge("g", "G.").With()
	g.Set(-4.5)
	if got := g.Value(); got != -4.5 {
		t.Errorf("gauge = %v, want -4.5", got)
	}
	h := r.Histogram("h_seconds", "H.", DefBuckets).With()
	h.Observe(0.5)
	h.Observe(2)
	if h.Count() != 2 || h.Sum() != 2.5 {
		t.Errorf("histogram count, sum = %d, %v; want 2, 2.5", h.Count(), h.Sum())
	}
}

// TestSameNameTwice: two components built on one registry (tests do this,
// and a restarted component does) share a family instead of failing, and a
// GaugeFunc registered again reports the newer function.
func TestSameNameTwice(t *testing.T) {
	r := New()
	r.Counter("x_total", "X.", "k").With("a").Inc()
	r.Counter("x_total", "X.", "k").With("a").Inc()
	if got := r.Counter("x_total", "X.", "k").With("a").Value(); got != 2 {
		t.Errorf("shared counter = %v, want 2", got)
	}
	r.GaugeFunc("open", "Open.", func() float64 { return 1 })
	r.GaugeFunc("open", "Open.", func() float64 { return 2 })
	var b strings.Builder
	r.WriteText(&b)
	if !strings.Contains(b.String(), "\nopen 2\n") || strings.Contains(b.String(), "open 1") {
		t.Errorf("GaugeFunc not replaced:\n%s", b.String())
	}
	defer func() {
		if recover() == nil {
			t.Error("no panic for a name registered again with other labels")
		}
	}()
	r.Counter("x_total", "X.", "other")
}

func TestSameCounterFromWith(t *testing.T) {
	v := New().Counter("x_total", "X.", "k")
	first, again := v.With("a"), v.With("a")
	if first != again {
		t.Error("With returned a different series for the same labels")
	}
}

func TestInvalidUTF8LabelDoesNotPanic(t *testing.T) {
	r := New()
	r.Counter("x_total", "X.", "k").With("bad\xff").Inc()
	var b strings.Builder
	r.WriteText(&b)
	if !strings.Contains(b.String(), "x_total{k=\"bad\uFFFD\"} 1") {
		t.Errorf("invalid UTF-8 label not replaced:\n%s", b.String())
	}
}

// TestEmptyFamilyOmitted documents a difference from the hand-written
// registry: a family with no series yet has no HELP/TYPE lines either.
func TestEmptyFamilyOmitted(t *testing.T) {
	r := New()
	r.Counter("x_total", "X.", "k")
	var b strings.Builder
	r.WriteText(&b)
	if b.Len() != 0 {
		t.Errorf("empty family rendered:\n%s", b.String())
	}
}

// TestConcurrentUse runs series creation, updates and scrapes at once; run
// with -race.
func TestConcurrentUse(t *testing.T) {
	r := New()
	v := r.Counter("x_total", "X.", "k")
	h := r.Histogram("h", "H.", []float64{1, 2}, "k")
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 500 {
				k := string(rune('a' + (i+j)%5))
				v.With(k).Inc()
				h.With(k).Observe(float64(j % 3))
				if j%100 == 0 {
					var b strings.Builder
					r.WriteText(&b)
				}
			}
		}()
	}
	wg.Wait()
	var sum float64
	var n uint64
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		sum += v.With(k).Value()
		n += h.With(k).Count()
	}
	if sum != 2000 || n != 2000 {
		t.Errorf("counted %v and observed %d, want 2000 each", sum, n)
	}
}
