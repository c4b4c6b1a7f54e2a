package kv

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// Cache is an in-memory copy of one bucket, kept current by a watch, so a
// record written through any carehub instance (or straight into KV by an
// operator) is known to every instance without a restart. Reads take a read
// lock only: ingest and the rules read on every message, writers are rare.
//
// The watch is restarted whenever it ends and whenever the NATS connection
// comes back: after a server restart the old watch's ordered consumer is
// gone, and nats.go would take about 20 s of missed heartbeats to notice by
// itself. A new watch replays the latest value (or delete marker) of every
// key, which the copy applies idempotently by revision.
type Cache[T any] struct {
	nc     *nats.Conn
	bucket jetstream.KeyValue
	decode func(value []byte) (T, error)
	log    zerolog.Logger

	mu sync.RWMutex
	m  map[string]record[T]

	restart chan struct{} // a pending signal to replace the watch
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// record is a value with the KV revision it was read or written at; the
// revision lets a late watch update never overwrite a newer local write.
type record[T any] struct {
	v   T
	rev uint64
}

// CacheOptions tune a Cache.
type CacheOptions[T any] struct {
	// Decode turns a stored value into T; nil decodes JSON. A value that
	// does not decode is logged with its key and left out of the copy, as
	// if deleted; the watch carries on.
	Decode func(value []byte) (T, error)
	Log    zerolog.Logger
}

// retryWatch is the pause between attempts to re-create a watch: JetStream
// may still be recovering its streams after a restart.
const retryWatch = 500 * time.Millisecond

// NewCache loads bucket into memory and keeps it current until Close. It
// returns once the bucket's contents are loaded, or with ctx's error. nc is
// the connection bucket was opened on (JetStream.Conn): its reconnects
// restart the watch.
func NewCache[T any](ctx context.Context, nc *nats.Conn, bucket jetstream.KeyValue, o CacheOptions[T]) (*Cache[T], error) {
	if o.Decode == nil {
		o.Decode = func(b []byte) (T, error) {
			var v T
			err := json.Unmarshal(b, &v)
			return v, err
		}
	}
	c := &Cache[T]{
		nc:      nc,
		bucket:  bucket,
		decode:  o.Decode,
		log:     o.Log.With().Str("bucket", bucket.Bucket()).Logger(),
		m:       map[string]record[T]{},
		restart: make(chan struct{}, 1),
	}
	// The watch outlives NewCache's ctx; Close cancels it.
	wctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	w, err := bucket.WatchAll(wctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("kv watch %s: %w", bucket.Bucket(), err)
	}
	if nc != nil {
		c.watchReconnects(wctx, nc)
	}
	loaded := make(chan struct{})
	c.wg.Add(1)
	go c.run(wctx, w, loaded)
	select {
	case <-loaded:
		return c, nil
	case <-ctx.Done():
		c.Close()
		return nil, fmt.Errorf("kv load %s: %w", bucket.Bucket(), ctx.Err())
	}
}

// run applies the watch's updates, replacing the watch whenever it ends or
// a reconnect asks for it, until ctx ends. It closes loaded after the
// first watch's initial values.
func (c *Cache[T]) run(ctx context.Context, w jetstream.KeyWatcher, loaded chan struct{}) {
	defer c.wg.Done()
	first := true
	for {
		ended := c.consume(ctx, w, func() {
			if first {
				first = false
				close(loaded)
			}
		})
		_ = w.Stop()
		if ended { // not asked for: do not spin on a watch that keeps ending
			select {
			case <-ctx.Done():
			case <-time.After(retryWatch):
			}
		}
		for {
			if ctx.Err() != nil {
				return
			}
			if c.nc != nil && c.nc.IsClosed() {
				return // for good: nothing will bring the watch back
			}
			var err error
			if w, err = c.bucket.WatchAll(ctx); err == nil {
				break
			}
			c.log.Warn().Err(err).Msg("kv watch restart failed; retrying")
			select {
			case <-ctx.Done():
				return
			case <-time.After(retryWatch):
			}
		}
		c.log.Info().Msg("kv watch restarted")
	}
}

// consume applies w's updates until ctx ends, a restart is asked for, or
// w ends by itself (true).
func (c *Cache[T]) consume(ctx context.Context, w jetstream.KeyWatcher, loaded func()) (ended bool) {
	for {
		select {
		case <-ctx.Done():
			return false
		case <-c.restart:
			return false
		case e, ok := <-w.Updates():
			if !ok {
				return true
			}
			if e == nil { // the end of the initial values
				loaded()
				continue
			}
			c.apply(e)
		}
	}
}

func (c *Cache[T]) apply(e jetstream.KeyValueEntry) {
	if e.Operation() != jetstream.KeyValuePut {
		c.Remove(e.Key(), e.Revision())
		return
	}
	v, err := c.decode(e.Value())
	if err != nil {
		// A record written by hand that does not parse: the copy holds
		// no value KV no longer has, the rest of the bucket keeps
		// working, and the log says which key.
		c.log.Error().Err(err).Str("key", e.Key()).Msg("kv record unreadable; left out")
		c.Remove(e.Key(), e.Revision())
		return
	}
	c.Put(e.Key(), v, e.Revision())
}

// watchReconnects asks for a new watch every time nc reconnects. A pending
// request is enough; more are dropped.
func (c *Cache[T]) watchReconnects(ctx context.Context, nc *nats.Conn) {
	ch := nc.StatusChanged(nats.CONNECTED)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer nc.RemoveStatusListener(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-ch:
				if !ok {
					return
				}
				select {
				case c.restart <- struct{}{}:
				default:
				}
			}
		}
	}()
}

// Close stops the watch. The copy stays readable, no longer current. A nil
// Cache may be closed.
func (c *Cache[T]) Close() {
	if c == nil {
		return
	}
	c.cancel()
	c.wg.Wait()
}

// Get returns key's value.
func (c *Cache[T]) Get(key string) (T, bool) {
	v, _, ok := c.GetRevision(key)
	return v, ok
}

// GetRevision returns key's value with the KV revision it was read or
// written at.
func (c *Cache[T]) GetRevision(key string) (T, uint64, bool) {
	c.mu.RLock()
	r, ok := c.m[key]
	c.mu.RUnlock()
	return r.v, r.rev, ok
}

// Put stores a value this process just wrote to KV at revision rev, unless
// a newer revision is already here: the instance that wrote it sees it at
// once, before the watch brings it.
func (c *Cache[T]) Put(key string, v T, rev uint64) {
	c.mu.Lock()
	if cur, ok := c.m[key]; !ok || cur.rev <= rev {
		c.m[key] = record[T]{v: v, rev: rev}
	}
	c.mu.Unlock()
}

// Remove forgets key unless a newer revision is here.
func (c *Cache[T]) Remove(key string, rev uint64) {
	c.mu.Lock()
	if cur, ok := c.m[key]; ok && cur.rev <= rev {
		delete(c.m, key)
	}
	c.mu.Unlock()
}

// Drop forgets key whatever its revision: after a KV delete or purge this
// process knows the record is gone. A watch update still in flight for an
// older put may bring it back for a moment; the marker that follows it
// removes it again.
func (c *Cache[T]) Drop(key string) {
	c.mu.Lock()
	delete(c.m, key)
	c.mu.Unlock()
}

// List returns the values keep accepts (all with keep nil), in no order.
func (c *Cache[T]) List(keep func(T) bool) []T {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]T, 0, len(c.m))
	for _, r := range c.m {
		if keep == nil || keep(r.v) {
			out = append(out, r.v)
		}
	}
	return out
}

// Len is how many keys the copy holds.
func (c *Cache[T]) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
