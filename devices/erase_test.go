package devices

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/carehub/carehub/internal/testenv"
)

// TestMarkErased: an erased resident's id is marked for good, on this
// instance at once and on another through its watcher (also one opened
// later); Monitored is false for an erased or unknown resident; the id is
// not given to a new resident.
func TestMarkErased(t *testing.T) {
	ns := testenv.NATS(t)
	a := openRegistry(t, connectJS(t, ns), time.Now)
	b := openRegistry(t, connectJS(t, ns), time.Now)
	ctx := context.Background()
	for _, id := range []string{"r1", "r2"} {
		if _, err := a.CreateResident(ctx, Resident{ID: id, Name: "Resident " + id, HomeID: "h1"}); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, 5*time.Second, "b sees the residents", func() bool { return b.Monitored("r1") && b.Monitored("r2") })
	if a.Monitored("nobody") {
		t.Fatal("an unregistered resident is monitored")
	}
	if err := a.MarkErased(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	if err := a.MarkErased(ctx, "r1"); err != nil { // an erasure run again
		t.Fatal(err)
	}
	if !a.Erased("r1") || a.Monitored("r1") || a.Erased("r2") || !a.Monitored("r2") {
		t.Fatalf("a: erased r1 %v, monitored r1 %v, erased r2 %v", a.Erased("r1"), a.Monitored("r1"), a.Erased("r2"))
	}
	testenv.WaitFor(t, 5*time.Second, "b sees the tombstone", func() bool { return b.Erased("r1") && !b.Monitored("r1") })
	c := openRegistry(t, connectJS(t, ns), time.Now)
	if !c.Erased("r1") {
		t.Fatal("a registry opened after the erasure does not know it")
	}
	if _, err := a.EraseResident(ctx, "r1", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateResident(ctx, Resident{ID: "r1", Name: "Someone Else", HomeID: "h1"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("re-using an erased id: %v, want ErrConflict", err)
	}
}
