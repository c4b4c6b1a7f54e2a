package devices

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/testenv"
)

func connectJS(t *testing.T, s *server.Server) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func openRegistry(t *testing.T, js jetstream.JetStream, now func() time.Time) *Registry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := Open(ctx, js, zerolog.Nop(), now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func fixedClock(ts string) func() time.Time {
	tm, err := time.Parse(time.RFC3339, ts)
	if err != nil {
		panic(err)
	}
	return func() time.Time { return tm }
}

func TestRegistryCRUD(t *testing.T) {
	ctx := context.Background()
	r := openRegistry(t, connectJS(t, testenv.NATS(t)), fixedClock("2026-03-01T09:00:00+09:00"))

	res, err := r.CreateResident(ctx, Resident{ID: "kim-01", Name: "김영희", HomeID: "unit-302", BirthYear: 1941})
	if err != nil {
		t.Fatal(err)
	}
	if res.CreatedAt.Format(time.RFC3339) != "2026-03-01T00:00:00Z" {
		t.Errorf("created_at = %s, want the injected clock in UTC", res.CreatedAt)
	}
	if h, ok := r.Home("unit-302"); !ok || h.ID != "unit-302" {
		t.Fatalf("home not created implicitly: %+v %v", h, ok)
	}
	if got, ok := r.Resident("kim-01"); !ok || got.Name != "김영희" || got.HomeID != "unit-302" || got.BirthYear != 1941 {
		t.Fatalf("Resident = %+v, %v", got, ok)
	}
	// A second resident in the same home reuses it.
	gen, err := r.CreateResident(ctx, Resident{Name: "Lee", HomeID: "unit-302"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(gen.ID, "r-") || len(r.Homes()) != 1 {
		t.Fatalf("generated id %q, homes %d", gen.ID, len(r.Homes()))
	}
	if rs := r.Residents(); len(rs) != 2 || rs[0].ID != "kim-01" {
		t.Fatalf("Residents = %+v", rs)
	}

	d, pw, err := r.RegisterDevice(ctx, "radar-1", "radar", "kim-01")
	if err != nil {
		t.Fatal(err)
	}
	if d.HomeID != "unit-302" || d.ResidentID != "kim-01" || d.Kind != "radar" || d.Disabled {
		t.Fatalf("device = %+v", d)
	}
	if len(pw) != 32 || strings.Contains(d.SecretHash, pw) || !strings.HasPrefix(d.SecretHash, "$2a$10$") {
		t.Fatalf("password %q / hash %q: want 32 base64url chars and a bcrypt cost-10 hash", pw, d.SecretHash)
	}
	d2, _, err := r.RegisterDevice(ctx, "", "door", gen.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(d2.ID, "d-") {
		t.Fatalf("generated device id %q", d2.ID)
	}
	if got, ok := r.Device("radar-1"); !ok || got.SecretHash != d.SecretHash {
		t.Fatalf("Device = %+v, %v", got, ok)
	}
	kims := r.Devices(func(d Device) bool { return d.ResidentID == "kim-01" })
	if len(kims) != 1 || kims[0].ID != "radar-1" || len(r.Devices(nil)) != 2 {
		t.Fatalf("Devices filter = %+v", kims)
	}

	off, err := r.SetDeviceDisabled(ctx, "radar-1", true)
	if err != nil || !off.Disabled {
		t.Fatalf("disable: %+v %v", off, err)
	}
	if got, _ := r.Device("radar-1"); !got.Disabled {
		t.Fatal("disable not visible through Device")
	}
}

func TestRegistryConflictAndInvalid(t *testing.T) {
	ctx := context.Background()
	r := openRegistry(t, connectJS(t, testenv.NATS(t)), time.Now)
	if _, err := r.CreateResident(ctx, Resident{ID: "p1", Name: "A", HomeID: "h1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.CreateResident(ctx, Resident{ID: "p1", Name: "B", HomeID: "h1"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate resident: %v, want ErrConflict", err)
	}
	if got, _ := r.Resident("p1"); got.Name != "A" {
		t.Fatalf("conflicting create overwrote the resident: %+v", got)
	}
	if _, err := r.CreateHome(ctx, Home{ID: "h1"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate home: %v", err)
	}
	if _, _, err := r.RegisterDevice(ctx, "dev1", "bed", "p1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.RegisterDevice(ctx, "dev1", "bed", "p1"); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate device: %v", err)
	}

	year := time.Now().Year()
	badResidents := map[string]Resident{
		"empty name":      {Name: " ", HomeID: "h1"},
		"long name":       {Name: strings.Repeat("가", 201), HomeID: "h1"},
		"bad id":          {ID: "Kim", Name: "A", HomeID: "h1"},
		"no home":         {Name: "A"},
		"bad home":        {Name: "A", HomeID: "h/1"},
		"born 1899":       {Name: "A", HomeID: "h1", BirthYear: 1899},
		"born next year":  {Name: "A", HomeID: "h1", BirthYear: year + 1},
		"id too long":     {ID: strings.Repeat("a", 65), Name: "A", HomeID: "h1"},
		"invalid utf8":    {Name: "\xff", HomeID: "h1"},
		"leading hyphen":  {ID: "-a", Name: "A", HomeID: "h1"},
		"home with space": {Name: "A", HomeID: "h 1"},
	}
	for name, res := range badResidents {
		if _, err := r.CreateResident(ctx, res); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	if _, err := r.CreateResident(ctx, Resident{Name: strings.Repeat("가", 200), HomeID: "h1", BirthYear: year}); err != nil {
		t.Errorf("200-character name and this year's birth: %v", err)
	}
	badDevices := []struct{ name, id, kind, resident string }{
		{"unknown kind", "", "toaster", "p1"},
		{"bad id", "Dev", "bed", "p1"},
		{"unknown resident", "", "bed", "nobody"},
		{"bad resident", "", "bed", "P1"},
	}
	for _, c := range badDevices {
		if _, _, err := r.RegisterDevice(ctx, c.id, c.kind, c.resident); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", c.name, err)
		}
	}
	if _, err := r.SetDeviceDisabled(ctx, "nope", true); !errors.Is(err, ErrNotFound) {
		t.Errorf("disable unknown: %v, want ErrNotFound", err)
	}
	if _, _, err := r.RotateCredentials(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("rotate unknown: %v, want ErrNotFound", err)
	}
}

// TestRegistryWatchPropagation proves that a running registry learns of
// records written by another instance or directly to KV, without restart.
func TestRegistryWatchPropagation(t *testing.T) {
	ctx := context.Background()
	s := testenv.NATS(t)
	js1, js2 := connectJS(t, s), connectJS(t, s)
	r1 := openRegistry(t, js1, time.Now)
	r2 := openRegistry(t, js2, time.Now)

	if _, err := r1.CreateResident(ctx, Resident{ID: "res-a", Name: "A", HomeID: "home-a"}); err != nil {
		t.Fatal(err)
	}
	_, pw, err := r1.RegisterDevice(ctx, "env-a", "env", "res-a")
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "device on the second instance", func() bool {
		_, ok := r2.Device("env-a")
		return ok
	})
	if _, ok := r2.Resident("res-a"); !ok {
		t.Fatal("resident not propagated")
	}
	if _, ok := r2.Home("home-a"); !ok {
		t.Fatal("home not propagated")
	}
	if !r2.Authenticate("env-a", pw) {
		t.Fatal("second instance rejects the password issued by the first")
	}

	// Disabled on r2: r1 must refuse the device, even with a cached success.
	if !r1.Authenticate("env-a", pw) {
		t.Fatal("first instance rejects its own device")
	}
	if _, err := r2.SetDeviceDisabled(ctx, "env-a", true); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "disable on the first instance", func() bool {
		d, _ := r1.Device("env-a")
		return d.Disabled
	})
	if r1.Authenticate("env-a", pw) {
		t.Fatal("disabled device authenticated")
	}

	// Written straight into KV (an operator's script): known to both.
	kv, err := js1.KeyValue(ctx, model.BucketDevices)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(Device{ID: "manual-1", Kind: "bed", ResidentID: "res-a", HomeID: "home-a"})
	if _, err := kv.Put(ctx, "manual-1", raw); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "a device put directly into KV", func() bool {
		_, ok1 := r1.Device("manual-1")
		_, ok2 := r2.Device("manual-1")
		return ok1 && ok2
	})
	if err := kv.Delete(ctx, "manual-1"); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "a deleted device to disappear", func() bool {
		_, ok := r2.Device("manual-1")
		return !ok
	})
	// A record that is not JSON is skipped, not fatal to the watcher.
	if _, err := kv.Put(ctx, "garbage", []byte("{")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r1.RegisterDevice(ctx, "after-garbage", "bed", "res-a"); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "watcher to survive a bad record", func() bool {
		_, ok := r2.Device("after-garbage")
		return ok
	})
}

// TestRegistrySurvivesNATSRestart restarts NATS on the same port and store:
// the data is still there for a new instance, and a running instance's
// watchers resume and see writes made after the restart.
func TestRegistrySurvivesNATSRestart(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "js")
	port := testenv.FreePort(t)
	s := testenv.NATSAt(t, port, dir)
	js1 := connectJS(t, s)
	r1 := openRegistry(t, js1, time.Now)
	if _, err := r1.CreateResident(ctx, Resident{ID: "res-r", Name: "R", HomeID: "home-r"}); err != nil {
		t.Fatal(err)
	}
	_, pw, err := r1.RegisterDevice(ctx, "dev-r", "sos", "res-r")
	if err != nil {
		t.Fatal(err)
	}

	s.Shutdown()
	s.WaitForShutdown()
	s2 := testenv.NATSAt(t, port, dir)

	r2 := openRegistry(t, connectJS(t, s2), time.Now)
	if d, ok := r2.Device("dev-r"); !ok || d.HomeID != "home-r" {
		t.Fatalf("device after restart: %+v %v", d, ok)
	}
	if !r2.Authenticate("dev-r", pw) {
		t.Fatal("password not valid after restart")
	}
	if _, _, err := r2.RegisterDevice(ctx, "dev-after", "sos", "res-r"); err != nil {
		t.Fatal(err)
	}
	// Without the reconnect-driven restart this took ~20 s (heartbeats).
	testenv.WaitFor(t, 10*time.Second, "the pre-restart instance's watcher to resume", func() bool {
		_, ok := r1.Device("dev-after")
		return ok
	})
}

func TestCredentials(t *testing.T) {
	ctx := context.Background()
	s := testenv.NATS(t)
	r := openRegistry(t, connectJS(t, s), time.Now)
	other := openRegistry(t, connectJS(t, s), time.Now)
	if _, err := r.CreateResident(ctx, Resident{ID: "c1", Name: "C", HomeID: "hc"}); err != nil {
		t.Fatal(err)
	}
	_, pw, err := r.RegisterDevice(ctx, "wear-1", "wearable", "c1")
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "device on the other instance", func() bool {
		_, ok := other.Device("wear-1")
		return ok
	})

	// The other instance verifies with bcrypt once, then from its cache.
	before := other.auth.verifications.Load()
	for range 20 {
		if !other.Authenticate("wear-1", pw) {
			t.Fatal("valid password rejected")
		}
	}
	if n := other.auth.verifications.Load() - before; n != 1 {
		t.Fatalf("bcrypt ran %d times for 20 logins, want 1 (cache)", n)
	}
	for _, c := range []struct{ id, pw string }{
		{"wear-1", pw + "x"}, {"wear-1", ""}, {"wear-1", strings.ToUpper(pw)}, {"nobody", pw},
	} {
		if other.Authenticate(c.id, c.pw) {
			t.Errorf("Authenticate(%q, %q) = true", c.id, c.pw)
		}
	}

	_, pw2, err := r.RotateCredentials(ctx, "wear-1")
	if err != nil {
		t.Fatal(err)
	}
	if pw2 == pw {
		t.Fatal("rotation returned the same password")
	}
	testenv.WaitFor(t, 5*time.Second, "rotation on the other instance", func() bool {
		return !other.Authenticate("wear-1", pw)
	})
	if !other.Authenticate("wear-1", pw2) || !r.Authenticate("wear-1", pw2) || r.Authenticate("wear-1", pw) {
		t.Fatal("after rotation: new password must work and old must fail on both instances")
	}

	if _, err := r.SetDeviceDisabled(ctx, "wear-1", true); err != nil {
		t.Fatal(err)
	}
	if r.Authenticate("wear-1", pw2) {
		t.Fatal("disabled device authenticated")
	}
	if _, err := r.SetDeviceDisabled(ctx, "wear-1", false); err != nil {
		t.Fatal(err)
	}
	if !r.Authenticate("wear-1", pw2) {
		t.Fatal("re-enabled device rejected")
	}
}

// TestConcurrentUpdatesAreNotLost races two instances toggling the same
// device: optimistic concurrency must serialise them.
func TestConcurrentUpdatesAreNotLost(t *testing.T) {
	ctx := context.Background()
	s := testenv.NATS(t)
	r1 := openRegistry(t, connectJS(t, s), time.Now)
	r2 := openRegistry(t, connectJS(t, s), time.Now)
	if _, err := r1.CreateResident(ctx, Resident{ID: "cc", Name: "C", HomeID: "hcc"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r1.RegisterDevice(ctx, "dev-cc", "bed", "cc"); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "device on r2", func() bool { _, ok := r2.Device("dev-cc"); return ok })
	var rotated atomic.Value
	done := make(chan error, 1)
	go func() {
		_, pw, err := r2.RotateCredentials(ctx, "dev-cc")
		rotated.Store(pw)
		done <- err
	}()
	if _, err := r1.SetDeviceDisabled(ctx, "dev-cc", true); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "both changes on both instances", func() bool {
		d1, _ := r1.Device("dev-cc")
		d2, _ := r2.Device("dev-cc")
		return d1.Disabled && d2.Disabled && d1.SecretHash == d2.SecretHash
	})
	if _, err := r1.SetDeviceDisabled(ctx, "dev-cc", false); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "r1 to accept the rotated password", func() bool {
		return r1.Authenticate("dev-cc", rotated.Load().(string))
	})
}
