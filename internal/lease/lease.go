// Package lease elects one holder of a role among carehub instances that
// share a NATS cluster: the alert leader, which alone runs the rules'
// timers and escalation. A lease is one key in a JetStream key-value bucket
// whose values expire TTL after they were written; the holder rewrites its
// key every TTL/3 with a compare-and-set on the revision it wrote last.
//
// Why a KV lease: JetStream already replicates the bucket (Raft, with the
// rest of carehub's state), so the election needs no other system, and a
// compare-and-set on one key cannot elect two holders. A holder that cannot
// renew for 2/3 of the TTL (a network partition, a long pause) gives the
// role up before its key can expire, so at most one instance acts at a
// time; another instance takes the expired key within TTL + TTL/3 of the
// holder's death.
package lease

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/kv"
	"github.com/carehub/carehub/internal/model"
)

// DefaultTTL is how long a lease outlives its holder's last renewal.
const DefaultTTL = 10 * time.Second

// Open opens the leases bucket (model.BucketLeases) with values that expire
// ttl after they were written.
func Open(ctx context.Context, js jetstream.JetStream, ttl time.Duration) (jetstream.KeyValue, error) {
	return kv.Open(ctx, js, kv.Bucket{Name: model.BucketLeases,
		Description: "roles one carehub instance holds at a time; each value is the holder's instance id", TTL: ttl})
}

// Lease is one instance's claim on one role.
type Lease struct {
	kv     jetstream.KeyValue
	key    string
	holder string
	ttl    time.Duration
	log    zerolog.Logger
	held   atomic.Bool
	now    func() time.Time

	decided     chan struct{} // closed after the first attempt to acquire
	decidedOnce sync.Once
}

// New is holder's claim on key in bucket b (opened by Open with the same ttl).
func New(b jetstream.KeyValue, key, holder string, ttl time.Duration, log zerolog.Logger) *Lease {
	return &Lease{kv: b, key: key, holder: holder, ttl: ttl, now: time.Now, decided: make(chan struct{}),
		log: log.With().Str("component", "lease").Str("lease", key).Logger()}
}

// Held reports whether this instance holds the lease now.
func (l *Lease) Held() bool { return l.held.Load() }

// Decided is closed once Run's first attempt to acquire the lease is over:
// then Held says whether this instance won it (and lead has been started).
func (l *Lease) Decided() <-chan struct{} { return l.decided }

// Run campaigns for the lease until ctx ends. While it holds the lease it
// runs lead with a context that ends when the lease is lost or ctx ends,
// and waits for lead to return before anything else: lead must stop
// acting promptly (well within TTL/3) when its context ends. On ctx's end
// a held lease is released, so another instance takes over at once.
func (l *Lease) Run(ctx context.Context, lead func(ctx context.Context)) {
	every := l.ttl / 3
	for {
		rev, ok := l.acquire(ctx)
		if ok {
			l.hold(ctx, rev, lead, l.decide)
		}
		l.decide()
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

func (l *Lease) decide() { l.decidedOnce.Do(func() { close(l.decided) }) }

// acquire takes the key when nobody holds it, or when it names this
// instance (a restart of the holder takes its lease back without waiting
// for it to expire).
func (l *Lease) acquire(ctx context.Context) (uint64, bool) {
	e, err := l.kv.Get(ctx, l.key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
		rev, err := l.kv.Create(ctx, l.key, []byte(l.holder))
		if err != nil {
			return 0, false // another instance was faster, or NATS is away
		}
		return rev, true
	case err != nil:
		return 0, false
	case string(e.Value()) == l.holder:
		rev, err := l.kv.Update(ctx, l.key, []byte(l.holder), e.Revision())
		return rev, err == nil
	}
	return 0, false
}

// hold runs lead while renewing the lease; it returns when the lease is
// lost or ctx ends, after lead has returned.
func (l *Lease) hold(ctx context.Context, rev uint64, lead func(ctx context.Context), started func()) {
	leadCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	l.held.Store(true)
	l.log.Info().Str("instance", l.holder).Msg("lease acquired")
	go func() { defer close(done); lead(leadCtx) }()
	started()

	renewed := l.now() // when the last successful renewal was sent
	tick := time.NewTicker(l.ttl / 3)
	reason := ""
	for reason == "" {
		select {
		case <-ctx.Done():
			reason = "stopping"
		case <-done:
			reason = "its work ended"
		case <-tick.C:
			sent := l.now()
			rctx, cancel := context.WithTimeout(ctx, l.ttl/3)
			nrev, err := l.kv.Update(rctx, l.key, []byte(l.holder), rev)
			cancel()
			switch {
			case err == nil:
				rev, renewed = nrev, sent
			case kv.WrongRevision(err) || errors.Is(err, jetstream.ErrKeyNotFound):
				reason = "another instance holds it"
			case l.now().Sub(renewed) >= 2*l.ttl/3:
				// The key may expire before this instance can renew it:
				// stop acting before another instance can start.
				reason = fmt.Sprintf("not renewed for %s", l.now().Sub(renewed).Round(time.Millisecond))
			}
		}
	}
	tick.Stop()
	stop()
	<-done
	l.held.Store(false)
	l.log.Warn().Str("instance", l.holder).Str("reason", reason).Msg("lease given up")
	if ctx.Err() != nil || reason == "its work ended" {
		// Release it so another instance takes over now, not after the TTL.
		dctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = l.kv.Delete(dctx, l.key, jetstream.LastRevision(rev))
	}
}
