package config

import (
	"crypto/ecdh"
	"encoding/base64"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// DefaultWebPushTTLCritical is how long a push service keeps a critical or
// high alert for a phone that is offline (console.md §3.4): by then the
// alert has escalated far past that phone.
const DefaultWebPushTTLCritical = time.Hour

// DefaultWebPushPruneDays is how many days a phone may show no sign of use
// (no app open, no receipt) before its subscription is dropped.
const DefaultWebPushPruneDays = 60

// WebPush configures notifications to care workers' phones (docs/push.md).
type WebPush struct {
	// Enabled is CARE_WEBPUSH=on|off; unset, push is on when a subject or
	// a VAPID key is configured.
	Enabled bool
	// Subject is the VAPID contact (RFC 8292 §2.1): mailto: or https:.
	Subject string
	// VAPIDPublicKey and VAPIDPrivateKey are base64url (`carehub webpush
	// keys`); unset, carehub keeps a generated pair in NATS KV.
	VAPIDPublicKey  string
	VAPIDPrivateKey string
	// AllowedEndpoints are the push services subscriptions may point at:
	// host names (*.example.org allowed) for https, or full URL prefixes.
	// Empty = the browsers' push services.
	AllowedEndpoints []string
	// TTLCritical is the push TTL of critical and high alerts.
	TTLCritical time.Duration
	// PruneDays drops a phone unseen for that many days; 0 never does.
	PruneDays int
	// WebhookURL, when set, adds the generic webhook channel (an SMS or
	// messenger gateway); WebhookSecret signs its requests.
	WebhookURL    string
	WebhookSecret string
}

// loadWebPush reads CARE_PUBLIC_URL and the CARE_WEBPUSH_* settings.
func (p *parser) loadWebPush(c *Config) {
	c.PublicURL = strings.TrimSuffix(p.str("CARE_PUBLIC_URL", ""), "/")
	w := WebPush{
		Subject:         p.str("CARE_WEBPUSH_SUBJECT", ""),
		VAPIDPublicKey:  p.str("CARE_WEBPUSH_VAPID_PUBLIC_KEY", ""),
		VAPIDPrivateKey: p.secret("CARE_WEBPUSH_VAPID_PRIVATE_KEY"),
		TTLCritical:     p.duration("CARE_WEBPUSH_TTL_CRITICAL", DefaultWebPushTTLCritical),
		PruneDays:       p.int("CARE_WEBPUSH_PRUNE_DAYS", DefaultWebPushPruneDays),
		WebhookURL:      p.str("CARE_NOTIFY_WEBHOOK_URL", ""),
		WebhookSecret:   p.secret("CARE_NOTIFY_WEBHOOK_SECRET"),
	}
	for _, e := range strings.Split(p.str("CARE_WEBPUSH_ALLOWED_ENDPOINTS", ""), ",") {
		if e = strings.TrimSpace(e); e != "" {
			w.AllowedEndpoints = append(w.AllowedEndpoints, e)
		}
	}
	switch v := strings.ToLower(p.str("CARE_WEBPUSH", "")); v {
	case "":
		w.Enabled = w.Subject != "" || w.VAPIDPrivateKey != ""
	case "on", "true", "1", "yes":
		w.Enabled = true
	case "off", "false", "0", "no":
	default:
		p.fail("CARE_WEBPUSH=%q: use on or off", v)
	}
	c.WebPush = w
}

// validateWebPush explains how to fix each push setting.
func (c Config) validateWebPush() []error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.Path != "" || u.RawQuery != "":
			fail("CARE_PUBLIC_URL=%q is not an origin: write it like https://care.example.org (no path)", c.PublicURL)
		case u.Scheme == "http" && !loopbackHost(u.Hostname()):
			fail("CARE_PUBLIC_URL=%q is plain http: phones allow service workers and push only on https (or on 127.0.0.1/localhost for a test); put carehub behind TLS", c.PublicURL)
		}
	}
	w := c.WebPush
	if w.WebhookURL != "" {
		if u, err := url.Parse(w.WebhookURL); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			fail("CARE_NOTIFY_WEBHOOK_URL=%q is not an http(s) URL", w.WebhookURL)
		}
		if len(w.WebhookSecret) < 16 {
			fail("CARE_NOTIFY_WEBHOOK_SECRET (or _FILE) must be set, at least 16 characters: the gateway checks carehub's signature with it")
		}
	}
	if !w.Enabled {
		return errs
	}
	if c.PublicURL == "" {
		fail("Web Push is on but CARE_PUBLIC_URL is not set: set it to the https origin the care workers' phones open (e.g. https://care.example.org), or CARE_WEBPUSH=off")
	}
	if w.Subject == "" {
		fail("Web Push is on but CARE_WEBPUSH_SUBJECT is not set: set a contact for the push services, mailto:ops@example.org or https://example.org/contact (RFC 8292), or CARE_WEBPUSH=off")
	} else if u, err := url.Parse(w.Subject); err != nil || !(u.Scheme == "mailto" && u.Opaque != "" && !strings.HasPrefix(u.Opaque, "mailto:") || u.Scheme == "https" && u.Host != "") {
		fail("CARE_WEBPUSH_SUBJECT=%q must be a mailto: or https: URI, written once (mailto:ops@example.org)", w.Subject)
	}
	if w.VAPIDPrivateKey != "" || w.VAPIDPublicKey != "" {
		if err := checkVAPIDPair(w.VAPIDPrivateKey, w.VAPIDPublicKey); err != nil {
			fail("CARE_WEBPUSH_VAPID_PRIVATE_KEY/_PUBLIC_KEY: %v: generate a pair with `carehub webpush keys` and set both (the private one may come from _FILE)", err)
		}
	}
	if w.TTLCritical <= 0 || w.TTLCritical > 24*time.Hour {
		fail("CARE_WEBPUSH_TTL_CRITICAL=%s: use a duration between 1s and 24h (0 makes a push service drop pushes to an offline phone)", w.TTLCritical)
	}
	if w.PruneDays < 0 || w.PruneDays > 3650 {
		fail("CARE_WEBPUSH_PRUNE_DAYS=%d: use a number of days from 1 to 3650, or 0 to never drop unseen phones", w.PruneDays)
	}
	return errs
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// checkVAPIDPair checks a base64url P-256 private scalar and, when given,
// that the public key belongs to it.
func checkVAPIDPair(private, public string) error {
	if private == "" {
		return fmt.Errorf("the public key is set without the private key")
	}
	dec := func(s string) ([]byte, error) {
		return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	}
	raw, err := dec(private)
	if err != nil {
		return fmt.Errorf("the private key is not base64url")
	}
	k, err := ecdh.P256().NewPrivateKey(raw)
	if err != nil {
		return fmt.Errorf("the private key is not a P-256 key")
	}
	if public != "" {
		pub, err := dec(public)
		if err != nil || string(pub) != string(k.PublicKey().Bytes()) {
			return fmt.Errorf("the public key does not belong to the private key")
		}
	}
	return nil
}
