package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/metrics"
	"github.com/carehub/carehub/internal/notify/phones"
	"github.com/carehub/carehub/internal/webpush"
)

// Options configure the phones backend as carehub runs it (config.WebPush).
type Options struct {
	JS        jetstream.JetStream
	PublicURL string // CARE_PUBLIC_URL
	Subject   string // CARE_WEBPUSH_SUBJECT
	// VAPIDPrivateKey/PublicKey come from the configuration; unset, the
	// pair stored in the care_webpush bucket is used, generated at first
	// start and never replaced.
	VAPIDPrivateKey, VAPIDPublicKey string
	// AllowedEndpoints: DefaultAllowedEndpoints when empty.
	AllowedEndpoints []string
	// TTLCritical is the TTL of critical and high pushes (DefaultTTL's hour
	// when 0).
	TTLCritical time.Duration
	// RuleName names a rule in a phone's language for a push's title
	// (PushChannel.RuleName).
	RuleName func(locale, rule string) string
	// WebhookURL and WebhookSecret add the generic webhook channel.
	WebhookURL    string
	WebhookSecret string
	// Names and Current: see DispatcherOptions.
	Names   func(residentID string) string
	Current func(alertID string) (uint64, bool)
	// HTTPClient sends pushes and webhooks (a DefaultSendTimeout client
	// when nil).
	HTTPClient *http.Client
	Clock      func() time.Time
	Log        zerolog.Logger
	Metrics    *metrics.Registry
	// PruneAfter drops the subscription of a phone that showed no sign of
	// use for this long (phones.Subscription.LastSign); 0 never prunes.
	PruneAfter time.Duration
	// Tune adjusts the dispatcher before it is built (tests).
	Tune func(*DispatcherOptions)
}

// PruneEvery is how often Run looks for phones unseen for PruneAfter.
const PruneEvery = time.Hour

// Service is the phones backend: subscriptions, action tokens, receipts
// and the dispatcher. The API calls its methods; Run is the dispatcher.
type Service struct {
	Store      *phones.Store
	Tokens     *phones.Tokens
	VAPID      *webpush.VAPID
	Dispatcher *Dispatcher
	allowed    []string
	now        func() time.Time
	pruneAfter time.Duration
	pruned     *metrics.CounterVec
	log        zerolog.Logger
}

// New binds the buckets, loads or creates the keys and builds the channels.
func New(ctx context.Context, o Options) (*Service, error) {
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.HTTPClient == nil {
		// A fan-out sends to one push service (FCM for most phones) from
		// up to DispatcherOptions.Concurrency goroutines: keep that many
		// connections for reuse, not net/http's 2 per host, or most pushes
		// pay a new TCP and TLS handshake.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		o.HTTPClient = &http.Client{Timeout: webpush.DefaultSendTimeout, Transport: tr}
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New()
	}
	store, err := phones.OpenStore(ctx, o.JS, o.Clock)
	if err != nil {
		return nil, err
	}
	tokens, err := phones.NewTokens(ctx, store, o.Clock)
	if err != nil {
		return nil, err
	}
	priv, pub := o.VAPIDPrivateKey, o.VAPIDPublicKey
	if priv == "" {
		raw, err := store.Secret(ctx, "vapid", func() ([]byte, error) {
			pr, pu, err := webpush.GenerateVAPIDKeys()
			if err != nil {
				return nil, err
			}
			return json.Marshal(map[string]string{"private": pr, "public": pu})
		})
		if err != nil {
			return nil, fmt.Errorf("VAPID keys: %w", err)
		}
		var k map[string]string
		if err := json.Unmarshal(raw, &k); err != nil {
			return nil, fmt.Errorf("VAPID keys in %s: %w", phones.BucketKeys, err)
		}
		priv, pub = k["private"], k["public"]
	}
	vapid, err := webpush.NewVAPID(priv, pub, o.Subject, o.Clock)
	if err != nil {
		store.Close()
		return nil, err
	}
	ttl := DefaultTTL
	if o.TTLCritical > 0 {
		ttl = func(sev string) time.Duration {
			if sev == "critical" || sev == "high" {
				return o.TTLCritical
			}
			return DefaultTTL(sev)
		}
	}
	log := o.Log.With().Str("component", "webpush").Logger()
	channels := []Channel{&PushChannel{Store: store, Sender: &webpush.Sender{VAPID: vapid, Client: o.HTTPClient}, Tokens: tokens,
		TTL: ttl, Log: log, Metrics: o.Metrics, RuleName: o.RuleName}}
	if o.WebhookURL != "" {
		channels = append(channels, &Webhook{URL: o.WebhookURL, Secret: []byte(o.WebhookSecret), Client: o.HTTPClient, Now: o.Clock})
	}
	do := DispatcherOptions{JS: o.JS, Channels: channels, Names: o.Names, Current: o.Current, PublicURL: o.PublicURL,
		Tokens: tokens, TTL: ttl, Clock: o.Clock, Log: log, Metrics: o.Metrics}
	if o.Tune != nil {
		o.Tune(&do)
	}
	d, err := NewDispatcher(do)
	if err != nil {
		return nil, err
	}
	allowed := o.AllowedEndpoints
	if len(allowed) == 0 {
		allowed = phones.DefaultAllowedEndpoints
	}
	log.Info().Str("vapid_public_key", vapid.PublicKey()).Int("channels", len(channels)).Msg("phones backend ready")
	return &Service{Store: store, Tokens: tokens, VAPID: vapid, Dispatcher: d, allowed: allowed, now: o.Clock,
		pruneAfter: o.PruneAfter, log: log,
		pruned: o.Metrics.Counter("carehub_push_subscriptions_pruned_total", "Phones whose subscription was dropped after CARE_WEBPUSH_PRUNE_DAYS without a sign of use.")}, nil
}

// Run dispatches alert transitions and prunes unseen phones (at start,
// then every PruneEvery) until ctx ends, then stops the subscription
// watcher.
func (s *Service) Run(ctx context.Context) error {
	defer s.Store.Close()
	pctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(PruneEvery)
		defer t.Stop()
		for {
			s.Prune(pctx)
			select {
			case <-pctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	defer func() { stop(); <-done }()
	return s.Dispatcher.Run(ctx)
}

// Prune drops the subscriptions of phones unseen for PruneAfter, logs
// each (user and endpoint hash, never the endpoint) and counts them.
func (s *Service) Prune(ctx context.Context) {
	if s.pruneAfter <= 0 {
		return
	}
	gone, err := s.Store.Prune(ctx, s.pruneAfter)
	for _, sub := range gone {
		s.pruned.With().Inc()
		s.log.Info().Str("user_id", sub.UserID).Str("sub", phones.EndpointHash(sub.Endpoint)).Time("last_sign", sub.LastSign()).
			Msg("phone unseen for CARE_WEBPUSH_PRUNE_DAYS; subscription pruned")
	}
	if err != nil && ctx.Err() == nil {
		s.log.Warn().Err(err).Msg("pruning unseen phones")
	}
}

// PublicKey is the applicationServerKey for pushManager.subscribe.
func (s *Service) PublicKey() string { return s.VAPID.PublicKey() }

// Subscribe stores a phone for userID after checking the endpoint and keys.
func (s *Service) Subscribe(ctx context.Context, userID string, sub phones.Subscription) (phones.Subscription, error) {
	if err := phones.ValidateEndpoint(sub.Endpoint, s.allowed); err != nil {
		return phones.Subscription{}, fmt.Errorf("%w: %v", phones.ErrInvalid, err)
	}
	p, err := webpush.DecodeKey(sub.P256DH)
	if err != nil || len(p) != 65 || p[0] != 4 {
		return phones.Subscription{}, fmt.Errorf("%w: keys.p256dh must be the base64url uncompressed P-256 key", phones.ErrInvalid)
	}
	if a, err := webpush.DecodeKey(sub.Auth); err != nil || len(a) != 16 {
		return phones.Subscription{}, fmt.Errorf("%w: keys.auth must be the base64url 16-byte secret", phones.ErrInvalid)
	}
	if sub.Locale != "en" {
		sub.Locale = "ko"
	}
	if len(sub.UserAgent) > 256 {
		sub.UserAgent = sub.UserAgent[:256]
	}
	sub.UserID, sub.KeyID = userID, s.PublicKey()[:16]
	sub.Endpoint = strings.TrimSpace(sub.Endpoint)
	return s.Store.Put(ctx, sub)
}

// Unsubscribe removes one of userID's phones.
func (s *Service) Unsubscribe(ctx context.Context, userID, endpoint string) error {
	return s.Store.Delete(ctx, userID, endpoint)
}

// Phones lists userID's phones.
func (s *Service) Phones(ctx context.Context, userID string) ([]phones.Subscription, error) {
	return s.Store.ForUser(ctx, userID)
}

// UseActionToken spends an ack token for alertID once authorize accepts
// its claims (see phones.Tokens.Use).
func (s *Service) UseActionToken(ctx context.Context, token, alertID string, authorize func(phones.TokenClaims) error) (phones.TokenClaims, error) {
	return s.Tokens.Use(ctx, token, alertID, phones.ActionAck, authorize)
}

// ReleaseActionToken makes a spent token usable again after its action
// failed for a reason that may pass.
func (s *Service) ReleaseActionToken(ctx context.Context, c phones.TokenClaims) error {
	return s.Tokens.Release(ctx, c)
}

// CheckReceiptToken verifies the token a service worker sends with a receipt.
func (s *Service) CheckReceiptToken(token, alertID string) (phones.TokenClaims, error) {
	return s.Tokens.CheckReceipt(token, alertID)
}

// Confirm records a receipt event (shown, opened, acknowledged).
func (s *Service) Confirm(ctx context.Context, alertID string, seq uint64, subKey, event string) (phones.Receipt, error) {
	return s.Store.Confirm(ctx, alertID, seq, subKey, event)
}

// Receipts lists who was reached for an alert.
func (s *Service) Receipts(ctx context.Context, alertID string) ([]phones.Receipt, error) {
	return s.Store.Receipts(ctx, alertID)
}

// StalePhones lists phones without a receipt for their last n pushes.
func (s *Service) StalePhones(ctx context.Context, n int) ([]phones.Subscription, error) {
	return s.Store.StalePhones(ctx, n)
}
