package config

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
)

func TestWebPushSettings(t *testing.T) {
	k, _ := ecdh.P256().GenerateKey(rand.Reader)
	priv := base64.RawURLEncoding.EncodeToString(k.Bytes())
	pub := base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes())
	other, _ := ecdh.P256().GenerateKey(rand.Reader)
	otherPub := base64.RawURLEncoding.EncodeToString(other.PublicKey().Bytes())
	for _, c := range []struct {
		name string
		env  map[string]string
		want string // "" = valid
	}{
		{"off by default", nil, ""},
		{"on, complete", map[string]string{"CARE_PUBLIC_URL": "https://care.example.org", "CARE_WEBPUSH_SUBJECT": "mailto:ops@example.org",
			"CARE_WEBPUSH_VAPID_PRIVATE_KEY": priv, "CARE_WEBPUSH_VAPID_PUBLIC_KEY": pub}, ""},
		{"on, keys from KV", map[string]string{"CARE_PUBLIC_URL": "https://care.example.org", "CARE_WEBPUSH_SUBJECT": "https://example.org/contact"}, ""},
		{"loopback http for tests", map[string]string{"CARE_PUBLIC_URL": "http://127.0.0.1:8780", "CARE_WEBPUSH": "on", "CARE_WEBPUSH_SUBJECT": "mailto:a@b.c"}, ""},
		{"no public url", map[string]string{"CARE_WEBPUSH": "on", "CARE_WEBPUSH_SUBJECT": "mailto:a@b.c"}, "CARE_PUBLIC_URL is not set"},
		{"no subject", map[string]string{"CARE_WEBPUSH": "on", "CARE_PUBLIC_URL": "https://care.example.org"}, "CARE_WEBPUSH_SUBJECT is not set"},
		{"double mailto", map[string]string{"CARE_PUBLIC_URL": "https://care.example.org", "CARE_WEBPUSH_SUBJECT": "mailto:mailto:a@b.c"}, "written once"},
		{"bad subject", map[string]string{"CARE_PUBLIC_URL": "https://care.example.org", "CARE_WEBPUSH_SUBJECT": "ops@example.org"}, "mailto: or https:"},
		{"plain http", map[string]string{"CARE_PUBLIC_URL": "http://care.example.org"}, "plain http"},
		{"path", map[string]string{"CARE_PUBLIC_URL": "https://care.example.org/care"}, "not an origin"},
		{"mismatched keys", map[string]string{"CARE_PUBLIC_URL": "https://care.example.org", "CARE_WEBPUSH_SUBJECT": "mailto:a@b.c",
			"CARE_WEBPUSH_VAPID_PRIVATE_KEY": priv, "CARE_WEBPUSH_VAPID_PUBLIC_KEY": otherPub}, "does not belong"},
		{"bad key", map[string]string{"CARE_PUBLIC_URL": "https://care.example.org", "CARE_WEBPUSH_VAPID_PRIVATE_KEY": "xyz"}, "webpush keys"},
		{"bad switch", map[string]string{"CARE_WEBPUSH": "maybe"}, "use on or off"},
		{"zero ttl", map[string]string{"CARE_PUBLIC_URL": "https://care.example.org", "CARE_WEBPUSH_SUBJECT": "mailto:a@b.c", "CARE_WEBPUSH_TTL_CRITICAL": "0s"}, "CARE_WEBPUSH_TTL_CRITICAL"},
		{"negative prune days", map[string]string{"CARE_PUBLIC_URL": "https://care.example.org", "CARE_WEBPUSH_SUBJECT": "mailto:a@b.c", "CARE_WEBPUSH_PRUNE_DAYS": "-1"}, "CARE_WEBPUSH_PRUNE_DAYS"},
		{"prune days not a number", map[string]string{"CARE_PUBLIC_URL": "https://care.example.org", "CARE_WEBPUSH_SUBJECT": "mailto:a@b.c", "CARE_WEBPUSH_PRUNE_DAYS": "30d"}, "CARE_WEBPUSH_PRUNE_DAYS"},
		{"never prune", map[string]string{"CARE_PUBLIC_URL": "https://care.example.org", "CARE_WEBPUSH_SUBJECT": "mailto:a@b.c", "CARE_WEBPUSH_PRUNE_DAYS": "0"}, ""},
		{"webhook without secret", map[string]string{"CARE_NOTIFY_WEBHOOK_URL": "https://gw.example.org/hook"}, "CARE_NOTIFY_WEBHOOK_SECRET"},
	} {
		cfg, err := Load(env(c.env))
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.want)
		}
		if c.name == "on, complete" && (!cfg.WebPush.Enabled || cfg.PublicURL != "https://care.example.org" || cfg.WebPush.PruneDays != DefaultWebPushPruneDays) {
			t.Errorf("%s: %+v", c.name, cfg.WebPush)
		}
	}
}
