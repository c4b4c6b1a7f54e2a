package devices

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// KV bucket names. One bucket per kind of record, keyed by id, so that a
// watcher on one bucket sees exactly the records of that kind.
const (
	BucketHomes     = "care_homes"
	BucketResidents = "care_residents"
	BucketDevices   = "care_devices"
	BucketPresence  = "care_presence"
	// BucketErased holds a tombstone per erased resident id (see
	// Registry.MarkErased): no name, only the id and when it was erased.
	BucketErased = "care_erased"
)

// Typed errors the HTTP API maps to status codes (contract §4: 404, 409, 422).
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("already exists")
	ErrInvalid  = errors.New("invalid")
)

// invalid wraps ErrInvalid with what is wrong, for the API's error message.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// updateRetries bounds the optimistic-concurrency loop: a record that is
// rewritten by other instances this often in a row is a bug, not contention.
const updateRetries = 5

// record is a value with the KV revision it was read at; the revision lets a
// late watcher update never overwrite a newer local write.
type record[T any] struct {
	v   T
	rev uint64
}

// table is one bucket's in-memory copy. Lookups take the read lock only:
// ingest calls Device(id) for every MQTT message, and writers (KV watcher,
// API) are rare.
type table[T any] struct {
	mu sync.RWMutex
	m  map[string]record[T]
}

func newTable[T any]() *table[T] { return &table[T]{m: make(map[string]record[T])} }

func (t *table[T]) get(id string) (T, bool) {
	t.mu.RLock()
	r, ok := t.m[id]
	t.mu.RUnlock()
	return r.v, ok
}

// put stores v unless a newer revision is already there.
func (t *table[T]) put(id string, v T, rev uint64) {
	t.mu.Lock()
	if cur, ok := t.m[id]; !ok || cur.rev <= rev {
		t.m[id] = record[T]{v: v, rev: rev}
	}
	t.mu.Unlock()
}

func (t *table[T]) remove(id string, rev uint64) {
	t.mu.Lock()
	if cur, ok := t.m[id]; ok && cur.rev <= rev {
		delete(t.m, id)
	}
	t.mu.Unlock()
}

func (t *table[T]) list(keep func(T) bool) []T {
	t.mu.RLock()
	out := make([]T, 0, len(t.m))
	for _, r := range t.m {
		if keep == nil || keep(r.v) {
			out = append(out, r.v)
		}
	}
	t.mu.RUnlock()
	return out
}

// Registry is carehub's registry of homes, residents and devices. The truth is
// in JetStream KV; every instance keeps a copy in memory, kept current by KV
// watchers, so a device registered through another instance (or written to KV
// directly) is known to running ingestors without a restart.
type Registry struct {
	log zerolog.Logger
	now func() time.Time

	homes, residents, devices jetstream.KeyValue
	erased                    jetstream.KeyValue

	homeTab     *table[Home]
	residentTab *table[Resident]
	deviceTab   *table[Device]
	erasedTab   *table[Tombstone]

	auth *authCache

	accounts BrokerAccounts       // nil: no external broker to mirror to
	reserved func(id string) bool // nil: no reserved device ids

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// bucketConfig is the KV configuration of every registry bucket: the latest
// value only (history 1), on disk so the registry survives a NATS restart.
func bucketConfig(name, desc string) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      name,
		Description: desc,
		History:     1,
		Storage:     jetstream.FileStorage,
	}
}

// Open creates the registry buckets if missing, loads them into memory and
// starts the watchers that keep the copy current. It returns once the initial
// contents are loaded. Close stops the watchers.
func Open(ctx context.Context, js jetstream.JetStream, log zerolog.Logger, now func() time.Time) (*Registry, error) {
	if now == nil {
		now = time.Now
	}
	r := &Registry{
		log:         log.With().Str("component", "registry").Logger(),
		now:         now,
		homeTab:     newTable[Home](),
		residentTab: newTable[Resident](),
		deviceTab:   newTable[Device](),
		erasedTab:   newTable[Tombstone](),
		auth:        newAuthCache(),
	}
	var err error
	if r.homes, err = js.CreateOrUpdateKeyValue(ctx, bucketConfig(BucketHomes, "carehub homes by id")); err != nil {
		return nil, fmt.Errorf("registry bucket %s: %w", BucketHomes, err)
	}
	if r.residents, err = js.CreateOrUpdateKeyValue(ctx, bucketConfig(BucketResidents, "carehub residents by id")); err != nil {
		return nil, fmt.Errorf("registry bucket %s: %w", BucketResidents, err)
	}
	if r.devices, err = js.CreateOrUpdateKeyValue(ctx, bucketConfig(BucketDevices, "carehub devices by id")); err != nil {
		return nil, fmt.Errorf("registry bucket %s: %w", BucketDevices, err)
	}
	if r.erased, err = js.CreateOrUpdateKeyValue(ctx, bucketConfig(BucketErased, "carehub erased resident ids (tombstones)")); err != nil {
		return nil, fmt.Errorf("registry bucket %s: %w", BucketErased, err)
	}

	// The watchers outlive Open's ctx; Close cancels them.
	wctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	ready := make(chan error, 4)
	restarts := []chan struct{}{make(chan struct{}, 1), make(chan struct{}, 1), make(chan struct{}, 1), make(chan struct{}, 1)}
	r.watchReconnects(wctx, js.Conn(), restarts...)
	startWatch(wctx, r, r.homes, r.homeTab, ready, restarts[0])
	startWatch(wctx, r, r.residents, r.residentTab, ready, restarts[1])
	startWatch(wctx, r, r.devices, r.deviceTab, ready, restarts[2])
	startWatch(wctx, r, r.erased, r.erasedTab, ready, restarts[3])
	for range 4 {
		select {
		case err := <-ready:
			if err != nil {
				r.Close()
				return nil, err
			}
		case <-ctx.Done():
			r.Close()
			return nil, fmt.Errorf("registry initial load: %w", ctx.Err())
		}
	}
	r.log.Info().
		Int("homes", len(r.homeTab.list(nil))).
		Int("residents", len(r.residentTab.list(nil))).
		Int("devices", len(r.deviceTab.list(nil))).
		Msg("registry loaded")
	return r, nil
}

// startWatch runs one bucket's watcher: it applies every put and delete to
// tab and reports on ready once the initial values are in (the nil marker).
// When restart fires (the NATS connection came back) it replaces the watcher:
// the old one's ordered consumer died with the server, and nats.go would
// take about 20 s of missed heartbeats to notice by itself. The new watcher
// replays the latest value (or delete marker) of every key, which put/remove
// apply idempotently by revision.
func startWatch[T any](ctx context.Context, r *Registry, kv jetstream.KeyValue, tab *table[T], ready chan<- error, restart <-chan struct{}) {
	w, err := kv.WatchAll(ctx)
	if err != nil {
		ready <- fmt.Errorf("registry watch %s: %w", kv.Bucket(), err)
		return
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		signalled := false
		for {
			again := consumeWatch(ctx, r, kv.Bucket(), w, tab, restart, func() {
				if !signalled {
					signalled = true
					ready <- nil
				}
			})
			_ = w.Stop()
			if !again || ctx.Err() != nil {
				if !signalled {
					ready <- fmt.Errorf("registry watch %s stopped before the initial load", kv.Bucket())
				}
				return
			}
			for {
				if w, err = kv.WatchAll(ctx); err == nil {
					break
				}
				// JetStream may still be recovering its streams after a restart.
				r.log.Warn().Err(err).Str("bucket", kv.Bucket()).Msg("registry watch restart failed; retrying")
				select {
				case <-ctx.Done():
					return
				case <-time.After(watchRetry):
				}
			}
			r.log.Info().Str("bucket", kv.Bucket()).Msg("registry watch restarted after reconnect")
		}
	}()
}

// watchRetry is the pause between attempts to re-create a watcher.
const watchRetry = 500 * time.Millisecond

// consumeWatch applies w's updates until ctx ends (false), or the watcher
// closes or restart fires (true: make a new watcher).
func consumeWatch[T any](ctx context.Context, r *Registry, bucket string, w jetstream.KeyWatcher, tab *table[T], restart <-chan struct{}, loaded func()) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case <-restart:
			return true
		case e, ok := <-w.Updates():
			if !ok {
				return true
			}
			if e == nil {
				loaded()
				continue
			}
			applyEntry(r, bucket, tab, e)
		}
	}
}

// watchReconnects fans a NATS reconnect out to the watchers' restart
// channels. A pending signal is enough; more are dropped.
func (r *Registry) watchReconnects(ctx context.Context, nc *nats.Conn, restarts ...chan struct{}) {
	ch := nc.StatusChanged(nats.CONNECTED)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer nc.RemoveStatusListener(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-ch:
				if !ok {
					return
				}
				for _, c := range restarts {
					select {
					case c <- struct{}{}:
					default:
					}
				}
			}
		}
	}()
}

func applyEntry[T any](r *Registry, bucket string, tab *table[T], e jetstream.KeyValueEntry) {
	switch e.Operation() {
	case jetstream.KeyValueDelete, jetstream.KeyValuePurge:
		tab.remove(e.Key(), e.Revision())
		return
	}
	var v T
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		// A record written to KV by hand that does not parse: keep the
		// rest of the registry working and say which key.
		r.log.Error().Err(err).Str("bucket", bucket).Str("key", e.Key()).Msg("registry record is not valid JSON; ignored")
		return
	}
	tab.put(e.Key(), v, e.Revision())
}

// Close stops the watchers. The registry must not be used afterwards.
func (r *Registry) Close() {
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
}

// randomID returns prefix followed by 12 random hex digits: 48 bits, so a
// collision is rare, and Create turns one into a retry rather than a
// silent overwrite.
func randomID(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// createJSON stores v under id only if id is new (KV Create is atomic across
// instances), and returns the revision.
func createJSON(ctx context.Context, kv jetstream.KeyValue, id string, v any) (uint64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	rev, err := kv.Create(ctx, id, b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, fmt.Errorf("%w: %s %q", ErrConflict, kv.Bucket(), id)
	}
	if err != nil {
		return 0, fmt.Errorf("%s create %q: %w", kv.Bucket(), id, err)
	}
	return rev, nil
}

// createWithID creates a record; when the caller gave no id it generates one
// and retries on the (unlikely) collision.
func createWithID(ctx context.Context, kv jetstream.KeyValue, id, prefix string, build func(id string) any) (string, uint64, any, error) {
	generated := id == ""
	for attempt := 0; ; attempt++ {
		if generated {
			id = randomID(prefix)
		}
		v := build(id)
		rev, err := createJSON(ctx, kv, id, v)
		if errors.Is(err, ErrConflict) && generated && attempt < 3 {
			continue
		}
		return id, rev, v, err
	}
}

// updateJSON reads id's latest revision from KV, applies change and writes it
// back with Update on that revision; a concurrent writer makes it re-read
// and re-apply, so no update is lost.
func updateJSON[T any](ctx context.Context, kv jetstream.KeyValue, id string, change func(*T) error) (T, uint64, error) {
	var zero T
	for range updateRetries {
		e, err := kv.Get(ctx, id)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return zero, 0, fmt.Errorf("%w: %s %q", ErrNotFound, kv.Bucket(), id)
		}
		if err != nil {
			return zero, 0, fmt.Errorf("%s get %q: %w", kv.Bucket(), id, err)
		}
		var v T
		if err := json.Unmarshal(e.Value(), &v); err != nil {
			return zero, 0, fmt.Errorf("%s %q: %w", kv.Bucket(), id, err)
		}
		if err := change(&v); err != nil {
			return zero, 0, err
		}
		b, err := json.Marshal(v)
		if err != nil {
			return zero, 0, err
		}
		rev, err := kv.Update(ctx, id, b, e.Revision())
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		}
		if err != nil {
			return zero, 0, fmt.Errorf("%s update %q: %w", kv.Bucket(), id, err)
		}
		return v, rev, nil
	}
	return zero, 0, fmt.Errorf("%w: %s %q changed concurrently %d times", ErrConflict, kv.Bucket(), id, updateRetries)
}

// readThrough returns a record from memory, or from KV when the watcher has
// not delivered it yet (a resident created a moment ago on another instance).
func readThrough[T any](ctx context.Context, kv jetstream.KeyValue, tab *table[T], id string) (T, bool, error) {
	if v, ok := tab.get(id); ok {
		return v, true, nil
	}
	var zero T
	e, err := kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return zero, false, nil
	}
	if err != nil {
		return zero, false, fmt.Errorf("%s get %q: %w", kv.Bucket(), id, err)
	}
	var v T
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return zero, false, fmt.Errorf("%s %q: %w", kv.Bucket(), id, err)
	}
	tab.put(id, v, e.Revision())
	return v, true, nil
}

func sortByID[T any](s []T, id func(T) string) []T {
	sort.Slice(s, func(i, j int) bool { return id(s[i]) < id(s[j]) })
	return s
}

// macKey hashes passwords for the verification cache. It is random per
// process, so the cache holds nothing that is useful outside this process.
func newMACKey() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return k
}

func mac(key []byte, parts ...string) []byte {
	h := hmac.New(sha256.New, key)
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return h.Sum(nil)
}
