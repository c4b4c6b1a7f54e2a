package logging

import (
	"bytes"
	"strings"
	"sync"
	"testing"
)

// Goroutines logging at once into a writer that is not a file (a buffer, as
// in the commands' tests) must neither race nor interleave events. Under
// -race this failed before New wrapped such writers (CI, homesim).
func TestNewIsSafeForGoroutinesOnABuffer(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, "json", "info")
	const workers, each = 8, 200
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				log.Info().Int("w", w).Int("i", i).Msg("event")
			}
		}()
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != workers*each {
		t.Fatalf("%d lines, want %d", len(lines), workers*each)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "{") || !strings.HasSuffix(l, "}") || strings.Count(l, `"message"`) != 1 {
			t.Fatalf("mangled event %q", l)
		}
	}
}
