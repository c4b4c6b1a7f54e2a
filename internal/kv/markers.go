package kv

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// PurgeMarkers removes the delete and purge markers of bucket's keys that
// match filter and are older than age, and returns how many it removed.
// A KV delete or purge leaves a marker, and with it the key's subject in
// the NATS server's memory and on disk, for as long as the bucket lives: a
// bucket whose keys are made and deleted all the time (one an alert) would
// grow without end. A marker is kept for age first, so that a watch that
// fell behind still sees the key go. Each removal names the marker's
// sequence, so a value written to the key after it is never touched.
func PurgeMarkers(ctx context.Context, js jetstream.JetStream, bucket jetstream.KeyValue, filter string, age time.Duration) (int, error) {
	w, err := bucket.WatchFiltered(ctx, []string{filter}, jetstream.MetaOnly())
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", bucket.Bucket(), err)
	}
	defer func() { _ = w.Stop() }()
	cutoff := time.Now().Add(-age)
	type marker struct {
		key string
		seq uint64
	}
	var old []marker
	for done := false; !done; {
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("read %s: %w", bucket.Bucket(), ctx.Err())
		case e, ok := <-w.Updates():
			switch {
			case !ok:
				return 0, fmt.Errorf("read %s: watcher stopped", bucket.Bucket())
			case e == nil:
				done = true // every key seen
			case e.Operation() != jetstream.KeyValuePut && e.Created().Before(cutoff):
				old = append(old, marker{e.Key(), e.Revision()})
			}
		}
	}
	if len(old) == 0 {
		return 0, nil
	}
	s, err := js.Stream(ctx, "KV_"+bucket.Bucket())
	if err != nil {
		return 0, fmt.Errorf("stream of %s: %w", bucket.Bucket(), err)
	}
	n := 0
	var errs []error
	for _, mk := range old {
		// Everything on the key's subject before the marker's successor:
		// the marker, and nothing written after it.
		err := s.Purge(ctx, jetstream.WithPurgeSubject("$KV."+bucket.Bucket()+"."+mk.key), jetstream.WithPurgeSequence(mk.seq+1))
		if err != nil {
			errs = append(errs, fmt.Errorf("purge marker of %s: %w", mk.key, err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}
