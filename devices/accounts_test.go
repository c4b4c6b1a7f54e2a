package devices

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/carehub/carehub/internal/testenv"
)

// fakeAccounts records what the registry mirrors and fails on demand.
type fakeAccounts struct {
	mu      sync.Mutex
	calls   []string
	failing bool
}

func (f *fakeAccounts) record(format string, a ...any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, a...))
	if f.failing {
		return errors.New("broker down")
	}
	return nil
}

func (f *fakeAccounts) CreateDevice(_ context.Context, id, pw string) error {
	return f.record("create %s %t", id, pw != "")
}
func (f *fakeAccounts) SetDevicePassword(_ context.Context, id, pw string) error {
	return f.record("password %s %t", id, pw != "")
}
func (f *fakeAccounts) SetDeviceEnabled(_ context.Context, id string, on bool) error {
	return f.record("enabled %s %t", id, on)
}
func (f *fakeAccounts) DeleteDevice(_ context.Context, id string) error {
	return f.record("delete %s", id)
}

// TestMirrorAccounts: every credential, disable and erasure reaches the
// broker; a device the broker did not take is not registered (its
// password is never shown again), and a failed mirror is ErrBroker.
func TestMirrorAccounts(t *testing.T) {
	ctx := context.Background()
	r := openRegistry(t, connectJS(t, testenv.NATS(t)), fixedClock("2026-03-01T09:00:00+09:00"))
	f := &fakeAccounts{}
	r.MirrorAccounts(f)
	if _, err := r.CreateResident(ctx, Resident{ID: "r1", Name: "Test", HomeID: "h1"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.RegisterDevice(ctx, "d1", "wearable", "r1"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SetDeviceDisabled(ctx, "d1", true); err != nil {
		t.Fatal(err)
	}
	if err := r.SyncDisabled(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.RotateCredentials(ctx, "d1"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.EraseResident(ctx, "r1", nil); err != nil {
		t.Fatal(err)
	}
	want := "[create d1 true enabled d1 false enabled d1 false password d1 true enabled d1 false delete d1]"
	if got := fmt.Sprint(f.calls); got != want {
		t.Fatalf("mirrored %s, want %s", got, want)
	}

	if _, err := r.CreateResident(ctx, Resident{ID: "r2", Name: "Test", HomeID: "h1"}); err != nil {
		t.Fatal(err)
	}
	f.failing = true
	if _, _, err := r.RegisterDevice(ctx, "d2", "wearable", "r2"); !errors.Is(err, ErrBroker) {
		t.Fatalf("register with the broker down: %v, want ErrBroker", err)
	}
	// Purged from KV at once; the in-memory copy follows the KV watch.
	testenv.WaitFor(t, 5*time.Second, "the device the broker refused to be gone", func() bool {
		_, ok := r.Device("d2")
		return !ok
	})
	if _, err := r.devices.Get(ctx, "d2"); err == nil {
		t.Fatal("a device the broker refused is still in KV")
	}
	f.failing = false
	if _, _, err := r.RegisterDevice(ctx, "d2", "wearable", "r2"); err != nil {
		t.Fatalf("registering again once the broker is back: %v", err)
	}
	f.failing = true
	if _, _, err := r.RotateCredentials(ctx, "d2"); !errors.Is(err, ErrBroker) {
		t.Fatalf("rotate with the broker down: %v, want ErrBroker", err)
	}
	if _, err := r.SetDeviceDisabled(ctx, "d2", true); !errors.Is(err, ErrBroker) {
		t.Fatalf("disable with the broker down: %v, want ErrBroker", err)
	}
	if d, _ := r.Device("d2"); !d.Disabled {
		t.Fatal("the registry half of a disable is undone by a broker failure; ingest must still reject the device")
	}
}
