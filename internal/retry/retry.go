// Package retry runs an operation again after a failure that may pass, with
// a growing pause between attempts. It is the one place carehub writes down
// how long to wait: callers say how many attempts, from which pause to which
// cap, how much of each pause is random, and which errors are worth another
// try.
package retry

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Policy says how often and how patiently to try again. The zero Policy
// tries until ctx ends with no pause at all, which is rarely what is meant:
// set at least Initial.
type Policy struct {
	// Attempts bounds the number of calls, the first included; zero or
	// less means no bound but ctx.
	Attempts int
	// Initial is the pause before the second attempt; each later pause
	// doubles, up to Max.
	Initial time.Duration
	// Max caps a pause; zero means no cap.
	Max time.Duration
	// Jitter is the share of each pause drawn at random, from 0 (every
	// pause exactly as computed) to 1 (anywhere from zero to the pause,
	// "full jitter"). Writers that collided must not collide again in
	// lockstep: any contended retry wants some.
	Jitter float64
}

// Backoff is the pause after the n-th failed attempt (n from 1), jitter
// included.
func (p Policy) Backoff(n int) time.Duration {
	d := p.Initial
	for i := 1; i < n && (p.Max <= 0 || d < p.Max); i++ {
		if d > time.Duration(1<<62) {
			break // no overflow on absurd attempt counts
		}
		d *= 2
	}
	if p.Max > 0 {
		d = min(d, p.Max)
	}
	if j := min(max(p.Jitter, 0), 1); j > 0 && d > 0 {
		if span := time.Duration(float64(d) * j); span > 0 {
			d -= rand.N(span + 1)
		}
	}
	return d
}

// Do calls f until it returns nil, an error retriable does not accept (a nil
// retriable accepts every error), the attempts run out, or ctx ends. It
// returns f's last error; when ctx ends during a pause, that error joined
// with ctx's. f is told which attempt it is, from 1.
func (p Policy) Do(ctx context.Context, f func(attempt int) error, retriable func(error) bool) error {
	for n := 1; ; n++ {
		err := f(n)
		if err == nil || (retriable != nil && !retriable(err)) {
			return err
		}
		if p.Attempts > 0 && n >= p.Attempts {
			return err
		}
		if cerr := Sleep(ctx, p.Backoff(n)); cerr != nil {
			return errors.Join(err, cerr)
		}
	}
}

// Sleep waits d, or less when ctx ends first; it returns ctx's error then,
// nil after the full pause.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
