package devices

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/testenv"
)

// TestUpdateResidentRevision proves the optimistic concurrency of
// UpdateResident: the revision read is the one checked, a stale one is
// ErrStale and changes nothing, and of many writers holding the same
// revision exactly one wins (KV Update is the atomic check).
func TestUpdateResidentRevision(t *testing.T) {
	ctx := context.Background()
	r := openRegistry(t, connectJS(t, testenv.NATS(t)), fixedClock("2026-03-01T09:00:00+09:00"))
	if _, err := r.CreateResident(ctx, Resident{ID: "kim", Name: "Kim", HomeID: "h1", BirthYear: 1941}); err != nil {
		t.Fatal(err)
	}
	_, rev, ok := r.ResidentRevision("kim")
	if !ok || rev == 0 {
		t.Fatalf("revision %d %v", rev, ok)
	}
	got, rev2, err := r.UpdateResident(ctx, "kim", rev, func(x *Resident) error { x.Name = "Kim Y."; return nil })
	if err != nil || got.Name != "Kim Y." || rev2 <= rev || got.BirthYear != 1941 {
		t.Fatalf("update: %+v rev %d→%d %v", got, rev, rev2, err)
	}
	if cur, crev, _ := r.ResidentRevision("kim"); cur.Name != "Kim Y." || crev != rev2 {
		t.Fatalf("memory after update: %+v rev %d", cur, crev)
	}
	// The revision read before the update is stale now.
	if _, _, err := r.UpdateResident(ctx, "kim", rev, func(x *Resident) error { x.Name = "lost"; return nil }); !errors.Is(err, ErrStale) {
		t.Fatalf("stale revision: %v", err)
	}
	if cur, _ := r.Resident("kim"); cur.Name != "Kim Y." {
		t.Fatalf("a stale update changed the resident: %+v", cur)
	}
	// Validation applies as on create, and id and created_at cannot change.
	if _, _, err := r.UpdateResident(ctx, "kim", 0, func(x *Resident) error { x.Name = " "; return nil }); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty name: %v", err)
	}
	if _, _, err := r.UpdateResident(ctx, "kim", 0, func(x *Resident) error { x.BirthYear = 1800; return nil }); !errors.Is(err, ErrInvalid) {
		t.Fatalf("birth year 1800: %v", err)
	}
	if got, _, err := r.UpdateResident(ctx, "kim", 0, func(x *Resident) error { x.ID = "other"; return nil }); err != nil || got.ID != "kim" {
		t.Fatalf("id change: %+v %v", got, err)
	}
	if _, _, err := r.UpdateResident(ctx, "nobody", 0, func(*Resident) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown resident: %v", err)
	}

	// Eight editors with the same ETag: one wins, seven are told to re-read.
	_, rev, _ = r.ResidentRevision("kim")
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, stale := 0, 0
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := r.UpdateResident(ctx, "kim", rev, func(x *Resident) error { x.BirthYear = 1930 + i; return nil })
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, ErrStale):
				stale++
			default:
				t.Errorf("editor %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || stale != 7 {
		t.Fatalf("same-revision editors: %d won, %d stale; want 1 and 7", wins, stale)
	}
}

// TestUpdateResidentMovesHome: a new home_id creates the home and moves the
// resident's devices, whose home is their resident's.
func TestUpdateResidentMovesHome(t *testing.T) {
	ctx := context.Background()
	r := openRegistry(t, connectJS(t, testenv.NATS(t)), fixedClock("2026-03-01T09:00:00+09:00"))
	if _, err := r.CreateResident(ctx, Resident{ID: "lee", Name: "Lee", HomeID: "old-home"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.RegisterDevice(ctx, "lee-band", "wearable", "lee"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.UpdateResident(ctx, "lee", 0, func(x *Resident) error { x.HomeID = "new-home"; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Home("new-home"); !ok {
		t.Fatal("new home not created")
	}
	if d, _ := r.Device("lee-band"); d.HomeID != "new-home" {
		t.Fatalf("device home %q, want new-home", d.HomeID)
	}
	if _, _, err := r.UpdateResident(ctx, "lee", 0, func(x *Resident) error { x.HomeID = "Bad Home"; return nil }); !errors.Is(err, ErrInvalid) {
		t.Fatalf("invalid home id: %v", err)
	}
}

// TestEraseResident proves the registry side of erasure: the devices fail
// authentication, the kick is called for each, the records are gone here
// and, through the watchers, on another instance, and nothing of them is
// left in KV history. Other residents are untouched.
func TestEraseResident(t *testing.T) {
	ctx := context.Background()
	ns := testenv.NATS(t)
	js := connectJS(t, ns)
	now := fixedClock("2026-03-01T09:00:00+09:00")
	r := openRegistry(t, js, now)
	other := openRegistry(t, connectJS(t, ns), now) // a second instance
	for _, id := range []string{"park", "choi"} {
		if _, err := r.CreateResident(ctx, Resident{ID: id, Name: "N " + id, HomeID: "h-" + id}); err != nil {
			t.Fatal(err)
		}
	}
	_, pw1, err := r.RegisterDevice(ctx, "park-band", "wearable", "park")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.RegisterDevice(ctx, "park-door", "door", "park"); err != nil {
		t.Fatal(err)
	}
	_, pwChoi, err := r.RegisterDevice(ctx, "choi-band", "wearable", "choi")
	if err != nil {
		t.Fatal(err)
	}
	if !r.Authenticate("park-band", pw1) {
		t.Fatal("device does not authenticate before the erasure")
	}
	testenv.WaitFor(t, 5*time.Second, "second instance sees park-band", func() bool { _, ok := other.Device("park-band"); return ok })

	var kicked []string
	erased, err := r.EraseResident(ctx, "park", func(id string) {
		kicked = append(kicked, id)
		if d, ok := r.Device(id); !ok || !d.Disabled {
			t.Errorf("kick of %s before it was disabled", id)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(erased) != 2 || len(kicked) != 2 || erased[0] != "park-band" || erased[1] != "park-door" {
		t.Fatalf("erased %v kicked %v", erased, kicked)
	}
	if r.Authenticate("park-band", pw1) {
		t.Fatal("an erased device still authenticates")
	}
	if _, ok := r.Resident("park"); ok {
		t.Fatal("resident still in memory")
	}
	testenv.WaitFor(t, 5*time.Second, "second instance drops park", func() bool {
		_, okR := other.Resident("park")
		_, okD := other.Device("park-band")
		return !okR && !okD
	})
	if other.Authenticate("park-band", pw1) {
		t.Fatal("the erased device authenticates on the second instance")
	}
	// Nothing left in KV: not the value, not an older revision.
	kv, err := js.KeyValue(ctx, model.BucketDevices)
	if err != nil {
		t.Fatal(err)
	}
	if hist, err := kv.History(ctx, "park-band"); err == nil {
		for _, e := range hist {
			if len(e.Value()) > 0 {
				t.Fatalf("device record revision %d still holds %q", e.Revision(), e.Value())
			}
		}
	}
	if !r.Authenticate("choi-band", pwChoi) {
		t.Fatal("another resident's device was affected")
	}
	if _, ok := r.Resident("choi"); !ok {
		t.Fatal("another resident was erased")
	}
	if _, err := r.EraseResident(ctx, "park", nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second erasure: %v", err)
	}
}

// TestPresenceForget: a forgotten device's presence is gone from memory
// and KV, and a reload does not bring it back.
func TestPresenceForget(t *testing.T) {
	ctx := context.Background()
	js := connectJS(t, testenv.NATS(t))
	devs := fakeDevices{"d1": {ID: "d1", HomeID: "h1"}, "d2": {ID: "d2", HomeID: "h1"}}
	pt, err := NewPresenceTracker(ctx, js, devs, zerolog.Nop(), PresenceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	pt.Seen("d1", at)
	pt.Seen("d2", at)
	if n, err := pt.Flush(ctx); err != nil || n != 2 {
		t.Fatalf("flush: %d %v", n, err)
	}
	if err := pt.Forget(ctx, "d1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := pt.Presence("d1"); ok {
		t.Fatal("d1 still in memory")
	}
	reloaded, err := NewPresenceTracker(ctx, js, devs, zerolog.Nop(), PresenceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := reloaded.Presence("d1"); ok {
		t.Fatal("d1 came back from KV")
	}
	if p, ok := reloaded.Presence("d2"); !ok || !p.LastSeen.Equal(at) {
		t.Fatalf("d2 lost: %+v %v", p, ok)
	}
	if err := pt.Forget(ctx, "never-seen"); err != nil {
		t.Fatalf("forget of an unknown device: %v", err)
	}
}
