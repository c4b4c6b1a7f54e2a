// Package procs runs carehub on one processor (GOMAXPROCS=1) while its load
// fits well within one core, and on all of them once it does not
// (CARE_ADAPTIVE_PROCS, off by default).
//
// At a steady 10,000 readings a second carehub needs about half a core, but
// with two processors the Go scheduler spends a good part of that looking
// for work: every message wakes a goroutine, and an idle processor spins
// for it before it sleeps (findRunnable and epoll were a fifth of the CPU
// in a profile). On one processor nobody spins: the same load took 12 to
// 17 % less CPU, with the same lag. The price is the tail of the alarm
// path: an SOS waits behind whatever holds the one processor (a fan-out's
// encryption, a collection), and its p99 from press to push was two to
// three times as long (docs/performance.md, "One processor while the load
// fits one core").
package procs

import (
	"context"
	"runtime"
	"runtime/metrics"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// Tuner decides GOMAXPROCS from what the process did in each sample: the
// cores it used, and how many of its goroutines waited long to run.
type Tuner struct {
	Max       int     // the processors to run on when busy
	Down      float64 // cores: a load below this for DownAfter samples in a row runs on one
	DownAfter int
	Up        float64 // cores: a sample above this on one processor runs on Max again
	// UpWaits: a sample in which more than this share of the goroutines
	// that became runnable waited over LongWait to run, on one processor,
	// runs on Max again. It catches what the cores do not: other
	// processes taking the machine's cores, when carehub's one processor
	// gets a core less often.
	UpWaits float64
	procs   int
	calm    int
}

// Sample is what the process did in one sampling interval.
type Sample struct {
	Cores     float64 // CPU time used / wall time
	LongWaits float64 // share of goroutines that waited over LongWait to run
}

// LongWait is a wait to run that a goroutine of carehub should not see: a
// scheduler with its work in hand starts one within a few hundred µs.
const LongWait = 10 * time.Millisecond

// NewTuner is a Tuner at max processors with carehub's thresholds: down to
// one after 10 samples under 0.6 cores, back up at the first sample over
// 0.8 (a processor is at most one core: a load near it is outgrowing it)
// or in which more than 1 % of the goroutines waited over LongWait.
func NewTuner(max int) *Tuner {
	return &Tuner{Max: max, Down: 0.6, DownAfter: 10, Up: 0.8, UpWaits: 0.01, procs: max}
}

// Next takes the latest sample and returns the processors to run on.
func (t *Tuner) Next(s Sample) int {
	switch {
	case t.procs == 1:
		if s.Cores > t.Up || s.LongWaits > t.UpWaits {
			t.procs = t.Max
		}
	case s.Cores < t.Down && s.LongWaits <= t.UpWaits:
		if t.calm++; t.calm >= t.DownAfter {
			t.procs, t.calm = 1, 0
		}
	default:
		t.calm = 0
	}
	return t.procs
}

// Run samples the process's CPU time every interval and sets GOMAXPROCS as
// a Tuner decides, until ctx ends; then it gives the runtime back all of
// its processors. It does nothing on a single processor.
func Run(ctx context.Context, every time.Duration, log zerolog.Logger) {
	run(ctx, every, cpuTime, newWaits().longShare, log)
}

func run(ctx context.Context, every time.Duration, cpu func() time.Duration, waits func() float64, log zerolog.Logger) {
	max := runtime.GOMAXPROCS(0)
	if max < 2 {
		return
	}
	defer runtime.GOMAXPROCS(max)
	t := NewTuner(max)
	tick := time.NewTicker(every)
	defer tick.Stop()
	lastCPU, lastAt := cpu(), time.Now()
	waits()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			used := cpu()
			s := Sample{Cores: float64(used-lastCPU) / float64(now.Sub(lastAt)), LongWaits: waits()}
			lastCPU, lastAt = used, now
			if n := t.Next(s); n != runtime.GOMAXPROCS(0) {
				runtime.GOMAXPROCS(n)
				log.Debug().Int("gomaxprocs", n).Float64("cores", s.Cores).Float64("long_waits", s.LongWaits).Msg("processors changed")
			}
		}
	}
}

// waits reads the runtime's histogram of the time goroutines spent
// runnable before they ran.
type waits struct {
	sample []metrics.Sample
	last   []uint64
}

func newWaits() *waits {
	return &waits{sample: []metrics.Sample{{Name: "/sched/latencies:seconds"}}}
}

// longShare is the share of the waits since its last call that were
// longer than LongWait.
func (w *waits) longShare() float64 {
	metrics.Read(w.sample)
	if w.sample[0].Value.Kind() != metrics.KindFloat64Histogram {
		return 0
	}
	h := w.sample[0].Value.Float64Histogram()
	var all, long uint64
	for i, n := range h.Counts {
		if i < len(w.last) {
			n -= w.last[i]
		}
		all += n
		if h.Buckets[i] >= LongWait.Seconds() {
			long += n
		}
	}
	w.last = append(w.last[:0], h.Counts...)
	if all == 0 {
		return 0
	}
	return float64(long) / float64(all)
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
