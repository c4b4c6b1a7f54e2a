package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

var errBusy = errors.New("busy")

func TestBackoffDoublesToTheCap(t *testing.T) {
	p := Policy{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond}
	want := []time.Duration{10, 20, 40, 50, 50}
	for i, w := range want {
		if got := p.Backoff(i + 1); got != w*time.Millisecond {
			t.Errorf("Backoff(%d) = %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
	if got := (Policy{Initial: time.Second}).Backoff(200); got <= 0 {
		t.Errorf("uncapped Backoff(200) = %v, want a positive pause (no overflow)", got)
	}
}

func TestBackoffJitterStaysInItsShare(t *testing.T) {
	full := Policy{Initial: 8 * time.Millisecond, Jitter: 1}
	half := Policy{Initial: 8 * time.Millisecond, Jitter: 0.5}
	seenLow := false
	for range 1000 {
		if d := full.Backoff(1); d < 0 || d > 8*time.Millisecond {
			t.Fatalf("full jitter gave %v, want within [0, 8ms]", d)
		} else if d < 4*time.Millisecond {
			seenLow = true
		}
		if d := half.Backoff(1); d < 4*time.Millisecond || d > 8*time.Millisecond {
			t.Fatalf("half jitter gave %v, want within [4ms, 8ms]", d)
		}
	}
	if !seenLow {
		t.Error("full jitter never went below half the pause in 1000 draws")
	}
}

func TestDoStopsOnSuccessRefusalOrAttempts(t *testing.T) {
	p := Policy{Attempts: 4, Initial: time.Microsecond}
	ctx := context.Background()

	calls := 0
	err := p.Do(ctx, func(n int) error {
		calls++
		if n != calls {
			t.Errorf("attempt %d reported as %d", calls, n)
		}
		if n < 3 {
			return errBusy
		}
		return nil
	}, nil)
	if err != nil || calls != 3 {
		t.Errorf("succeeding on the third: err %v after %d calls, want nil after 3", err, calls)
	}

	calls = 0
	fatal := errors.New("fatal")
	err = p.Do(ctx, func(int) error { calls++; return fatal }, func(err error) bool { return errors.Is(err, errBusy) })
	if !errors.Is(err, fatal) || calls != 1 {
		t.Errorf("a refused error: %v after %d calls, want fatal after 1", err, calls)
	}

	calls = 0
	err = p.Do(ctx, func(int) error { calls++; return errBusy }, nil)
	if !errors.Is(err, errBusy) || calls != 4 {
		t.Errorf("always busy: %v after %d calls, want busy after 4", err, calls)
	}
}

func TestDoEndsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	p := Policy{Initial: time.Hour} // unbounded attempts: only ctx ends it
	done := make(chan error, 1)
	go func() { done <- p.Do(ctx, func(int) error { return errBusy }, nil) }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, errBusy) || !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want the last error joined with context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Do did not return within 5s of its context ending")
	}
}
