package main

import (
	"math"
	"runtime/debug"
	"testing"
)

func TestApplyMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	debug.SetMemoryLimit(math.MaxInt64)

	applyMemoryLimit(func(string) string { return "" }, 160<<20)
	if got := debug.SetMemoryLimit(-1); got != 160<<20 {
		t.Fatalf("limit %d, want CARE_MEMORY_LIMIT's %d", got, 160<<20)
	}
	debug.SetMemoryLimit(math.MaxInt64)
	applyMemoryLimit(func(k string) string {
		if k == "GOMEMLIMIT" {
			return "1GiB"
		}
		return ""
	}, 160<<20)
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Fatalf("with GOMEMLIMIT set carehub changed the limit to %d", got)
	}
}
