package webpush

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"
)

// b64 is the unpadded base64url of RFC 8292 §3.2 and RFC 7515 §2; browsers
// hand out p256dh and auth the same way.
var b64 = base64.RawURLEncoding

// DecodeKey reads a base64url key, padded or not (PushSubscription.toJSON
// omits padding, some tools add it).
func DecodeKey(s string) ([]byte, error) {
	return b64.DecodeString(strings.TrimRight(strings.TrimSpace(s), "="))
}

// vapidLifetime is the JWT's lifetime: RFC 8292 §2 caps exp at 24 h from
// now; 12 h leaves room for clock skew at the push service.
const vapidLifetime = 12 * time.Hour

// VAPID signs the Authorization header of push requests (RFC 8292).
type VAPID struct {
	key     *ecdsa.PrivateKey
	public  string // base64url uncompressed point: the k= parameter
	subject string // mailto: or https: contact (RFC 8292 §2.1)

	mu    sync.Mutex
	cache map[string]signedJWT // by audience (the push service's origin)
	now   func() time.Time
}

type signedJWT struct {
	token string
	exp   time.Time
}

// GenerateVAPIDKeys returns a new P-256 pair as base64url: the private
// scalar (32 bytes) and the uncompressed public point (65 bytes), the
// format of `carehub webpush keys`, web-push and webpush-go.
func GenerateVAPIDKeys() (private, public string, err error) {
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return "", "", err
	}
	return b64.EncodeToString(k.Bytes()), b64.EncodeToString(k.PublicKey().Bytes()), nil
}

// NewVAPID parses a base64url private key; public, when given, must match
// it (a mismatched pair would be refused by every push service, silently to
// the phone). subject is the mailto: or https: contact.
func NewVAPID(private, public, subject string, now func() time.Time) (*VAPID, error) {
	raw, err := DecodeKey(private)
	if err != nil {
		return nil, fmt.Errorf("VAPID private key is not base64url: %w", err)
	}
	key, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), raw)
	if err != nil {
		return nil, fmt.Errorf("VAPID private key is not a P-256 scalar: %w", err)
	}
	pub, err := key.PublicKey.Bytes()
	if err != nil {
		return nil, err
	}
	enc := b64.EncodeToString(pub)
	if public != "" {
		given, err := DecodeKey(public)
		if err != nil || b64.EncodeToString(given) != enc {
			return nil, errors.New("VAPID public key does not belong to the private key")
		}
	}
	if err := ValidSubject(subject); err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	return &VAPID{key: key, public: enc, subject: subject, cache: map[string]signedJWT{}, now: now}, nil
}

// ValidSubject checks RFC 8292 §2.1's contact: a mailto: or https: URI.
// Passed as is: unlike webpush-go, carehub never prepends "mailto:".
func ValidSubject(s string) error {
	u, err := url.Parse(s)
	if err == nil && (u.Scheme == "mailto" && u.Opaque != "" || u.Scheme == "https" && u.Host != "") {
		return nil
	}
	return fmt.Errorf("VAPID subject %q must be a mailto: or https: URI, e.g. mailto:ops@example.org", s)
}

// PublicKey is the applicationServerKey pages subscribe with.
func (v *VAPID) PublicKey() string { return v.public }

// Authorization returns the header value for a push to endpoint:
// `vapid t=<JWT>, k=<public key>` (RFC 8292 §3). The JWT is reused for the
// same push service until an hour before it expires: signing per message
// would cost an ECDSA signature per phone.
func (v *VAPID) Authorization(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("push endpoint %q is not an absolute URL", endpoint)
	}
	aud := u.Scheme + "://" + u.Host
	now := v.now()
	v.mu.Lock()
	defer v.mu.Unlock()
	if j, ok := v.cache[aud]; ok && now.Before(j.exp.Add(-time.Hour)) {
		return "vapid t=" + j.token + ", k=" + v.public, nil
	}
	exp := now.Add(vapidLifetime)
	claims, _ := json.Marshal(map[string]any{"aud": aud, "exp": exp.Unix(), "sub": v.subject})
	signing := b64.EncodeToString([]byte(`{"typ":"JWT","alg":"ES256"}`)) + "." + b64.EncodeToString(claims)
	h := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, v.key, h[:])
	if err != nil {
		return "", err
	}
	// RFC 7518 §3.4: the JWS signature is r ‖ s, each 32 bytes big-endian.
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	tok := signing + "." + b64.EncodeToString(sig)
	v.cache[aud] = signedJWT{token: tok, exp: exp}
	return "vapid t=" + tok + ", k=" + v.public, nil
}
