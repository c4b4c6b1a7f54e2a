package phones

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// b64 is unpadded base64url: a token travels in a header and a URL-safe
// JSON field.
var b64 = base64.RawURLEncoding

// ActionTokenLifetime is how long a notification's acknowledge button works
// (console.md §3.4): longer than escalation to 119 takes, far shorter
// than a 12-hour session.
const ActionTokenLifetime = 30 * time.Minute

// ActionAck is the only action a token may carry today.
const ActionAck = "ack"

// ActionReceipt tokens only confirm that a quiet push was shown.
const ActionReceipt = "receipt"

// Token errors; the API answers 401 for the first two and 409 for ErrTokenUsed.
var (
	ErrTokenInvalid = errors.New("action token invalid or for another alert or action")
	ErrTokenExpired = errors.New("action token expired")
	ErrTokenUsed    = errors.New("action token already used")
)

// TokenClaims is what an action token grants: Action on AlertID as UserID
// until Exp, once (Nonce).
type TokenClaims struct {
	AlertID string `json:"a"`
	UserID  string `json:"u"`
	Action  string `json:"x"`
	Exp     int64  `json:"e"`
	Nonce   string `json:"n"`
	// Sub is the phone it was sent to (subscription key), so the
	// acknowledgement lands on that phone's receipt; empty for webhooks.
	Sub string `json:"s,omitempty"`
	// Seq is the transition the push carried.
	Seq uint64 `json:"q,omitempty"`
}

// Tokens mints and checks action tokens: base64url(claims) "." base64url(
// HMAC-SHA-256(secret, claims)). Narrow by construction: the claims name one
// alert, one user and one action, and the nonce is spent on first use.
type Tokens struct {
	secret []byte
	store  *Store
	now    func() time.Time
}

// NewTokens uses the secret stored in BucketKeys ("action_token_secret"),
// generating it at first start, so every instance and restart agrees.
func NewTokens(ctx context.Context, store *Store, now func() time.Time) (*Tokens, error) {
	secret, err := store.Secret(ctx, "action_token_secret", func() ([]byte, error) {
		b := make([]byte, 32)
		_, err := rand.Read(b)
		return b, err
	})
	if err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	return &Tokens{secret: secret, store: store, now: now}, nil
}

// Mint issues a token for action on alertID by userID, sent to phone sub
// with transition seq.
func (t *Tokens) Mint(alertID, userID, action, sub string, seq uint64) string {
	n := make([]byte, 12)
	_, _ = rand.Read(n)
	c := TokenClaims{AlertID: alertID, UserID: userID, Action: action, Exp: t.now().Add(ActionTokenLifetime).Unix(),
		Nonce: hex.EncodeToString(n), Sub: sub, Seq: seq}
	body, _ := json.Marshal(c)
	p := b64.EncodeToString(body)
	return p + "." + b64.EncodeToString(t.mac(p))
}

func (t *Tokens) mac(p string) []byte {
	m := hmac.New(sha256.New, t.secret)
	m.Write([]byte("carehub push action v1\x00" + p))
	return m.Sum(nil)
}

// Check verifies tok for action on alertID without spending it (receipts
// use it to prove which push they confirm).
func (t *Tokens) Check(tok, alertID, action string) (TokenClaims, error) {
	p, sig, ok := strings.Cut(tok, ".")
	if !ok {
		return TokenClaims{}, ErrTokenInvalid
	}
	got, err := b64.DecodeString(sig)
	if err != nil || !hmac.Equal(got, t.mac(p)) {
		return TokenClaims{}, ErrTokenInvalid
	}
	raw, err := b64.DecodeString(p)
	if err != nil {
		return TokenClaims{}, ErrTokenInvalid
	}
	var c TokenClaims
	if err := json.Unmarshal(raw, &c); err != nil {
		return TokenClaims{}, ErrTokenInvalid
	}
	if c.AlertID != alertID || c.Action != action || c.UserID == "" || c.Nonce == "" {
		return TokenClaims{}, ErrTokenInvalid
	}
	if !t.now().Before(time.Unix(c.Exp, 0)) {
		return TokenClaims{}, ErrTokenExpired
	}
	return c, nil
}

// Use verifies tok like Check, lets authorize refuse it, and only then
// spends it: a second use is ErrTokenUsed. authorize (nil: none) is where
// the caller checks the token's recipient as they are now (still enabled,
// still assigned to the resident); its error is returned as is. A token
// refused by Check or authorize is not spent, so a token presented for
// another alert, or while its user was briefly out of scope, still works
// for its own alert and user later, until it expires.
func (t *Tokens) Use(ctx context.Context, tok, alertID, action string, authorize func(TokenClaims) error) (TokenClaims, error) {
	c, err := t.Check(tok, alertID, action)
	if err != nil {
		return c, err
	}
	if authorize != nil {
		if err := authorize(c); err != nil {
			return c, err
		}
	}
	fresh, err := t.store.useToken(ctx, c.Nonce)
	if err != nil {
		return c, err
	}
	if !fresh {
		return c, ErrTokenUsed
	}
	return c, nil
}

// Release makes a spent token usable again, for an action that failed
// after Use for a reason that may pass (a store that did not answer): the
// care worker can press the notification's button again.
func (t *Tokens) Release(ctx context.Context, c TokenClaims) error {
	return t.store.releaseToken(ctx, c.Nonce)
}

// CheckReceipt verifies a token a service worker presents with a receipt:
// the ack token of an alerting push or the receipt token of a quiet one.
// It is not spent; a receipt only records that a phone showed a push.
func (t *Tokens) CheckReceipt(tok, alertID string) (TokenClaims, error) {
	c, err := t.Check(tok, alertID, ActionAck)
	if errors.Is(err, ErrTokenInvalid) {
		c, err = t.Check(tok, alertID, ActionReceipt)
	}
	return c, err
}
