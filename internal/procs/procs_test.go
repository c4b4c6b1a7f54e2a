package procs

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestTunerNext(t *testing.T) {
	tu := NewTuner(4)
	calm, busy, crowded := Sample{Cores: 0.3}, Sample{Cores: 0.7}, Sample{Cores: 0.3, LongWaits: 0.05}
	steps := []struct {
		s    Sample
		want int
	}{
		// Nine calm samples are not enough; a busy one, or one with many
		// long waits, starts the count again.
		{calm, 4}, {calm, 4}, {calm, 4}, {calm, 4}, {busy, 4}, {calm, 4}, {crowded, 4},
		{calm, 4}, {calm, 4}, {calm, 4}, {calm, 4}, {calm, 4}, {calm, 4}, {calm, 4}, {calm, 4}, {calm, 4},
		{calm, 1},               // the tenth calm one in a row
		{busy, 1},               // fits one core
		{Sample{Cores: 0.9}, 4}, // outgrows it
		{calm, 4}, {calm, 4}, {calm, 4}, {calm, 4}, {calm, 4}, {calm, 4}, {calm, 4}, {calm, 4}, {calm, 4},
		{calm, 1},
		{crowded, 4}, // goroutines wait for the one processor: the machine is busy
	}
	for i, st := range steps {
		if got := tu.Next(st.s); got != st.want {
			t.Fatalf("step %d (%+v): %d processors, want %d", i, st.s, got, st.want)
		}
	}
}

// TestLongWaits reads the runtime's own histogram: on one processor that
// two goroutines keep busy, a goroutine woken every millisecond waits its
// turn behind their time slices (10 ms each); on an idle one it does not.
func TestLongWaits(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	w := newWaits()
	w.longShare()
	wake := func(d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); {
			time.Sleep(time.Millisecond)
		}
	}
	wake(200 * time.Millisecond)
	// Loose: on a machine busy with other processes a thread may wait
	// for a core too, which the runtime counts as well.
	if s := w.longShare(); s > 0.25 {
		t.Errorf("idle: %.3f of the waits were long", s)
	}
	stop := make(chan struct{})
	for range 2 {
		go func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
	}
	wake(500 * time.Millisecond)
	close(stop)
	if s := w.longShare(); s < 0.05 {
		t.Errorf("crowded: %.3f of the waits were long, want more", s)
	}
}

// TestRunSetsGOMAXPROCS drives Run with a CPU clock the test moves: idle,
// the runtime goes to one processor; busy, back to all; and when Run ends
// it leaves all of them.
func TestRunSetsGOMAXPROCS(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	var busy atomic.Bool
	var used atomic.Int64 // ns of CPU
	last := time.Now()
	cpu := func() time.Duration {
		now := time.Now()
		if busy.Load() {
			used.Add(2 * int64(now.Sub(last))) // two cores' worth
		}
		last = now
		return time.Duration(used.Load())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		run(ctx, 5*time.Millisecond, cpu, func() float64 { return 0 }, zerolog.Nop())
	}()
	waitProcs(t, 1, "idle")
	busy.Store(true)
	waitProcs(t, 2, "busy")
	busy.Store(false)
	waitProcs(t, 1, "idle again")
	cancel()
	<-done
	if n := runtime.GOMAXPROCS(0); n != 2 {
		t.Fatalf("after Run: GOMAXPROCS %d, want 2", n)
	}
}

func waitProcs(t *testing.T, want int, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.GOMAXPROCS(0) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: GOMAXPROCS %d, want %d", what, runtime.GOMAXPROCS(0), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
