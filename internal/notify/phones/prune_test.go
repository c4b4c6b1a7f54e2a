package phones_test

import (
	"context"
	"testing"
	"time"

	"github.com/carehub/carehub/internal/notify/phones"
	"github.com/carehub/carehub/internal/testenv"
)

// TestPruneUnseenPhones: a phone with no sign of use (no app open, no
// receipt) for the prune period loses its subscription; one that sent a
// receipt, or re-posted its subscription, keeps it.
func TestPruneUnseenPhones(t *testing.T) {
	ns := testenv.NATS(t)
	_, js := testenv.JetStream(t, ns)
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	store, err := phones.OpenStore(ctx, js, clock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	put := func(user, endpoint string) phones.Subscription {
		s, err := store.Put(ctx, phones.Subscription{Endpoint: endpoint, P256DH: "k", Auth: "a", UserID: user, Locale: "ko"})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	lost := put("cw-lee", "https://fcm.googleapis.com/fcm/send/lost")
	shown := put("cw-lee", "https://fcm.googleapis.com/fcm/send/shown")
	opened := put("cw-kim", "https://fcm.googleapis.com/fcm/send/opened")

	const after = 30 * 24 * time.Hour
	now = now.Add(20 * 24 * time.Hour)
	if _, err := store.Confirm(ctx, "al-1", 1, shown.Key(), "shown"); err != nil {
		t.Fatal(err)
	}
	now = now.Add(15 * 24 * time.Hour) // 35 days after subscribing
	put("cw-kim", "https://fcm.googleapis.com/fcm/send/opened")

	gone, err := store.Prune(ctx, after)
	if err != nil {
		t.Fatal(err)
	}
	if len(gone) != 1 || gone[0].Key() != lost.Key() {
		t.Fatalf("pruned %+v, want only the phone unseen for 35 days", gone)
	}
	if _, err := store.Get(ctx, lost.Key()); err == nil {
		t.Errorf("the pruned phone is still stored")
	}
	for _, keep := range []phones.Subscription{shown, opened} {
		if _, err := store.Get(ctx, keep.Key()); err != nil {
			t.Errorf("%s: %v (it showed a sign of use within 30 days)", keep.Key(), err)
		}
	}
	if mine, _ := store.ForUser(ctx, "cw-lee"); len(mine) != 1 {
		t.Errorf("cw-lee's phones in memory: %d, want 1", len(mine))
	}
	// 0 never prunes.
	now = now.Add(365 * 24 * time.Hour)
	if gone, err := store.Prune(ctx, 0); err != nil || len(gone) != 0 {
		t.Fatalf("prune with 0: %v %v", gone, err)
	}
	if gone, _ := store.Prune(ctx, after); len(gone) != 2 {
		t.Fatalf("a year later: pruned %d, want 2", len(gone))
	}
}
