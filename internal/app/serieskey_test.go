package app_test

import "testing"

// TestSeriesKey: metricValue finds a series whatever order its labels are
// named in (client_golang writes them in name order).
func TestSeriesKey(t *testing.T) {
	for _, c := range []struct{ a, b string }{
		{`x_total{transition="opened",severity="high"}`, `x_total{severity="high",transition="opened"}`},
		{`x{b="1,2",a="q\"}"}`, `x{a="q\"}",b="1,2"}`},
		{`x_bucket{route="/a",le="0.1"}`, `x_bucket{le="0.1",route="/a"}`},
		{`x`, `x`},
	} {
		if ka, kb := seriesKey(c.a), seriesKey(c.b); ka != kb {
			t.Errorf("seriesKey(%s) = %s, seriesKey(%s) = %s", c.a, ka, c.b, kb)
		}
	}
	if seriesKey(`x{a="1"}`) == seriesKey(`x{a="2"}`) {
		t.Error("different values compare equal")
	}
}
