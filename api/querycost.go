package api

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
)

// Query cost limits on the InfluxDB-backed endpoints (readings, latest,
// summary, overview, statistics, export): one user cannot keep the store
// busy for everyone. Each user has a token bucket of QueryBurst queries
// refilled at QueryRate per minute; at most MaxQueries run at once on the
// instance. Either limit answers 429 rate_limited with Retry-After.
const (
	defaultQueryRate  = 300 // per user and minute (CARE_QUERY_RATE)
	defaultQueryBurst = 60  // CARE_QUERY_BURST
	defaultMaxQueries = 8   // CARE_MAX_QUERIES
	// queryWait is how long a request waits for a free query slot before
	// it is refused: long enough to ride out a burst, short enough that a
	// phone does not hang.
	queryWait = 2 * time.Second
	// maxQueryUsers bounds the limiter's memory (idle buckets are dropped).
	maxQueryUsers = 10000
)

// queryLimiter is the per-user token bucket and the instance's query slots.
type queryLimiter struct {
	mu      sync.Mutex
	now     func() time.Time
	perSec  float64
	burst   float64
	buckets map[string]*tokenBucket
	slots   chan struct{}
}

type tokenBucket struct {
	tokens float64
	at     time.Time
}

func newQueryLimiter(now func() time.Time, perMinute, burst, slots int) *queryLimiter {
	if perMinute <= 0 {
		perMinute = defaultQueryRate
	}
	if burst <= 0 {
		burst = defaultQueryBurst
	}
	if slots <= 0 {
		slots = defaultMaxQueries
	}
	return &queryLimiter{now: now, perSec: float64(perMinute) / 60, burst: float64(burst),
		buckets: map[string]*tokenBucket{}, slots: make(chan struct{}, slots)}
}

// take spends one token of user's bucket, or says how long until one is
// there.
func (l *queryLimiter) take(user string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.buckets[user]
	if b == nil {
		if len(l.buckets) >= maxQueryUsers {
			l.evict(now)
		}
		b = &tokenBucket{tokens: l.burst, at: now}
		l.buckets[user] = b
	}
	if d := now.Sub(b.at); d > 0 {
		b.tokens = math.Min(l.burst, b.tokens+d.Seconds()*l.perSec)
		b.at = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	return time.Duration((1 - b.tokens) / l.perSec * float64(time.Second))
}

// evict drops the buckets that are full again (idle users).
func (l *queryLimiter) evict(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.at).Seconds()*l.perSec >= l.burst {
			delete(l.buckets, k)
		}
	}
}

// retryAfter is a 429 rate_limited with Retry-After in whole seconds.
func retryAfter(c *fiber.Ctx, wait time.Duration, msg string) error {
	secs := max(1, int((wait+time.Second-1)/time.Second))
	c.Set(fiber.HeaderRetryAfter, strconv.Itoa(secs))
	return &Error{Status: http.StatusTooManyRequests, Code: "rate_limited", Message: msg + "; retry after " + strconv.Itoa(secs) + " s"}
}

// influxQuery guards a route that queries InfluxDB: the caller's rate,
// then a query slot, held while the handler runs (an export's stream has
// its own slots, Options.MaxExports).
func (s *Server) influxQuery(c *fiber.Ctx) error {
	if wait := s.queries.take(principal(c).ID); wait > 0 {
		return retryAfter(c, wait, "too many queries from your account")
	}
	t := time.NewTimer(queryWait)
	defer t.Stop()
	select {
	case s.queries.slots <- struct{}{}:
	case <-t.C:
		return retryAfter(c, time.Second, "the time-series store is busy with other queries")
	case <-c.UserContext().Done():
		return c.UserContext().Err()
	}
	defer func() { <-s.queries.slots }()
	return c.Next()
}
