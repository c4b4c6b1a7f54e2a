// Package webpushtest is a fake push service for tests: an httptest server
// that checks each request's VAPID signature (RFC 8292) and decrypts its
// body with the subscriber's keys (RFC 8291), answering as scripted, so the
// whole Web Push path is tested without the internet (console.md §3.5).
package webpushtest

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
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/carehub/carehub/internal/webpush"
)

var b64 = base64.RawURLEncoding

// Subscriber is the browser's side of one subscription: its keys and the
// endpoint the fake service gave it.
type Subscriber struct {
	Endpoint string
	Key      *ecdh.PrivateKey
	Auth     []byte
}

// P256DH and AuthSecret are the keys as PushSubscription.toJSON gives them.
func (s *Subscriber) P256DH() string     { return b64.EncodeToString(s.Key.PublicKey().Bytes()) }
func (s *Subscriber) AuthSecret() string { return b64.EncodeToString(s.Auth) }

// Push is one request the service received and could read.
type Push struct {
	Subscriber *Subscriber
	Headers    http.Header
	Payload    []byte // decrypted
	Status     int    // what the service answered
	At         time.Time
}

// Answer scripts the service's reply: Status (0 = 201), Retry-After, and
// Hang to stall until the client gives up.
type Answer struct {
	Status     int
	RetryAfter string
	Hang       bool
	// Delay holds the answer back, as a slow push service would.
	Delay time.Duration
}

// Service is the fake push service.
type Service struct {
	*httptest.Server
	// Observe, when set before the first push, is called with every
	// accepted push as it arrives (carebench times pushes with it).
	Observe func(Push)

	mu       sync.Mutex
	subs     map[string]*Subscriber // by path
	scripts  map[string][]Answer    // by path: answers to give, in order
	received []Push
	attempts map[string]int // by path: every request, readable or not
	errs     []error
	n        int
	notify   chan struct{}
}

// NewService starts the fake service; it stops with the test.
func NewService(t testing.TB) *Service {
	s := Start()
	t.Cleanup(s.Close)
	return s
}

// Start starts the fake service outside a test (carebench); Close stops it.
func Start() *Service {
	s := &Service{subs: map[string]*Subscriber{}, scripts: map[string][]Answer{}, attempts: map[string]int{}, notify: make(chan struct{}, 1)}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// NewSubscriber is a browser subscribing: fresh P-256 keys, a 16-byte auth
// secret and an endpoint on this service.
func (s *Service) NewSubscriber() *Subscriber {
	key, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		panic(err) // crypto/rand does not fail (Go 1.24)
	}
	auth := make([]byte, 16)
	_, _ = rand.Read(auth)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	path := "/s/" + strconv.Itoa(s.n)
	sub := &Subscriber{Endpoint: s.URL + path, Key: key, Auth: auth}
	s.subs[path] = sub
	return sub
}

// Script queues answers for a subscriber's next requests; once used up the
// service answers 201.
func (s *Service) Script(sub *Subscriber, answers ...Answer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := pathOf(sub.Endpoint)
	s.scripts[p] = append(s.scripts[p], answers...)
}

// Received returns the accepted (2xx) pushes so far.
func (s *Service) Received() []Push {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Push
	for _, p := range s.received {
		if p.Status/100 == 2 {
			out = append(out, p)
		}
	}
	return out
}

// ReceivedBy returns the accepted pushes to one subscriber.
func (s *Service) ReceivedBy(sub *Subscriber) []Push {
	var out []Push
	for _, p := range s.Received() {
		if p.Subscriber == sub {
			out = append(out, p)
		}
	}
	return out
}

// Attempts counts every request to sub's endpoint, whatever the answer.
func (s *Service) Attempts(sub *Subscriber) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts[pathOf(sub.Endpoint)]
}

// Errors are protocol violations seen (bad signature, undecryptable body):
// a test should end with none.
func (s *Service) Errors() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.errs...)
}

func pathOf(endpoint string) string {
	if i := strings.Index(endpoint, "/s/"); i >= 0 {
		return endpoint[i:]
	}
	return endpoint
}

func (s *Service) fail(w http.ResponseWriter, err error) {
	s.mu.Lock()
	s.errs = append(s.errs, err)
	s.mu.Unlock()
	http.Error(w, err.Error(), http.StatusBadRequest)
}

func (s *Service) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	sub := s.subs[r.URL.Path]
	s.attempts[r.URL.Path]++
	var ans Answer
	if q := s.scripts[r.URL.Path]; len(q) > 0 {
		ans, s.scripts[r.URL.Path] = q[0], q[1:]
	}
	s.mu.Unlock()
	if r.Method != http.MethodPost || sub == nil {
		http.NotFound(w, r)
		return
	}
	if ans.Hang {
		<-r.Context().Done()
		return
	}
	// RFC 8030 §5.2: TTL is required; RFC 8291 §4: aes128gcm.
	if _, err := strconv.Atoi(r.Header.Get("TTL")); err != nil {
		s.fail(w, errors.New("missing or bad TTL header"))
		return
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "aes128gcm" {
		s.fail(w, fmt.Errorf("Content-Encoding %q, want aes128gcm", ce))
		return
	}
	if err := VerifyVAPID(r.Header.Get("Authorization"), s.URL, time.Now()); err != nil {
		s.fail(w, err)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		s.fail(w, err)
		return
	}
	pt, err := webpush.Decrypt(body, sub.Key, sub.Auth)
	if err != nil {
		s.fail(w, fmt.Errorf("decrypt: %w", err))
		return
	}
	if ans.Delay > 0 {
		select {
		case <-time.After(ans.Delay):
		case <-r.Context().Done():
			return
		}
	}
	status := ans.Status
	if status == 0 {
		status = http.StatusCreated
	}
	p := Push{Subscriber: sub, Headers: r.Header.Clone(), Payload: pt, Status: status, At: time.Now()}
	s.mu.Lock()
	s.received = append(s.received, p)
	s.mu.Unlock()
	if s.Observe != nil && status/100 == 2 {
		s.Observe(p)
	}
	select {
	case s.notify <- struct{}{}:
	default:
	}
	if ans.RetryAfter != "" {
		w.Header().Set("Retry-After", ans.RetryAfter)
	}
	w.WriteHeader(status)
}

// VerifyVAPID checks an Authorization header against RFC 8292: the
// `vapid t=, k=` form, the ES256 signature with key k, aud = the push
// service's origin, exp within (now, now+24h], and a mailto:/https: sub.
func VerifyVAPID(header, origin string, now time.Time) error {
	rest, ok := strings.CutPrefix(header, "vapid ")
	if !ok {
		return fmt.Errorf("authorization %q is not the vapid scheme", header)
	}
	var tok, k string
	for _, part := range strings.Split(rest, ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch name {
		case "t":
			tok = val
		case "k":
			k = val
		}
	}
	if tok == "" || k == "" {
		return errors.New("vapid header lacks t= or k=")
	}
	pubRaw, err := b64.DecodeString(k)
	if err != nil {
		return fmt.Errorf("k: %w", err)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), pubRaw)
	if err != nil {
		return fmt.Errorf("k is not a P-256 point: %w", err)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return errors.New("JWT is not three parts")
	}
	var hdr struct{ Alg, Typ string }
	if raw, err := b64.DecodeString(parts[0]); err != nil || json.Unmarshal(raw, &hdr) != nil || hdr.Alg != "ES256" {
		return errors.New("JWT header is not ES256")
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return errors.New("JWT signature is not 64 bytes r||s")
	}
	h := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(pub, h[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return errors.New("JWT signature does not verify with k")
	}
	var c struct {
		Aud string `json:"aud"`
		Exp int64  `json:"exp"`
		Sub string `json:"sub"`
	}
	raw, err := b64.DecodeString(parts[1])
	if err != nil || json.Unmarshal(raw, &c) != nil {
		return errors.New("JWT claims unreadable")
	}
	if c.Aud != origin {
		return fmt.Errorf("aud %q, want %q", c.Aud, origin)
	}
	exp := time.Unix(c.Exp, 0)
	if !exp.After(now) || exp.After(now.Add(24*time.Hour)) {
		return fmt.Errorf("exp %v not within 24 h of now (RFC 8292 §2)", exp)
	}
	if !strings.HasPrefix(c.Sub, "mailto:") && !strings.HasPrefix(c.Sub, "https:") || strings.HasPrefix(c.Sub, "mailto:mailto:") {
		return fmt.Errorf("sub %q is not a mailto: or https: contact", c.Sub)
	}
	return nil
}
