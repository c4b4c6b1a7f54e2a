package eval

import (
	"sync"
	"testing"
	"time"
)

// TestEvaluatorIsSafeForConcurrentUse holds the Evaluator to its doc
// comment: the alert engine's consumers, its ticker, device sync and
// erasure call it from their own goroutines. Run with -race, this fails on
// any state reached outside the mutex.
func TestEvaluatorIsSafeForConcurrentUse(t *testing.T) {
	e := newEval(t, nil)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				at := t0.Add(time.Duration(i) * time.Second)
				switch (g + i) % 6 {
				case 0:
					e.Reading(reading("w", "wearable", at, "heart_rate", 60+i%80), "")
				case 1:
					e.Status(status("w", "wearable", at, i%2 == 0))
				case 2:
					e.Tick(at)
				case 3:
					e.SetDevices(res, []DeviceInfo{{ID: "w", Kind: "wearable", HomeID: "h1"}, {ID: "env1", Kind: "env", HomeID: "h1"}})
				case 4:
					if _, err := e.Snapshot(); err != nil {
						t.Errorf("snapshot: %v", err)
					}
				case 5:
					e.Prune(func(string) bool { return i%50 != 0 })
				}
			}
		})
	}
	wg.Wait()
}
