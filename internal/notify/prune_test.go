package notify_test

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/notify"
	"github.com/carehub/carehub/internal/notify/phones"
	"github.com/carehub/carehub/internal/testenv"
)

// TestServicePrunesUnseenPhones: the running phones backend drops a phone
// unseen for PruneAfter (CARE_WEBPUSH_PRUNE_DAYS) as it starts, and keeps
// one seen since.
func TestServicePrunesUnseenPhones(t *testing.T) {
	r := newRig(t)
	now := time.Now()
	clock := func() time.Time { return now }
	svc, err := notify.New(context.Background(), notify.Options{JS: r.js, PublicURL: "https://care.example.org",
		Subject: "mailto:ops@example.org", AllowedEndpoints: []string{r.svc.URL}, Clock: clock, Log: zerolog.Nop(),
		PruneAfter: 30 * 24 * time.Hour, Tune: func(o *notify.DispatcherOptions) { o.Durable = r.durable }})
	if err != nil {
		t.Fatal(err)
	}
	put := func(user string) phones.Subscription {
		ph := r.svc.NewSubscriber()
		s, err := svc.Subscribe(context.Background(), user, phones.Subscription{Endpoint: ph.Endpoint, P256DH: ph.P256DH(), Auth: ph.AuthSecret()})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	old := put("cw-lee")
	now = now.Add(31 * 24 * time.Hour)
	fresh := put("cw-kim")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Logf("Run after cancel: %v", err)
		}
	})
	testenv.WaitFor(t, 10*time.Second, "the unseen phone pruned", func() bool {
		_, err := r.store.Get(context.Background(), old.Key())
		return err != nil
	})
	if _, err := r.store.Get(context.Background(), fresh.Key()); err != nil {
		t.Fatalf("the phone seen today was pruned: %v", err)
	}
}
