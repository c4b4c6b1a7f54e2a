package escalation

import (
	"fmt"
	"testing"
	"time"
)

func TestEscalationGaps(t *testing.T) {
	s := func(ds []time.Duration) string { return fmt.Sprint(ds) }
	for _, tc := range []struct {
		sev  string
		n    int
		want string
	}{
		{"critical", 5, "[1m0s 40s 40s 40s]"},
		{"critical", 4, "[1m0s 1m0s 1m0s]"},
		{"critical", 2, "[1m0s]"},
		{"critical", 1, "[]"},
		{"high", 5, "[5m0s 10m0s]"},
		{"high", 2, "[5m0s]"},
		{"warning", 5, "[]"},
		{"info", 5, "[]"},
	} {
		if got := s(Gaps(tc.sev, tc.n)); got != tc.want {
			t.Errorf("%s on %d tiers: %s, want %s", tc.sev, tc.n, got, tc.want)
		}
	}
}
