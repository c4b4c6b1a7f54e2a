// Package phones keeps what carehub knows of care workers' phones in NATS
// KV: their Web Push subscriptions, a delivery receipt per push (sent,
// accepted, shown, opened, acknowledged), and the single-use action tokens
// a notification carries so an alert can be acknowledged without opening
// the app, with the keys that sign them (console.md §3.3, §3.4).
package phones

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/internal/webpush"
)

// KV buckets (console.md §3.3).
const (
	// BucketSubscriptions holds one Subscription per user and phone, key
	// {user_id}.{first 16 hex of sha256(endpoint)}: KV keys cannot hold
	// URLs, and the prefix lets {user_id}.> list one user's phones.
	BucketSubscriptions = "care_push_subscriptions"
	// BucketReceipts holds one Receipt per push: key
	// {alert_id}.{seq}.{subscription key}, so {alert_id}.> is who was
	// reached for an alert, and an accepted receipt is what keeps a
	// redelivered transition from pushing a phone twice.
	BucketReceipts = "care_push_receipts"
	// BucketTokens remembers used action tokens until they could not be
	// valid anyway: a token is accepted once.
	BucketTokens = "care_push_tokens"
	// BucketKeys holds the VAPID pair and the action-token secret when
	// they are not configured.
	BucketKeys = "care_webpush"
)

// MaxSubscriptionsPerUser bounds one user's phones: a sixth subscription
// replaces the one seen longest ago.
const MaxSubscriptionsPerUser = 5

// receiptsAge is how long receipts are kept: long enough for the month's
// alert reviews.
const receiptsAge = 90 * 24 * time.Hour

// ErrNotFound is returned for an unknown subscription or receipt.
var ErrNotFound = errors.New("phones: not found")

// ErrInvalid wraps a subscription the API refuses (422).
var ErrInvalid = errors.New("invalid subscription")

// Subscription is one phone of one user (PushSubscription.toJSON plus who
// and how it is doing).
type Subscription struct {
	Endpoint  string    `json:"endpoint"`
	P256DH    string    `json:"p256dh"`
	Auth      string    `json:"auth"`
	UserID    string    `json:"user_id"`
	KeyID     string    `json:"key_id"` // the VAPID public key it was made for
	Locale    string    `json:"locale"`
	UserAgent string    `json:"user_agent,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// LastSeenAt is when the phone last (re)posted its subscription.
	LastSeenAt    time.Time  `json:"last_seen_at"`
	LastSuccessAt *time.Time `json:"last_success_at,omitempty"`
	LastReceiptAt *time.Time `json:"last_receipt_at,omitempty"`
	// Unconfirmed counts pushes the push service accepted since the phone
	// last confirmed one (shown, opened or acknowledged): a phone that
	// stopped showing notifications has a growing count.
	Unconfirmed         int `json:"unconfirmed"`
	ConsecutiveFailures int `json:"consecutive_failures"`
}

// Key is the subscription's KV key.
func (s Subscription) Key() string { return SubscriptionKey(s.UserID, s.Endpoint) }

// WebPush is the subscription as the Web Push protocol needs it.
func (s Subscription) WebPush() webpush.Subscription {
	return webpush.Subscription{Endpoint: s.Endpoint, P256DH: s.P256DH, Auth: s.Auth}
}

// SubscriptionKey is {user_id}.{16 hex of sha256(endpoint)}.
func SubscriptionKey(userID, endpoint string) string {
	return userID + "." + EndpointHash(endpoint)
}

// EndpointHash names a phone without its endpoint (logs, receipts): 16
// hex of sha256(endpoint).
func EndpointHash(endpoint string) string {
	h := sha256.Sum256([]byte(endpoint))
	return hex.EncodeToString(h[:8])
}

// Receipt is the delivery record of one push to one phone (console.md
// §3.4: sent, accepted by the push service, shown, opened, acknowledged).
type Receipt struct {
	AlertID    string     `json:"alert_id"`
	Seq        uint64     `json:"seq"`
	Transition string     `json:"transition"`
	UserID     string     `json:"user_id"`
	Sub        string     `json:"sub"` // endpoint hash: which of the user's phones
	SentAt     *time.Time `json:"sent_at,omitempty"`
	AcceptedAt *time.Time `json:"accepted_at,omitempty"`
	ShownAt    *time.Time `json:"shown_at,omitempty"`
	OpenedAt   *time.Time `json:"opened_at,omitempty"`
	AckedAt    *time.Time `json:"acked_at,omitempty"`
	Attempts   int        `json:"attempts"`
	Status     int        `json:"status,omitempty"` // the push service's last answer
	Outcome    string     `json:"outcome,omitempty"`
}

func receiptKey(alertID string, seq uint64, subKey string) string {
	return fmt.Sprintf("%s.%d.%s", alertID, seq, subKey)
}

// Store keeps subscriptions, receipts and used tokens in NATS KV. The
// subscriptions are also kept in memory, current through a KV watcher: a
// fan-out to 500 phones must not list the bucket 500 times.
type Store struct {
	subs, receipts, tokens, keys jetstream.KeyValue
	now                          func() time.Time

	mu     sync.RWMutex
	cache  map[string]Subscription // by key
	cancel context.CancelFunc
	done   chan struct{}
}

// OpenStore binds the buckets, creating them when missing.
func OpenStore(ctx context.Context, js jetstream.JetStream, now func() time.Time) (*Store, error) {
	if now == nil {
		now = time.Now
	}
	s := &Store{now: now}
	var err error
	if s.subs, err = bindKV(ctx, js, jetstream.KeyValueConfig{Bucket: BucketSubscriptions,
		Description: "care workers' phones (Web Push subscriptions) by user", History: 1, Storage: jetstream.FileStorage}); err != nil {
		return nil, err
	}
	if s.receipts, err = bindKV(ctx, js, jetstream.KeyValueConfig{Bucket: BucketReceipts,
		Description: "push delivery receipts by alert", History: 1, TTL: receiptsAge, Storage: jetstream.FileStorage}); err != nil {
		return nil, err
	}
	if s.tokens, err = bindKV(ctx, js, jetstream.KeyValueConfig{Bucket: BucketTokens,
		Description: "used push action tokens", History: 1, TTL: 2 * ActionTokenLifetime, Storage: jetstream.FileStorage}); err != nil {
		return nil, err
	}
	if s.keys, err = bindKV(ctx, js, jetstream.KeyValueConfig{Bucket: BucketKeys,
		Description: "VAPID keys and the action-token secret", History: 5, Storage: jetstream.FileStorage}); err != nil {
		return nil, err
	}
	if err := s.watch(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// watch loads the subscriptions and keeps the copy current until Close.
func (s *Store) watch(ctx context.Context) error {
	wctx, cancel := context.WithCancel(context.Background())
	w, err := s.subs.WatchAll(wctx)
	if err != nil {
		cancel()
		return fmt.Errorf("watch %s: %w", BucketSubscriptions, err)
	}
	s.cache, s.cancel, s.done = map[string]Subscription{}, cancel, make(chan struct{})
	ready := make(chan struct{})
	go func() {
		defer close(s.done)
		defer func() { _ = w.Stop() }()
		initial := true
		for {
			select {
			case <-wctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil {
					if initial {
						initial = false
						close(ready)
					}
					continue
				}
				s.apply(e.Key(), e.Value(), e.Operation() != jetstream.KeyValuePut)
			}
		}
	}()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		s.Close()
		return ctx.Err()
	}
}

func (s *Store) apply(key string, value []byte, deleted bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if deleted {
		delete(s.cache, key)
		return
	}
	var sub Subscription
	if json.Unmarshal(value, &sub) == nil {
		s.cache[key] = sub
	}
}

// Close stops the watcher.
func (s *Store) Close() {
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
}

// bindKV opens a bucket, creating it when it does not exist; it never
// rewrites the configuration of a bucket someone else created (as
// alerts.bindKV).
func bindKV(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, cfg.Bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("kv bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// ValidateEndpoint accepts an https push endpoint on an allowed host, or
// anything under an allowed URL prefix (tests allow their fake service's
// http://127.0.0.1:port). Without the allowlist a user could make carehub
// post to any address (SSRF).
func ValidateEndpoint(endpoint string, allowed []string) error {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || len(endpoint) > 2048 {
		return errors.New("endpoint is not an absolute URL")
	}
	for _, a := range allowed {
		if strings.Contains(a, "://") {
			if strings.HasPrefix(endpoint, strings.TrimSuffix(a, "/")+"/") {
				return nil
			}
			continue
		}
		host := u.Hostname()
		if u.Scheme == "https" && (host == a || strings.HasPrefix(a, "*.") && strings.HasSuffix(host, a[1:])) {
			return nil
		}
	}
	return fmt.Errorf("endpoint host %q is not an allowed push service (CARE_WEBPUSH_ALLOWED_ENDPOINTS)", u.Host)
}

// DefaultAllowedEndpoints are the push services of the browsers carehub
// supports (ntfy's list): FCM (Chrome, Edge, Samsung Internet), Mozilla,
// Apple and Windows.
var DefaultAllowedEndpoints = []string{
	"fcm.googleapis.com", "updates.push.services.mozilla.com", "web.push.apple.com",
	"*.push.apple.com", "*.notify.windows.com",
}

// Put stores or refreshes a subscription (an app open re-posts it),
// touching LastSeenAt and keeping CreatedAt and the counters; past
// MaxSubscriptionsPerUser the phone seen longest ago is dropped.
func (s *Store) Put(ctx context.Context, sub Subscription) (Subscription, error) {
	now := s.now().UTC()
	sub.LastSeenAt = now
	if old, err := s.Get(ctx, sub.Key()); err == nil {
		sub.CreatedAt, sub.LastSuccessAt, sub.LastReceiptAt = old.CreatedAt, old.LastSuccessAt, old.LastReceiptAt
		sub.Unconfirmed = old.Unconfirmed
	} else {
		sub.CreatedAt = now
	}
	b, _ := json.Marshal(sub)
	if _, err := s.subs.Put(ctx, sub.Key(), b); err != nil {
		return Subscription{}, err
	}
	s.apply(sub.Key(), b, false)
	mine, _ := s.ForUser(ctx, sub.UserID)
	slices.SortFunc(mine, func(a, b Subscription) int { return b.LastSeenAt.Compare(a.LastSeenAt) })
	for _, old := range mine[min(len(mine), MaxSubscriptionsPerUser):] {
		_ = s.DeleteKey(ctx, old.Key())
	}
	return sub, nil
}

// Get reads one subscription by key.
func (s *Store) Get(ctx context.Context, key string) (Subscription, error) {
	e, err := s.subs.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Subscription{}, ErrNotFound
	}
	if err != nil {
		return Subscription{}, err
	}
	var sub Subscription
	if err := json.Unmarshal(e.Value(), &sub); err != nil {
		return Subscription{}, err
	}
	return sub, nil
}

// Delete removes a user's subscription for endpoint (unsubscribe, logout,
// or the push service's 404/410).
func (s *Store) Delete(ctx context.Context, userID, endpoint string) error {
	return s.DeleteKey(ctx, SubscriptionKey(userID, endpoint))
}

// DeleteKey removes a subscription by key.
func (s *Store) DeleteKey(ctx context.Context, key string) error {
	if _, err := s.subs.Get(ctx, key); errors.Is(err, jetstream.ErrKeyNotFound) {
		return ErrNotFound
	}
	if err := s.subs.Delete(ctx, key); err != nil {
		return err
	}
	s.apply(key, nil, true)
	return nil
}

// ForUser lists one user's phones.
func (s *Store) ForUser(_ context.Context, userID string) ([]Subscription, error) {
	return s.list(userID + "."), nil
}

// All lists every phone (the staff page).
func (s *Store) All(context.Context) ([]Subscription, error) { return s.list(""), nil }

func (s *Store) list(prefix string) []Subscription {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Subscription
	for k, sub := range s.cache {
		if strings.HasPrefix(k, prefix) {
			out = append(out, sub)
		}
	}
	slices.SortFunc(out, func(a, b Subscription) int { return strings.Compare(a.Key(), b.Key()) })
	return out
}

// Update changes a subscription with compare-and-swap, retrying on a
// concurrent change; a deleted subscription stays deleted.
func (s *Store) Update(ctx context.Context, key string, change func(*Subscription)) error {
	for range 5 {
		e, err := s.subs.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		var sub Subscription
		if err := json.Unmarshal(e.Value(), &sub); err != nil {
			return err
		}
		change(&sub)
		b, _ := json.Marshal(sub)
		if _, err := s.subs.Update(ctx, key, b, e.Revision()); err == nil {
			s.apply(key, b, false)
			return nil
		} else if !errors.Is(err, jetstream.ErrKeyExists) {
			return err
		}
	}
	return errors.New("phones: subscription changed too often to update")
}

// Receipt reads one receipt.
func (s *Store) Receipt(ctx context.Context, alertID string, seq uint64, subKey string) (Receipt, uint64, error) {
	e, err := s.receipts.Get(ctx, receiptKey(alertID, seq, subKey))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Receipt{}, 0, ErrNotFound
	}
	if err != nil {
		return Receipt{}, 0, err
	}
	var r Receipt
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return Receipt{}, 0, err
	}
	return r, e.Revision(), nil
}

// UpdateReceipt creates or changes a receipt with compare-and-swap.
func (s *Store) UpdateReceipt(ctx context.Context, alertID string, seq uint64, subKey string, change func(*Receipt)) (Receipt, error) {
	key := receiptKey(alertID, seq, subKey)
	for range 5 {
		r, rev, err := s.Receipt(ctx, alertID, seq, subKey)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return Receipt{}, err
		}
		if errors.Is(err, ErrNotFound) {
			user, hash, _ := strings.Cut(subKey, ".")
			r = Receipt{AlertID: alertID, Seq: seq, UserID: user, Sub: hash}
		}
		change(&r)
		b, _ := json.Marshal(r)
		if rev == 0 {
			_, err = s.receipts.Create(ctx, key, b)
		} else {
			_, err = s.receipts.Update(ctx, key, b, rev)
		}
		if err == nil {
			return r, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return Receipt{}, err
		}
	}
	return Receipt{}, errors.New("phones: receipt changed too often to update")
}

// Receipts lists every receipt of an alert: who was reached, on which
// phone, how far (the alert page).
func (s *Store) Receipts(ctx context.Context, alertID string) ([]Receipt, error) {
	kl, err := s.receipts.ListKeysFiltered(ctx, alertID+".>")
	if err != nil {
		return nil, err
	}
	var out []Receipt
	for k := range kl.Keys() {
		e, err := s.receipts.Get(ctx, k)
		if err != nil {
			continue
		}
		var r Receipt
		if json.Unmarshal(e.Value(), &r) == nil {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b Receipt) int {
		if a.Seq != b.Seq {
			return int(a.Seq) - int(b.Seq)
		}
		return strings.Compare(a.UserID+a.Sub, b.UserID+b.Sub)
	})
	return out, nil
}

// Confirm records what the service worker reports for a push (shown,
// opened) or an acknowledgement through the push action, and resets the
// phone's unconfirmed count.
func (s *Store) Confirm(ctx context.Context, alertID string, seq uint64, subKey, event string) (Receipt, error) {
	now := s.now().UTC()
	var set func(r *Receipt)
	switch event {
	case "shown":
		set = func(r *Receipt) { r.ShownAt = &now }
	case "opened":
		set = func(r *Receipt) { r.OpenedAt = &now }
	case "acknowledged":
		set = func(r *Receipt) { r.AckedAt = &now }
	default:
		return Receipt{}, fmt.Errorf("receipt event %q: want shown, opened or acknowledged", event)
	}
	r, err := s.UpdateReceipt(ctx, alertID, seq, subKey, set)
	if err != nil {
		return r, err
	}
	_ = s.Update(ctx, subKey, func(sub *Subscription) { sub.LastReceiptAt, sub.Unconfirmed = &now, 0 })
	return r, nil
}

// DefaultStaleAfter is N of "a phone with no receipt for its last N pushes".
const DefaultStaleAfter = 3

// StalePhones lists the phones whose last n accepted pushes (n ≤ 0:
// DefaultStaleAfter) brought no receipt: the push service takes them, the
// phone does not show them (iOS after days in the background, battery
// savers). The staff page shows them before it matters.
func (s *Store) StalePhones(ctx context.Context, n int) ([]Subscription, error) {
	if n <= 0 {
		n = DefaultStaleAfter
	}
	all, err := s.All(ctx)
	if err != nil {
		return nil, err
	}
	var out []Subscription
	for _, sub := range all {
		if sub.Unconfirmed >= n {
			out = append(out, sub)
		}
	}
	return out, nil
}

// useToken marks an action token's nonce used; false when it already was.
func (s *Store) useToken(ctx context.Context, nonce string) (bool, error) {
	_, err := s.tokens.Create(ctx, nonce, []byte(s.now().UTC().Format(time.RFC3339)))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return false, nil
	}
	return err == nil, err
}

// releaseToken forgets that a nonce was used.
func (s *Store) releaseToken(ctx context.Context, nonce string) error {
	return s.tokens.Delete(ctx, nonce)
}

// Secret returns the named secret from BucketKeys, creating it with gen
// the first time; concurrent instances agree on the first one stored.
func (s *Store) Secret(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error) {
	if e, err := s.keys.Get(ctx, name); err == nil {
		return e.Value(), nil
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, err
	}
	v, err := gen()
	if err != nil {
		return nil, err
	}
	if _, err := s.keys.Create(ctx, name, v); errors.Is(err, jetstream.ErrKeyExists) {
		e, err := s.keys.Get(ctx, name)
		if err != nil {
			return nil, err
		}
		return e.Value(), nil
	} else if err != nil {
		return nil, err
	}
	return v, nil
}
