package users_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/internal/testenv"
	"github.com/carehub/carehub/internal/users"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func open(t *testing.T) (*users.Store, *clock) {
	t.Helper()
	ns := testenv.NATS(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)}
	s, err := users.Open(context.Background(), js, c.now)
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

func TestCreateLoginAuthenticate(t *testing.T) {
	ctx := context.Background()
	s, clk := open(t)
	u, err := s.Create(ctx, users.NewUser{ID: "kim", Name: "Kim", Role: users.RoleCaregiver, Password: "correct horse"})
	if err != nil {
		t.Fatal(err)
	}
	if u.PasswordHash == "" || u.PasswordHash == "correct horse" {
		t.Fatalf("password not hashed: %q", u.PasswordHash)
	}
	if _, err := s.Create(ctx, users.NewUser{ID: "kim", Name: "Other", Role: users.RoleAdmin}); !errors.Is(err, users.ErrConflict) {
		t.Fatalf("duplicate id: %v, want ErrConflict", err)
	}
	if _, _, err := s.Login(ctx, "kim", "wrong password"); !errors.Is(err, users.ErrUnauthorized) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, _, err := s.Login(ctx, "nobody", "correct horse"); !errors.Is(err, users.ErrUnauthorized) {
		t.Fatalf("unknown user: %v", err)
	}
	tok, exp, err := s.Login(ctx, "kim", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if want := clk.now().Add(users.DefaultTokenTTL); !exp.Equal(want) {
		t.Fatalf("expires %v, want %v", exp, want)
	}
	got, err := s.Authenticate(ctx, tok)
	if err != nil || got.ID != "kim" || got.Role != users.RoleCaregiver {
		t.Fatalf("authenticate: %+v %v", got, err)
	}
	clk.add(users.DefaultTokenTTL)
	if _, err := s.Authenticate(ctx, tok); !errors.Is(err, users.ErrUnauthorized) {
		t.Fatalf("expired token accepted: %v", err)
	}
}

func TestRevoke(t *testing.T) {
	ctx := context.Background()
	s, clk := open(t)
	if _, err := s.Create(ctx, users.NewUser{ID: "lee", Name: "Lee", Role: users.RoleCoordinator}); err != nil {
		t.Fatal(err)
	}
	a, _, _ := s.Issue(ctx, "lee", 0)
	b, _, _ := s.Issue(ctx, "lee", 0)
	if err := s.Revoke(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, a); !errors.Is(err, users.ErrUnauthorized) {
		t.Fatalf("revoked token accepted: %v", err)
	}
	if _, err := s.Authenticate(ctx, b); err != nil {
		t.Fatalf("other token refused: %v", err)
	}
	clk.add(time.Second)
	if err := s.RevokeAll(ctx, "lee"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, b); !errors.Is(err, users.ErrUnauthorized) {
		t.Fatalf("token survived RevokeAll: %v", err)
	}
	clk.add(time.Second)
	c, _, _ := s.Issue(ctx, "lee", 0)
	if _, err := s.Authenticate(ctx, c); err != nil {
		t.Fatalf("token issued after RevokeAll refused: %v", err)
	}
}

func TestValidationAndAssignment(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	for _, n := range []users.NewUser{
		{ID: "Bad Id", Name: "x", Role: users.RoleAdmin},
		{ID: "a", Name: " ", Role: users.RoleAdmin},
		{ID: "a", Name: "x", Role: "root"},
		{ID: "a", Name: "x", Role: users.RoleAdmin, Password: "short"},
	} {
		if _, err := s.Create(ctx, n); !errors.Is(err, users.ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", n, err)
		}
	}
	g, err := s.Create(ctx, users.NewUser{Name: "Generated", Role: users.RoleCaregiver})
	if err != nil || g.ID == "" {
		t.Fatalf("generated id: %+v %v", g, err)
	}
	u, err := s.SetResidents(ctx, g.ID, []string{"r2", "r1", "r2"})
	if err != nil {
		t.Fatal(err)
	}
	if len(u.ResidentIDs) != 2 || !u.Assigned("r1") || !u.Assigned("r2") || u.Assigned("r3") {
		t.Fatalf("assignment %v", u.ResidentIDs)
	}
	if _, err := s.Create(ctx, users.NewUser{ID: "co", Name: "Co", Role: users.RoleCoordinator}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetResidents(ctx, "co", []string{"r1"}); !errors.Is(err, users.ErrInvalid) {
		t.Fatalf("assign a coordinator: %v", err)
	}
	if _, err := s.SetResidents(ctx, "ghost", nil); !errors.Is(err, users.ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
}

// TestList: every user, sorted by id, never with a password hash; an
// empty store lists nobody; the role filter keeps that role only.
func TestList(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	if got, err := s.List(ctx, ""); err != nil || len(got) != 0 {
		t.Fatalf("empty store: %v, %v", got, err)
	}
	for _, n := range []users.NewUser{
		{ID: "cg-b", Name: "B", Role: users.RoleCaregiver, Password: "password-b"},
		{ID: "ad", Name: "A", Role: users.RoleAdmin, Password: "password-a"},
		{ID: "cg-a", Name: "C", Role: users.RoleCaregiver},
	} {
		if _, err := s.Create(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, "cg-a"); err != nil {
		t.Fatal(err)
	}
	all, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].ID != "ad" || all[1].ID != "cg-b" {
		t.Fatalf("List: %+v, want ad, cg-b", all)
	}
	for _, u := range all {
		if u.PasswordHash != "" {
			t.Errorf("List shows %s's password hash", u.ID)
		}
	}
	cg, err := s.List(ctx, users.RoleCaregiver)
	if err != nil || len(cg) != 1 || cg[0].ID != "cg-b" {
		t.Fatalf("List(caregiver): %+v, %v", cg, err)
	}
}
