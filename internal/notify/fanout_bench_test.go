package notify_test

import (
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/internal/testenv"
)

// fanOut500 publishes one critical transition to 500 care workers with a
// phone each and returns how long until the fake push service has
// decrypted all 500 pushes (issue 13: < 2 s).
func fanOut500(tb testing.TB, r *rig, users []string, n int) time.Duration {
	a := alert(fmt.Sprintf("al-fanout-%07d", n), alerts.TransitionRaised, 1, users...)
	before := len(r.svc.Received())
	start := time.Now()
	r.publish(a)
	testenv.WaitFor(tb, 30*time.Second, "500 pushes", func() bool { return len(r.svc.Received())-before >= len(users) })
	return time.Since(start)
}

func setup500(t *testing.T) (*rig, []string) {
	r := newRig(t)
	users := make([]string, 500)
	for i := range users {
		users[i] = fmt.Sprintf("cw-%03d", i)
		r.subscribe(users[i])
	}
	r.start(nil)
	return r, users
}

// TestFanOut500Phones: three transitions, each to 500 phones exactly once,
// the heap not growing across them. The target, 500 phones in
// < 2 s, is asserted with CAREHUB_PUSH_SLA=1 (make bench-push): on a
// machine shared by many builds the wall time measures the neighbours.
func TestFanOut500Phones(t *testing.T) {
	r, users := setup500(t)
	sla := os.Getenv("CAREHUB_PUSH_SLA") != ""
	var heap []uint64
	for n := range 3 {
		d := fanOut500(t, r, users, n)
		r.settled()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		heap = append(heap, ms.HeapAlloc)
		t.Logf("transition %d: 500 phones in %v, heap %d KiB", n, d.Round(time.Millisecond), ms.HeapAlloc>>10)
		if sla && d > 2*time.Second {
			t.Errorf("fan-out to 500 phones took %v, want < 2 s", d)
		}
	}
	for _, p := range r.svc.Received() {
		if n := len(r.svc.ReceivedBy(p.Subscriber)); n != 3 {
			t.Fatalf("a phone got %d pushes for 3 transitions", n)
		}
	}
	if heap[2] > heap[0]*2 {
		t.Errorf("heap grew from %d to %d KiB over three fan-outs", heap[0]>>10, heap[2]>>10)
	}
}
