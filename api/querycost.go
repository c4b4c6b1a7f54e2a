package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/carehub/carehub/internal/ratelimit"
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
	now   func() time.Time
	users *ratelimit.Keyed
	slots chan struct{}
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
	return &queryLimiter{now: now, users: ratelimit.New(float64(perMinute)/60, burst, maxQueryUsers),
		slots: make(chan struct{}, slots)}
}

// take spends one token of user's bucket, or says how long until one is
// there.
func (l *queryLimiter) take(user string) time.Duration {
	_, wait := l.users.Allow(user, l.now())
	return wait
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
