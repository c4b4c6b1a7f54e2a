package notify

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/metrics"
	"github.com/carehub/carehub/internal/notify/phones"
	"github.com/carehub/carehub/internal/webpush"
)

// PushChannel delivers a notification to every phone the recipient
// subscribed, each at most once per transition: a phone whose receipt says
// the push service accepted this transition is skipped when the transition
// is redelivered after a restart or a retry.
type PushChannel struct {
	Store  *phones.Store
	Sender *webpush.Sender
	Tokens *phones.Tokens // nil: no acknowledge action in the payload
	Log    zerolog.Logger
	// TTL per severity; DefaultTTL when nil.
	TTL func(severity string) time.Duration
	// Attempts per phone before the transition is handed back to the
	// dispatcher for a later retry (default 3), waiting Backoff(attempt)
	// in between (default 250 ms, 1 s) or the push service's Retry-After.
	Attempts int
	Backoff  func(attempt int) time.Duration
	// MaxInlineWait: a longer Retry-After is not waited for in place but
	// handed back to the dispatcher (default 5 s).
	MaxInlineWait time.Duration
	// Concurrency bounds the sends for one recipient's phones (default 4).
	Concurrency int
	// RuleName names a rule in the phone's language for the title (the
	// console's catalogue); nil shows the rule id. The title says what
	// kind of alert it is, never a value or a full name: it shows on a
	// lock screen.
	RuleName func(locale, rule string) string

	once    sync.Once
	results *metrics.CounterVec
	Metrics *metrics.Registry
}

// Name implements Channel.
func (p *PushChannel) Name() string { return "webpush" }

func (p *PushChannel) setup() {
	if p.Attempts <= 0 {
		p.Attempts = 3
	}
	if p.Backoff == nil {
		p.Backoff = func(a int) time.Duration { return 250 * time.Millisecond << (2 * a) }
	}
	if p.MaxInlineWait <= 0 {
		p.MaxInlineWait = 5 * time.Second
	}
	if p.Concurrency <= 0 {
		p.Concurrency = 4
	}
	if p.TTL == nil {
		p.TTL = DefaultTTL
	}
	if p.Metrics == nil {
		p.Metrics = metrics.New()
	}
	p.results = p.Metrics.Counter("carehub_push_sends_total", "Web Push requests by outcome: delivered, gone, retry, rejected.", "outcome")
}

// DefaultTTL is how long a push service keeps a push for an offline phone
// (console.md §3.4): an hour for critical and high (by then the alert has
// escalated far past this phone), six hours for warnings, a day for info.
// Never 0, which drops the push when the phone is not connected.
func DefaultTTL(severity string) time.Duration {
	switch severity {
	case "critical", "high":
		return time.Hour
	case "warning":
		return 6 * time.Hour
	}
	return 24 * time.Hour
}

// urgency is RFC 8030 §5.3's Urgency: high wakes a phone in Doze within
// seconds; replacements of a handled alert need not.
func urgency(n Notification) string {
	switch {
	case n.Quiet:
		return webpush.UrgencyNormal
	case n.Severity == "info":
		return webpush.UrgencyLow
	}
	return webpush.UrgencyHigh
}

var topicRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// topic makes the alert id a Topic (RFC 8030 §5.4: ≤ 32 base64url
// characters), so the push service keeps only an alert's latest state for
// an offline phone.
func topic(alertID string) string {
	if topicRE.MatchString(alertID) {
		return alertID
	}
	h := sha256.Sum256([]byte(alertID))
	return base64.RawURLEncoding.EncodeToString(h[:24])
}

// MaxConsecutiveForbidden is how many 403 answers in a row, with no
// success between, make a subscription count as dead (console.md §3.4).
const MaxConsecutiveForbidden = 10

// Payload is what the service worker receives (console.md §3.4).
type Payload struct {
	V               int       `json:"v"`
	Type            string    `json:"type"`
	AlertID         string    `json:"alert_id"`
	Seq             uint64    `json:"seq"`
	Severity        string    `json:"severity"`
	Transition      string    `json:"transition"`
	EscalationLevel int       `json:"escalation_level"`
	Rule            string    `json:"rule"`
	Resident        string    `json:"resident"` // masked
	Title           string    `json:"title"`
	Body            string    `json:"body"`
	Tag             string    `json:"tag"`
	Silent          bool      `json:"silent"`
	URL             string    `json:"url"`
	AckURL          string    `json:"ack_url,omitempty"`
	ActionToken     string    `json:"action_token,omitempty"`
	ReceiptURL      string    `json:"receipt_url"`
	RaisedAt        time.Time `json:"raised_at"`
}

// Send implements Channel.
func (p *PushChannel) Send(ctx context.Context, n Notification) error {
	p.once.Do(p.setup)
	subs, err := p.Store.ForUser(context.WithoutCancel(ctx), n.UserID)
	if err != nil {
		return &RetryError{Err: err}
	}
	var (
		mu    sync.Mutex
		retry *RetryError
		wg    sync.WaitGroup
		sem   = make(chan struct{}, p.Concurrency)
	)
	for _, sub := range subs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := p.sendOne(ctx, n, sub); err != nil {
				var re *RetryError
				if errors.As(err, &re) {
					mu.Lock()
					if retry == nil || re.After > retry.After {
						retry = re
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if retry != nil {
		return retry
	}
	return nil
}

// sendOne pushes n to one phone, retrying in place a few times. Once ctx
// ends it starts nothing new, but a request already sent is let finish:
// its answer must be recorded, or a restart would push the phone twice.
func (p *PushChannel) sendOne(ctx context.Context, n Notification, sub phones.Subscription) error {
	bg := context.WithoutCancel(ctx)
	key := sub.Key()
	if r, _, err := p.Store.Receipt(bg, n.AlertID, n.Seq, key); err == nil && (r.AcceptedAt != nil || r.Outcome == webpush.Gone.String() || r.Outcome == webpush.Rejected.String()) {
		return nil // settled before a restart or retry: delivered, gone or refused for good
	}
	title, body := render(n, sub.Locale, p.RuleName)
	pl := Payload{V: 1, Type: "alert", AlertID: n.AlertID, Seq: n.Seq, Severity: n.Severity, Transition: n.Transition,
		EscalationLevel: n.EscalationLevel, Rule: n.Rule, Resident: n.ResidentMasked, Title: title, Body: body,
		Tag: n.AlertID, Silent: n.Quiet, URL: n.URL, RaisedAt: n.RaisedAt, ReceiptURL: ReceiptPath}
	if p.Tokens != nil && !n.Quiet {
		pl.AckURL = n.AckURL
		pl.ActionToken = p.Tokens.Mint(n.AlertID, n.UserID, phones.ActionAck, key, n.Seq)
	} else if p.Tokens != nil {
		// A quiet replacement has no button, but its receipt still
		// needs a token to prove which push it confirms.
		pl.ActionToken = p.Tokens.Mint(n.AlertID, n.UserID, phones.ActionReceipt, key, n.Seq)
	}
	raw, _ := json.Marshal(pl)
	msg := webpush.Message{Payload: raw, TTL: p.TTL(n.Severity), Urgency: urgency(n), Topic: topic(n.AlertID)}
	for attempt := 0; ; attempt++ {
		if ctx.Err() != nil {
			return &RetryError{Err: ctx.Err()}
		}
		sent := time.Now().UTC()
		res := p.Sender.Send(bg, sub.WebPush(), msg)
		p.results.With(res.Outcome.String()).Inc()
		done := time.Now().UTC()
		// One receipt write per attempt, after the answer: sent, how it
		// went, and for a delivery when the push service took it.
		mark := func(r *phones.Receipt) {
			r.Transition = n.Transition
			if r.SentAt == nil {
				r.SentAt = &sent
			}
			r.Attempts++
			r.Status, r.Outcome = res.Status, res.Outcome.String()
		}
		switch res.Outcome {
		case webpush.Delivered:
			_, _ = p.Store.UpdateReceipt(bg, n.AlertID, n.Seq, key, func(r *phones.Receipt) { mark(r); r.AcceptedAt = &done })
			_ = p.Store.Update(bg, key, func(s *phones.Subscription) {
				s.LastSuccessAt, s.ConsecutiveFailures = &done, 0
				s.Unconfirmed++
			})
			return nil
		case webpush.Gone:
			// RFC 8030 §7.3: the subscription is gone for good.
			_, _ = p.Store.UpdateReceipt(bg, n.AlertID, n.Seq, key, mark)
			_ = p.Store.DeleteKey(bg, key)
			p.Log.Info().Str("user_id", n.UserID).Str("sub", phones.EndpointHash(sub.Endpoint)).Int("status", res.Status).Msg("phone unsubscribed; subscription deleted")
			return nil
		case webpush.Rejected:
			_, _ = p.Store.UpdateReceipt(bg, n.AlertID, n.Seq, key, mark)
			failures := 0
			_ = p.Store.Update(bg, key, func(s *phones.Subscription) { s.ConsecutiveFailures++; failures = s.ConsecutiveFailures })
			if res.Status == http.StatusForbidden && failures >= MaxConsecutiveForbidden {
				// Apple answers 403 for some dead subscriptions; our own
				// VAPID mistake would fail every phone at once, and is
				// logged long before this.
				_ = p.Store.DeleteKey(bg, key)
			}
			p.Log.Warn().Str("user_id", n.UserID).Str("sub", phones.EndpointHash(sub.Endpoint)).Int("status", res.Status).Err(res.Err).Msg("push rejected; not retried")
			return res.Err
		}
		_, _ = p.Store.UpdateReceipt(bg, n.AlertID, n.Seq, key, mark)
		wait := res.RetryAfter
		if wait <= 0 {
			wait = p.Backoff(attempt)
		}
		if attempt+1 >= p.Attempts || wait > p.MaxInlineWait {
			return &RetryError{After: wait, Err: res.Err}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return &RetryError{Err: ctx.Err()}
		case <-t.C:
		}
	}
}
