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
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/kv"
	"github.com/carehub/carehub/internal/model"
)

// Typed errors the HTTP API maps to status codes (contract §4: 404, 409, 422).
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("already exists")
	ErrInvalid  = errors.New("invalid")
)

// FieldError is an ErrInvalid that names the field at fault (its JSON
// name in the API's bodies) and why, as a fixed English reason with fmt
// verbs and its values apart: the API passes them on (error.fields), so
// that the console can point at the field and say why in its own language.
type FieldError struct {
	Field  string
	Reason string
	Args   []any
}

func (e FieldError) Error() string {
	return ErrInvalid.Error() + ": " + fmt.Sprintf(e.Reason, e.Args...)
}

func (e FieldError) Unwrap() error { return ErrInvalid }

// invalid is the FieldError of field: reason with args.
func invalid(field, reason string, args ...any) error {
	return FieldError{Field: field, Reason: reason, Args: args}
}

// updateRetries bounds the optimistic-concurrency loop: a record that is
// rewritten by other instances this often in a row is a bug, not contention.
const updateRetries = 5

// Registry is carehub's registry of homes, residents and devices. The truth is
// in JetStream KV; every instance keeps a copy in memory, kept current by KV
// watchers, so a device registered through another instance (or written to KV
// directly) is known to running ingestors without a restart.
type Registry struct {
	log zerolog.Logger
	now func() time.Time

	homes, residents, devices jetstream.KeyValue
	erased                    jetstream.KeyValue

	// In-memory copies of the buckets, kept current by their watches.
	homeTab     *kv.Cache[Home]
	residentTab *kv.Cache[Resident]
	deviceTab   *kv.Cache[Device]
	erasedTab   *kv.Cache[Tombstone]

	auth *authCache

	accounts BrokerAccounts       // nil: no external broker to mirror to
	reserved func(id string) bool // nil: no reserved device ids
}

// Open creates the registry buckets if missing, loads them into memory and
// starts the watchers that keep the copy current. It returns once the initial
// contents are loaded. Close stops the watchers.
func Open(ctx context.Context, js jetstream.JetStream, log zerolog.Logger, now func() time.Time) (*Registry, error) {
	if now == nil {
		now = time.Now
	}
	r := &Registry{
		log:  log.With().Str("component", "registry").Logger(),
		now:  now,
		auth: newAuthCache(),
	}
	// The latest value only (history 1): a registry record's past is of no use.
	var err error
	if r.homes, err = kv.Open(ctx, js, kv.Bucket{Name: model.BucketHomes, Description: "carehub homes by id", History: 1}); err != nil {
		return nil, err
	}
	if r.residents, err = kv.Open(ctx, js, kv.Bucket{Name: model.BucketResidents, Description: "carehub residents by id", History: 1}); err != nil {
		return nil, err
	}
	if r.devices, err = kv.Open(ctx, js, kv.Bucket{Name: model.BucketDevices, Description: "carehub devices by id", History: 1}); err != nil {
		return nil, err
	}
	if r.erased, err = kv.Open(ctx, js, kv.Bucket{Name: model.BucketErased, Description: "carehub erased resident ids (tombstones)", History: 1}); err != nil {
		return nil, err
	}

	// The caches' watches outlive Open's ctx; Close stops them.
	nc := js.Conn()
	if r.homeTab, err = kv.NewCache(ctx, nc, r.homes, kv.CacheOptions[Home]{Log: r.log}); err != nil {
		return nil, err
	}
	if r.residentTab, err = kv.NewCache(ctx, nc, r.residents, kv.CacheOptions[Resident]{Log: r.log}); err != nil {
		r.Close()
		return nil, err
	}
	if r.deviceTab, err = kv.NewCache(ctx, nc, r.devices, kv.CacheOptions[Device]{Log: r.log}); err != nil {
		r.Close()
		return nil, err
	}
	if r.erasedTab, err = kv.NewCache(ctx, nc, r.erased, kv.CacheOptions[Tombstone]{Log: r.log}); err != nil {
		r.Close()
		return nil, err
	}
	r.log.Info().
		Int("homes", r.homeTab.Len()).
		Int("residents", r.residentTab.Len()).
		Int("devices", r.deviceTab.Len()).
		Msg("registry loaded")
	return r, nil
}

// Close stops the watches. The registry must not be used afterwards.
func (r *Registry) Close() {
	for _, c := range []interface{ Close() }{r.homeTab, r.residentTab, r.deviceTab, r.erasedTab} {
		if c != nil {
			c.Close()
		}
	}
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
func readThrough[T any](ctx context.Context, bucket jetstream.KeyValue, tab *kv.Cache[T], id string) (T, bool, error) {
	if v, ok := tab.Get(id); ok {
		return v, true, nil
	}
	var zero T
	e, err := bucket.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return zero, false, nil
	}
	if err != nil {
		return zero, false, fmt.Errorf("%s get %q: %w", bucket.Bucket(), id, err)
	}
	var v T
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return zero, false, fmt.Errorf("%s %q: %w", bucket.Bucket(), id, err)
	}
	tab.Put(id, v, e.Revision())
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
