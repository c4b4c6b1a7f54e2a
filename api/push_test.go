package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/api"
	"github.com/carehub/carehub/internal/notify"
	"github.com/carehub/carehub/internal/notify/phones"
	"github.com/carehub/carehub/internal/webpush/webpushtest"
)

// lazyPush lets the harness's server use a notify.Service built on the
// harness's own NATS after the server exists.
type lazyPush struct{ *notify.Service }

func pushHarness(t *testing.T) (*harness, *notify.Service, *webpushtest.Service) {
	t.Helper()
	lp := &lazyPush{}
	h := newHarness(t, func(o *api.Options) { o.Push = lp })
	fake := webpushtest.NewService(t)
	svc, err := notify.New(context.Background(), notify.Options{JS: h.js, PublicURL: "https://care.example.org",
		Subject: "mailto:ops@example.org", AllowedEndpoints: []string{fake.URL}, Clock: h.clk.now, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Store.Close)
	lp.Service = svc
	return h, svc, fake
}

func TestPushSubscribeAndActionToken(t *testing.T) {
	h, svc, fake := pushHarness(t)
	h.resident("r1")
	lee := h.user("cw-lee", "caregiver", "r1")
	kim := h.user("cw-kim", "caregiver")
	phone := fake.NewSubscriber()
	sub := map[string]any{"endpoint": phone.Endpoint, "keys": map[string]string{"p256dh": phone.P256DH(), "auth": phone.AuthSecret()}, "locale": "ko"}

	var cfg struct {
		Key string `json:"vapid_public_key"`
	}
	h.expect(http.StatusOK, "GET", "/api/v1/push/config", lee, nil, &cfg)
	if cfg.Key != svc.PublicKey() {
		t.Fatalf("config key %q", cfg.Key)
	}
	var ph struct {
		ID string `json:"id"`
	}
	h.expect(http.StatusCreated, "POST", "/api/v1/push/subscriptions", lee, sub, &ph)
	h.expect(http.StatusCreated, "POST", "/api/v1/push/subscriptions", lee, sub, nil) // an app open re-posts
	if b := h.expect(http.StatusOK, "GET", "/api/v1/push/subscriptions", lee, nil, nil); strings.Count(string(b), `"id"`) != 1 || strings.Contains(string(b), phone.AuthSecret()) {
		t.Fatalf("phones: %s", b)
	}
	evil := map[string]any{"endpoint": "https://attacker.example/x", "keys": sub["keys"]}
	if b := h.expect(http.StatusUnprocessableEntity, "POST", "/api/v1/push/subscriptions", lee, evil, nil); errCode(b) != "invalid_subscription" {
		t.Fatalf("endpoint outside the allowlist: %s", b)
	}
	h.expect(http.StatusUnauthorized, "POST", "/api/v1/push/subscriptions", "", sub, nil)
	h.expect(http.StatusForbidden, "GET", "/api/v1/push/phones/stale", lee, nil, nil)

	a := h.raise("r1", "fall", "critical")
	other := h.raise("r1", "hr_high", "high")
	tok := svc.Tokens.Mint(a.ID, "cw-lee", phones.ActionAck, ph.ID, a.Seq)
	ack := "/api/v1/push/alerts/" + a.ID + "/ack"

	// Refused: no token, another alert's token, a bearer token in its place,
	// a receipt-only token. None of these spends tok (its use below works).
	h.expect(http.StatusUnauthorized, "POST", ack, "", nil, nil)
	h.expect(http.StatusUnauthorized, "POST", "/api/v1/push/alerts/"+other.ID+"/ack", "", nil, nil, api.ActionTokenHeader, tok)
	h.expect(http.StatusUnauthorized, "POST", ack, "", nil, nil, api.ActionTokenHeader, lee)
	h.expect(http.StatusUnauthorized, "POST", ack, "", nil, nil, api.ActionTokenHeader, svc.Tokens.Mint(a.ID, "cw-lee", phones.ActionReceipt, ph.ID, a.Seq))
	// A user who cannot see the resident gets nothing from a token either,
	// and the refusal does not spend it: assigned to the resident within
	// the token's life, the care worker's button works.
	kimTok := svc.Tokens.Mint(other.ID, "cw-kim", phones.ActionAck, "", other.Seq)
	otherAck := "/api/v1/push/alerts/" + other.ID + "/ack"
	h.expect(http.StatusNotFound, "POST", otherAck, "", nil, nil, api.ActionTokenHeader, kimTok)
	h.expect(http.StatusNotFound, "POST", otherAck, "", nil, nil, api.ActionTokenHeader, kimTok)
	h.expect(http.StatusOK, "PUT", "/api/v1/users/cw-kim/residents", adminToken, map[string]any{"resident_ids": []string{"r1"}}, nil)
	var byKim alerts.Alert
	h.expect(http.StatusOK, "POST", otherAck, "", nil, &byKim, api.ActionTokenHeader, kimTok)
	if byKim.AcknowledgedBy != "cw-kim" {
		t.Fatalf("kim's ack: %+v", byKim)
	}
	_ = kim
	// A disabled user's token is refused, and not spent either.
	third := h.raise("r1", "spo2_low", "critical")
	kimTok3 := svc.Tokens.Mint(third.ID, "cw-kim", phones.ActionAck, "", third.Seq)
	h.expect(http.StatusOK, "POST", "/api/v1/users/cw-kim/disable", adminToken, nil, nil)
	if b := h.expect(http.StatusUnauthorized, "POST", "/api/v1/push/alerts/"+third.ID+"/ack", "", nil, nil, api.ActionTokenHeader, kimTok3); errCode(b) != "invalid_action_token" {
		t.Fatalf("disabled user's token: %s", b)
	}
	h.expect(http.StatusOK, "POST", "/api/v1/users/cw-kim/enable", adminToken, nil, nil)
	h.expect(http.StatusOK, "POST", "/api/v1/push/alerts/"+third.ID+"/ack", "", nil, nil, api.ActionTokenHeader, kimTok3)

	var out alerts.Alert
	h.expect(http.StatusOK, "POST", ack, "", nil, &out, api.ActionTokenHeader, tok)
	if out.Status != alerts.StatusAcknowledged || out.AcknowledgedBy != "cw-lee" {
		t.Fatalf("acked alert %+v", out)
	}
	if b := h.expect(http.StatusConflict, "POST", ack, "", nil, nil, api.ActionTokenHeader, tok); errCode(b) != "action_token_used" {
		t.Fatalf("replay: %s", b)
	}
	b := h.expect(http.StatusOK, "GET", "/api/v1/audit?resident_id=r1", adminToken, nil, nil)
	if !strings.Contains(string(b), "via=push_action") {
		t.Fatalf("the push ack is not audited as such: %s", b)
	}
	b = h.expect(http.StatusOK, "GET", "/api/v1/alerts/"+a.ID+"/receipts", lee, nil, nil)
	if !strings.Contains(string(b), `"acked_at"`) {
		t.Fatalf("receipts: %s", b)
	}

	// Receipts from the service worker: the token proves which push.
	h.expect(http.StatusNoContent, "POST", "/api/v1/push/receipts", "", map[string]string{"alert_id": a.ID, "event": "shown"}, nil, api.ActionTokenHeader, tok)
	h.expect(http.StatusUnauthorized, "POST", "/api/v1/push/receipts", "", map[string]string{"alert_id": other.ID, "event": "shown"}, nil, api.ActionTokenHeader, tok)

	// Expired: 30 minutes later the button no longer works.
	late := svc.Tokens.Mint(other.ID, "cw-lee", phones.ActionAck, ph.ID, other.Seq)
	h.clk.add(phones.ActionTokenLifetime + time.Second)
	if b := h.expect(http.StatusUnauthorized, "POST", "/api/v1/push/alerts/"+other.ID+"/ack", "", nil, nil, api.ActionTokenHeader, late); errCode(b) != "action_token_expired" {
		t.Fatalf("expired: %s", b)
	}

	h.expect(http.StatusNoContent, "DELETE", "/api/v1/push/subscriptions", lee, map[string]string{"endpoint": phone.Endpoint}, nil)
	h.expect(http.StatusNotFound, "DELETE", "/api/v1/push/subscriptions", lee, map[string]string{"endpoint": phone.Endpoint}, nil)
}

func TestPushDisabled(t *testing.T) {
	h := newHarness(t, nil)
	lee := h.user("cw-lee", "caregiver")
	if b := h.expect(http.StatusNotFound, "GET", "/api/v1/push/config", lee, nil, nil); errCode(b) != "push_disabled" {
		t.Fatalf("%s", b)
	}
	h.expect(http.StatusNotFound, "POST", "/api/v1/push/alerts/al-x/ack", "", nil, nil, api.ActionTokenHeader, "x.y")
}
