package kv

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/retry"
)

// Follow calls apply with every change to the keys of bucket that match
// filter, from revision from on (0: the latest value or delete marker of
// every key first), until ctx ends or nc closes. It is Cache's watch for a
// caller that keeps its own state. The bucket is watched again when the
// watch ends by itself and whenever nc reconnects (after a server restart
// or a change of stream leader the old consumer may be gone, which nats.go
// takes tens of seconds to notice). A new watch replays the latest value
// or delete marker of every key, a fresh scan that reconciles whatever
// went stale meanwhile, so apply must be idempotent by revision. A nil
// entry, the end of the replayed values, is not passed on.
func Follow(ctx context.Context, nc *nats.Conn, bucket jetstream.KeyValue, filter string, from uint64,
	apply func(jetstream.KeyValueEntry), log zerolog.Logger) {
	back := nc.StatusChanged(nats.CONNECTED)
	defer nc.RemoveStatusListener(back)
	for n := 0; ctx.Err() == nil && !nc.IsClosed(); n++ {
		var opts []jetstream.WatchOpt
		if from > 0 {
			opts = append(opts, jetstream.ResumeFromRevision(from))
		}
		w, err := bucket.WatchFiltered(ctx, []string{filter}, opts...)
		if err != nil {
			log.Warn().Err(err).Str("bucket", bucket.Bucket()).Msg("kv watch failed; retrying")
			_ = retry.Sleep(ctx, retryWatch)
			continue
		}
		if n > 0 {
			log.Info().Str("bucket", bucket.Bucket()).Msg("kv watch restarted")
		}
		from = 0
		if follow(ctx, w, back, apply) {
			_ = retry.Sleep(ctx, retryWatch) // ended by itself: do not spin
		}
		_ = w.Stop()
	}
}

// follow applies w's updates until ctx ends, the connection comes back,
// or w ends by itself (true).
func follow(ctx context.Context, w jetstream.KeyWatcher, back <-chan nats.Status, apply func(jetstream.KeyValueEntry)) (ended bool) {
	for {
		select {
		case <-ctx.Done():
			return false
		case <-back:
			return false
		case e, ok := <-w.Updates():
			if !ok {
				return true
			}
			if e != nil {
				apply(e)
			}
		}
	}
}

// Scan calls f with the latest value of every key of bucket that matches
// filter, read in one pass (a watch delivers the current value of each
// key, then stops); deleted keys are left out.
func Scan(ctx context.Context, bucket jetstream.KeyValue, filter string, f func(jetstream.KeyValueEntry)) error {
	w, err := bucket.WatchFiltered(ctx, []string{filter}, jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("read %s: %w", bucket.Bucket(), err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("read %s: %w", bucket.Bucket(), ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("read %s: watcher stopped", bucket.Bucket())
			}
			if e == nil {
				return nil // every stored value seen
			}
			f(e)
		}
	}
}
