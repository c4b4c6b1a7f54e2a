package chart_test

import (
	"slices"
	"testing"

	"github.com/carehub/carehub/web/chart"
)

func TestNiceTicks(t *testing.T) {
	for _, c := range []struct {
		lo, hi float64
		want   []float64
	}{
		{54.9, 108.7, []float64{40, 60, 80, 100, 120}},
		{91.9, 97.1, []float64{90, 92, 94, 96, 98}},
		{0, 3290.9, []float64{0, 1000, 2000, 3000, 4000}},
		{36.2, 37.9, []float64{36, 36.5, 37, 37.5, 38}},
	} {
		if got := chart.NiceTicks(c.lo, c.hi); !slices.Equal(got, c.want) {
			t.Errorf("NiceTicks(%g, %g) = %v, want %v", c.lo, c.hi, got, c.want)
		}
	}
}
