package main

import (
	"math"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
)

// bench-push judges the phones backend's memory from pprof's text heap
// profile: HeapAlloc from the trailer, and the in-use bytes of the stacks
// through the named packages, scaled for sampling.
func TestHeapProfile(t *testing.T) {
	const text = `heap profile: 3: 3072 [9: 9216] @ heap/32768
1: 1024 [3: 3072] @ 0x1 0x2
#	0x1	github.com/carehub/carehub/internal/notify.(*Dispatcher).handle+0x3f	/r/internal/notify/dispatcher.go:200
#	0x2	runtime.goexit+0x1	/go/src/runtime/asm_amd64.s:1700

2: 2048 [6: 6144] @ 0x3
#	0x3	github.com/carehub/carehub/ingest.(*Intake).handle+0x10	/r/ingest/intake.go:10


# runtime.MemStats
# Alloc = 3145728
# HeapAlloc = 3145728
`
	heap, push := heapProfile(text, "/internal/notify", "/internal/webpush")
	if heap != 3 {
		t.Errorf("heap %v MB, want 3", heap)
	}
	// One 1024-byte object sampled at 16 kB: 1024/(1-e^(-1024/16384)) bytes.
	want := 1024 / (1 - math.Exp(-1024.0/16384)) / (1 << 20)
	if math.Abs(push-want) > 1e-9 {
		t.Errorf("push heap %v MB, want %v (the ingest record must not count)", push, want)
	}

	// The real profile of this process has the same shape.
	var b strings.Builder
	runtime.GC()
	if err := pprof.Lookup("heap").WriteTo(&b, 1); err != nil {
		t.Fatal(err)
	}
	if heap, _ := heapProfile(b.String()); heap <= 0 {
		t.Errorf("no HeapAlloc read from this process's profile:\n%.500s", b.String())
	}
}
