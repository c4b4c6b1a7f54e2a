// Package ratelimit is a token bucket per key (a user, a device, an
// address), each bucket a golang.org/x/time/rate.Limiter, with the map of
// buckets bounded: a bucket that has filled up again is the same as no
// bucket, so idle keys are forgotten, and a flood of new keys cannot grow
// the map past its cap.
//
// Every call takes the time as an argument, so callers with an injected
// clock (tests, replays) decide as they would in real time.
package ratelimit

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// sweepEvery is how often, on the limiter's own clock, buckets that filled
// up again are dropped even below the cap.
const sweepEvery = time.Minute

// Keyed is a token bucket per key. It is safe for concurrent use; one mutex
// makes a check over several keys and what it takes from them one step.
type Keyed struct {
	limit   rate.Limit
	burst   int
	maxKeys int

	mu    sync.Mutex
	m     map[string]*rate.Limiter
	swept time.Time
}

// New returns buckets of burst tokens refilled at perSecond, for at most
// maxKeys keys at once.
func New(perSecond float64, burst, maxKeys int) *Keyed {
	return &Keyed{limit: rate.Limit(perSecond), burst: max(burst, 1), maxKeys: max(maxKeys, 2), m: map[string]*rate.Limiter{}}
}

// Per returns buckets that let n events through per period, all n at once
// at most: "n failed logins a minute".
func Per(n int, period time.Duration, maxKeys int) *Keyed {
	return New(float64(n)/period.Seconds(), n, maxKeys)
}

// Allow takes one token of key's bucket at now, or, when there is none,
// takes nothing and says how long until there is one.
func (k *Keyed) Allow(key string, now time.Time) (bool, time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.get(key, now)
	if tok := l.TokensAt(now); tok < 1 {
		return false, k.until(1 - tok)
	}
	l.AllowN(now, 1)
	return true, 0
}

// TakeDebt lets an action in while key has a token, and then charges its
// whole cost (at least one) at once, so the bucket may go into debt down to
// minus its burst: a device that sent one big batch waits for the debt to
// be paid. It reports whether the action was let in.
func (k *Keyed) TakeDebt(key string, cost float64, now time.Time) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.get(key, now)
	tok := l.TokensAt(now)
	if tok < 1 {
		return false
	}
	charge := int(math.Min(math.Max(cost, 1), math.Floor(tok)+float64(k.burst)))
	for charge > 0 { // a reservation takes at most burst tokens
		n := min(charge, k.burst)
		l.ReserveN(now, n)
		charge -= n
	}
	return true
}

// Reservation is what ReserveAll took, to give back with Refund.
type Reservation struct {
	at  time.Time // when the tokens were taken: they were there, so no wait
	res []*rate.Reservation
}

// ReserveAll takes one token from every key's bucket as one step, or, when
// any bucket is empty, takes none and says how long until the emptiest has
// one. Checking and taking at once means parallel attempts cannot all pass
// on the same token.
func (k *Keyed) ReserveAll(now time.Time, keys ...string) (Reservation, time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var wait time.Duration
	for _, key := range keys {
		if tok := k.get(key, now).TokensAt(now); tok < 1 {
			wait = max(wait, k.until(1-tok))
		}
	}
	if wait > 0 {
		return Reservation{}, wait
	}
	res := Reservation{at: now, res: make([]*rate.Reservation, 0, len(keys))}
	for _, key := range keys {
		res.res = append(res.res, k.m[key].ReserveN(now, 1))
	}
	return res, 0
}

// Refund gives back the tokens of a reservation whose attempt should not
// count (it succeeded, or was never checked). A refund is as if the
// reservation was cancelled the moment it was made.
func (k *Keyed) Refund(res Reservation) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, r := range res.res {
		r.CancelAt(res.at)
	}
}

// Forget drops key's bucket: the key starts full again.
func (k *Keyed) Forget(key string) {
	k.mu.Lock()
	delete(k.m, key)
	k.mu.Unlock()
}

// Len is the number of buckets kept.
func (k *Keyed) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.m)
}

// get returns key's bucket, a full one when it has none. The caller holds
// k.mu.
func (k *Keyed) get(key string, now time.Time) *rate.Limiter {
	if now.Sub(k.swept) >= sweepEvery {
		k.evictIdle(now)
		k.swept = now
	}
	l, ok := k.m[key]
	if !ok {
		if len(k.m) >= k.maxKeys {
			k.evict(now)
		}
		l = rate.NewLimiter(k.limit, k.burst)
		l.SetBurstAt(now, k.burst) // start full, on the caller's clock
		k.m[key] = l
	}
	return l
}

// evict makes room: buckets that filled up again go first; when every
// bucket is in use, half of them at random, rather than grow. A forgotten
// key starts full, which under a flood of distinct keys is the lesser harm.
func (k *Keyed) evict(now time.Time) {
	k.evictIdle(now)
	for key := range k.m {
		if len(k.m) < k.maxKeys/2 {
			break
		}
		delete(k.m, key)
	}
}

func (k *Keyed) evictIdle(now time.Time) {
	for key, l := range k.m {
		if l.TokensAt(now) >= float64(k.burst) {
			delete(k.m, key)
		}
	}
}

// until is how long the bucket takes to refill n tokens.
func (k *Keyed) until(n float64) time.Duration {
	if k.limit <= 0 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(n / float64(k.limit) * float64(time.Second))
}
