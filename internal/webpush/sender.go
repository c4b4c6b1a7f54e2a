package webpush

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Urgency values (RFC 8030 §5.3).
const (
	UrgencyHigh   = "high"
	UrgencyNormal = "normal"
	UrgencyLow    = "low"
)

// Message is one push: its plaintext and the RFC 8030 headers.
type Message struct {
	Payload []byte
	TTL     time.Duration // never 0: a phone briefly offline would miss it
	Urgency string
	Topic   string // ≤ 32 base64url characters; replaces a pending push with the same topic
}

// Outcome classifies a push service's answer (RFC 8030 §5, §7.3;
// console.md §3.4).
type Outcome int

const (
	// Delivered: 201/202, the push service has it.
	Delivered Outcome = iota
	// Gone: 404/410, the subscription expired or was unsubscribed; delete it.
	Gone
	// Retry: 429, 5xx, a timeout or a network error; try again later and
	// never delete the subscription for it.
	Retry
	// Rejected: any other 4xx (400, 403, 413, ...): our request is wrong or
	// not allowed; retrying the same request cannot help.
	Rejected
)

func (o Outcome) String() string {
	return [...]string{"delivered", "gone", "retry", "rejected"}[o]
}

// Result is what one send came to.
type Result struct {
	Outcome    Outcome
	Status     int           // HTTP status; 0 for a network error or timeout
	RetryAfter time.Duration // from Retry-After on 429/503, when given
	Err        error
}

// Subscription is what a browser's PushSubscription holds: the endpoint
// to post to, and the keys a push is encrypted for (RFC 8291 §3) as
// base64url, the form PushSubscription.toJSON gives them in.
type Subscription struct {
	Endpoint string
	P256DH   string
	Auth     string
}

// Sender sends encrypted, VAPID-signed pushes.
type Sender struct {
	VAPID  *VAPID
	Client *http.Client // with a timeout; DefaultSendTimeout when nil
}

// DefaultSendTimeout bounds one request to a push service: webpush-go's
// default client has none, and a hung push service must not hold a
// care worker's alert.
const DefaultSendTimeout = 10 * time.Second

// Send encrypts msg for sub and posts it to the subscription's endpoint.
func (s *Sender) Send(ctx context.Context, sub Subscription, msg Message) Result {
	ua, err := DecodeKey(sub.P256DH)
	if err != nil {
		return Result{Outcome: Rejected, Err: fmt.Errorf("p256dh: %w", err)}
	}
	auth, err := DecodeKey(sub.Auth)
	if err != nil {
		return Result{Outcome: Rejected, Err: fmt.Errorf("auth: %w", err)}
	}
	body, err := Encrypt(msg.Payload, ua, auth)
	if err != nil {
		return Result{Outcome: Rejected, Err: err}
	}
	authz, err := s.VAPID.Authorization(sub.Endpoint)
	if err != nil {
		return Result{Outcome: Rejected, Err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sub.Endpoint, bytes.NewReader(body))
	if err != nil {
		return Result{Outcome: Rejected, Err: err}
	}
	ttl := int(msg.TTL / time.Second)
	if ttl <= 0 {
		ttl = 60
	}
	req.Header.Set("TTL", strconv.Itoa(ttl))
	req.Header.Set("Content-Encoding", "aes128gcm")
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Authorization", authz)
	if msg.Urgency != "" {
		req.Header.Set("Urgency", msg.Urgency)
	}
	if msg.Topic != "" {
		req.Header.Set("Topic", msg.Topic)
	}
	client := s.Client
	if client == nil {
		client = &http.Client{Timeout: DefaultSendTimeout}
	}
	resp, err := client.Do(req)
	if err != nil {
		return Result{Outcome: Retry, Err: err}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return Classify(resp.StatusCode, resp.Header.Get("Retry-After"), time.Now())
}

// Classify reads a push service's answer (RFC 8030 §5, §7.3), Retry-After
// included; now is the clock an HTTP-date Retry-After is measured from.
// Other HTTP receivers with the same retry rules (a webhook) use it too.
func Classify(status int, retryAfter string, now time.Time) Result {
	r := Result{Status: status}
	switch {
	case status == http.StatusCreated || status == http.StatusAccepted || status == http.StatusOK:
		r.Outcome = Delivered
	case status == http.StatusNotFound || status == http.StatusGone:
		r.Outcome = Gone
	case status == http.StatusTooManyRequests || status >= 500:
		r.Outcome = Retry
		r.RetryAfter = parseRetryAfter(retryAfter, now)
	default:
		r.Outcome = Rejected
	}
	if r.Outcome != Delivered {
		r.Err = errors.New("push service answered " + strconv.Itoa(status))
	}
	return r
}

// parseRetryAfter reads delay-seconds or an HTTP date (RFC 9110 §10.2.3).
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
