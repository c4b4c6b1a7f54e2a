package phones_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/internal/notify/phones"
	"github.com/carehub/carehub/internal/testenv"
)

func TestActionTokenOnceForItsAlertOnly(t *testing.T) {
	ns := testenv.NATS(t)
	_, js := testenv.JetStream(t, ns)
	ctx := context.Background()
	now := time.Date(2026, 12, 3, 3, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	store, err := phones.OpenStore(ctx, js, clock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	tokens, err := phones.NewTokens(ctx, store, clock)
	if err != nil {
		t.Fatal(err)
	}
	tok := tokens.Mint("al-1", "cw-lee", phones.ActionAck, "cw-lee.0123456789abcdef", 3)

	for _, c := range []struct {
		name, tok, alert, action string
		want                     error
	}{
		{"other alert", tok, "al-2", phones.ActionAck, phones.ErrTokenInvalid},
		{"other action", tok, "al-1", phones.ActionReceipt, phones.ErrTokenInvalid},
		{"tampered", tok[:len(tok)-2] + "AA", "al-1", phones.ActionAck, phones.ErrTokenInvalid},
		{"garbage", "not-a-token", "al-1", phones.ActionAck, phones.ErrTokenInvalid},
	} {
		if _, err := tokens.Use(ctx, c.tok, c.alert, c.action, nil); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	// A token minted with another server's secret is refused.
	other, err := phones.OpenStore(ctx, otherJS(t), clock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	foreign, _ := phones.NewTokens(ctx, other, clock)
	if _, err := tokens.Use(ctx, foreign.Mint("al-1", "cw-lee", phones.ActionAck, "", 1), "al-1", phones.ActionAck, nil); !errors.Is(err, phones.ErrTokenInvalid) {
		t.Fatalf("foreign token: %v", err)
	}

	// A recipient refused as they are now (out of scope) does not spend
	// it: the refusals above and this one leave it usable.
	errScope := errors.New("not assigned")
	if _, err := tokens.Use(ctx, tok, "al-1", phones.ActionAck, func(c phones.TokenClaims) error {
		if c.UserID != "cw-lee" || c.AlertID != "al-1" {
			t.Errorf("authorize saw %+v", c)
		}
		return errScope
	}); !errors.Is(err, errScope) {
		t.Fatalf("refused by authorize: %v", err)
	}
	c, err := tokens.Use(ctx, tok, "al-1", phones.ActionAck, func(phones.TokenClaims) error { return nil })
	if err != nil || c.UserID != "cw-lee" || c.Seq != 3 || c.Sub != "cw-lee.0123456789abcdef" {
		t.Fatalf("first use: %+v %v", c, err)
	}
	if _, err := tokens.Use(ctx, tok, "al-1", phones.ActionAck, nil); !errors.Is(err, phones.ErrTokenUsed) {
		t.Fatalf("second use: %v", err)
	}
	// Released after an action that failed for now, it works once more.
	if err := tokens.Release(ctx, c); err != nil {
		t.Fatal(err)
	}
	if _, err := tokens.Use(ctx, tok, "al-1", phones.ActionAck, nil); err != nil {
		t.Fatalf("use after release: %v", err)
	}
	if _, err := tokens.Use(ctx, tok, "al-1", phones.ActionAck, nil); !errors.Is(err, phones.ErrTokenUsed) {
		t.Fatalf("use after release, twice: %v", err)
	}
	// Receipts may still present it: it proves which push was shown.
	if _, err := tokens.CheckReceipt(tok, "al-1"); err != nil {
		t.Fatalf("receipt with a used token: %v", err)
	}

	late := tokens.Mint("al-1", "cw-lee", phones.ActionAck, "", 4)
	now = now.Add(phones.ActionTokenLifetime)
	if _, err := tokens.Use(ctx, late, "al-1", phones.ActionAck, nil); !errors.Is(err, phones.ErrTokenExpired) {
		t.Fatalf("expired token: %v", err)
	}
}

func otherJS(t *testing.T) jetstream.JetStream {
	_, js := testenv.JetStream(t, testenv.NATS(t))
	return js
}
