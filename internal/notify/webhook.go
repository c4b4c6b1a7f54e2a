package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/carehub/carehub/internal/webpush"
)

// Webhook is a generic channel: each notification is POSTed as JSON to URL
// (an SMS or messenger gateway, as Korean care services use, or anything
// else), signed so the receiver can tell carehub sent it.
//
// Headers: X-Carehub-Timestamp (unix seconds), X-Carehub-Signature
// ("sha256=" hex HMAC-SHA-256 of timestamp "." body with Secret), and
// Idempotency-Key ({msg_id}:{user_id}): the same notification retried keeps
// its key, so the receiver can drop a duplicate.
type Webhook struct {
	URL    string
	Secret []byte
	Client *http.Client // DefaultSendTimeout when nil
	Now    func() time.Time
}

// Name implements Channel.
func (w *Webhook) Name() string { return "webhook" }

// Send implements Channel: 2xx delivered; 429, 5xx and network errors
// retried; other answers are not.
func (w *Webhook) Send(ctx context.Context, n Notification) error {
	body, err := json.Marshal(n)
	if err != nil {
		return err
	}
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	ts := strconv.FormatInt(now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Carehub-Timestamp", ts)
	req.Header.Set("X-Carehub-Signature", "sha256="+SignWebhook(w.Secret, ts, body))
	req.Header.Set("Idempotency-Key", n.MsgID+":"+n.UserID)
	client := w.Client
	if client == nil {
		client = &http.Client{Timeout: webpush.DefaultSendTimeout}
	}
	resp, err := client.Do(req)
	if err != nil {
		return &RetryError{Err: err}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	r := webpush.Classify(resp.StatusCode, resp.Header.Get("Retry-After"), now())
	switch r.Outcome {
	case webpush.Delivered:
		return nil
	case webpush.Retry:
		return &RetryError{After: r.RetryAfter, Err: r.Err}
	default:
		return fmt.Errorf("webhook: %w", r.Err)
	}
}

// SignWebhook is the hex HMAC-SHA-256 of timestamp "." body.
func SignWebhook(secret []byte, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte("."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// VerifyWebhook is the receiver's check (for gateways written in Go and
// for tests): the signature matches and the timestamp is within skew.
func VerifyWebhook(secret []byte, timestamp, signature string, body []byte, now time.Time, skew time.Duration) error {
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return errors.New("bad timestamp")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > skew || d < -skew {
		return errors.New("timestamp outside the allowed skew")
	}
	want := "sha256=" + SignWebhook(secret, timestamp, body)
	if !hmac.Equal([]byte(want), []byte(signature)) {
		return errors.New("signature does not match")
	}
	return nil
}
