package api_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/carehub/carehub/api"
)

func TestAuthenticationRequired(t *testing.T) {
	h := newHarness(t, nil)
	for _, tok := range []string{"", "wrong-token", adminToken + "x"} {
		b := h.expect(http.StatusUnauthorized, "GET", "/api/v1/residents", tok, nil, nil)
		if errCode(b) != "unauthorized" {
			t.Errorf("token %q: code %q", tok, errCode(b))
		}
	}
	h.expect(http.StatusOK, "GET", "/api/v1/residents", adminToken, nil, nil)
	h.expect(http.StatusOK, "GET", "/api/v1/openapi.json", "", nil, nil)
}

func TestUsersLoginLogout(t *testing.T) {
	h := newHarness(t, nil)
	h.resident("r1")
	coord := h.user("coord", "coordinator")
	care := h.user("care", "caregiver", "r1")

	// Only admins manage users.
	for _, tok := range []string{coord, care} {
		h.expect(http.StatusForbidden, "POST", "/api/v1/users", tok, map[string]any{"name": "X", "role": "admin"}, nil)
		h.expect(http.StatusForbidden, "POST", "/api/v1/users/care/revoke-tokens", tok, nil, nil)
	}
	// Coordinators assign caregivers; caregivers do not.
	h.expect(http.StatusOK, "PUT", "/api/v1/users/care/residents", coord, map[string]any{"resident_ids": []string{"r1"}}, nil)
	h.expect(http.StatusForbidden, "PUT", "/api/v1/users/care/residents", care, map[string]any{"resident_ids": []string{"r1"}}, nil)

	// Validation.
	for _, c := range []struct {
		body   any
		status int
		code   string
	}{
		{`{"name":"A","role":"root"}`, 422, "invalid_field"},
		{`{"role":"admin"}`, 422, "invalid_field"},
		{`{"name":"A","role":"admin","password":"short"}`, 422, "invalid_field"},
		{`{"id":"Bad Id","name":"A","role":"admin"}`, 422, "invalid_field"},
		{`{"id":"coord","name":"A","role":"admin"}`, 409, "conflict"},
		{`{"name":"A","role":"admin","extra":1}`, 400, "malformed_json"},
		{`{"name":`, 400, "malformed_json"},
	} {
		st, _, b := h.call("POST", "/api/v1/users", adminToken, c.body, nil)
		if st != c.status || errCode(b) != c.code {
			t.Errorf("POST /users %v: %d %s, want %d %s", c.body, st, b, c.status, c.code)
		}
	}
	h.expect(422, "PUT", "/api/v1/users/care/residents", adminToken, map[string]any{"resident_ids": []string{"ghost"}}, nil)
	h.expect(422, "PUT", "/api/v1/users/care/residents", adminToken, map[string]any{}, nil)
	h.expect(422, "PUT", "/api/v1/users/coord/residents", adminToken, map[string]any{"resident_ids": []string{"r1"}}, nil)
	h.expect(404, "PUT", "/api/v1/users/nobody/residents", adminToken, map[string]any{"resident_ids": []string{"r1"}}, nil)

	// The created user's token and a login token both work; /auth/me says who.
	var me struct {
		ID, Role    string
		ResidentIDs []string `json:"resident_ids"`
	}
	h.expect(http.StatusOK, "GET", "/api/v1/auth/me", care, nil, &me)
	if me.ID != "care" || me.Role != "caregiver" || len(me.ResidentIDs) != 1 || me.ResidentIDs[0] != "r1" {
		t.Fatalf("me: %+v", me)
	}
	h.expect(http.StatusUnauthorized, "POST", "/api/v1/auth/login", "", map[string]any{"id": "care", "password": "wrong-password"}, nil)
	h.expect(422, "POST", "/api/v1/auth/login", "", map[string]any{"id": "care"}, nil)
	var login struct {
		Token     string `json:"token"`
		ExpiresAt string `json:"expires_at"`
	}
	h.expect(http.StatusOK, "POST", "/api/v1/auth/login", "", map[string]any{"id": "care", "password": "pass-care-long"}, &login)
	exp, err := time.Parse(time.RFC3339, login.ExpiresAt)
	if err != nil || !exp.Equal(h.clk.now().Add(12*time.Hour)) {
		t.Fatalf("expires_at %q, want 12 h from now", login.ExpiresAt)
	}
	h.expect(http.StatusOK, "GET", "/api/v1/auth/me", login.Token, nil, nil)

	// Logout revokes that token only.
	h.expect(http.StatusNoContent, "POST", "/api/v1/auth/logout", login.Token, nil, nil)
	h.expect(http.StatusUnauthorized, "GET", "/api/v1/auth/me", login.Token, nil, nil)
	h.expect(http.StatusOK, "GET", "/api/v1/auth/me", care, nil, nil)

	// An admin revokes all of a user's tokens.
	h.clk.add(time.Second)
	h.expect(http.StatusNoContent, "POST", "/api/v1/users/care/revoke-tokens", adminToken, nil, nil)
	h.expect(http.StatusUnauthorized, "GET", "/api/v1/auth/me", care, nil, nil)

	// Tokens expire.
	h.clk.add(12 * time.Hour)
	h.expect(http.StatusUnauthorized, "GET", "/api/v1/auth/me", coord, nil, nil)
	// The bootstrap admin token keeps working and cannot be logged out.
	h.expect(http.StatusOK, "GET", "/api/v1/auth/me", adminToken, nil, nil)
	h.expect(422, "POST", "/api/v1/auth/logout", adminToken, nil, nil)
	var u struct {
		PasswordHash string `json:"password_hash"`
		Role         string `json:"role"`
	}
	h.expect(http.StatusOK, "GET", "/api/v1/users/care", adminToken, nil, &u)
	if u.Role != "caregiver" || u.PasswordHash != "" {
		t.Fatalf("GET /users/care shows %+v", u)
	}
}

func TestLoginRateLimited(t *testing.T) {
	h := newHarness(t, nil)
	h.user("kim", "coordinator")
	bad := map[string]any{"id": "kim", "password": "wrong-password"}
	for i := range 5 {
		if st, _, b := h.call("POST", "/api/v1/auth/login", "", bad, nil); st != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d %s", i+1, st, b)
		}
	}
	// The sixth attempt is refused even with the right password.
	st, hdr, b := h.call("POST", "/api/v1/auth/login", "", map[string]any{"id": "kim", "password": "pass-kim-long"}, nil)
	if st != http.StatusTooManyRequests || errCode(b) != "rate_limited" {
		t.Fatalf("after 5 failures: %d %s", st, b)
	}
	if ra, err := strconv.Atoi(hdr.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
		t.Fatalf("Retry-After %q", hdr.Get("Retry-After"))
	}
	h.clk.add(time.Minute)
	h.expect(http.StatusOK, "POST", "/api/v1/auth/login", "", map[string]any{"id": "kim", "password": "pass-kim-long"}, nil)

	// Per source address: failures spread over many user ids still count.
	h.clk.add(time.Minute)
	for i := range 5 {
		h.expect(http.StatusUnauthorized, "POST", "/api/v1/auth/login", "", map[string]any{"id": "guess" + strconv.Itoa(i), "password": "whatever1"}, nil)
	}
	h.expect(http.StatusTooManyRequests, "POST", "/api/v1/auth/login", "", map[string]any{"id": "someone-else", "password": "whatever1"}, nil)
}

// TestLoginLimitBehindProxy: behind a trusted reverse proxy the limit is per
// client address from X-Forwarded-For, not one limit for everyone behind the
// proxy.
func TestLoginLimitBehindProxy(t *testing.T) {
	h := newHarness(t, func(o *api.Options) { o.TrustedProxies = []string{"0.0.0.0", "127.0.0.1"} })
	for i := range 5 {
		h.call("POST", "/api/v1/auth/login", "", map[string]any{"id": "guess" + strconv.Itoa(i), "password": "whatever1"}, nil,
			"X-Forwarded-For", "203.0.113.7")
	}
	if st, _, b := h.call("POST", "/api/v1/auth/login", "", map[string]any{"id": "x", "password": "whatever1"}, nil,
		"X-Forwarded-For", "203.0.113.7"); st != http.StatusTooManyRequests {
		t.Fatalf("sixth failure from the same client: %d %s", st, b)
	}
	if st, _, b := h.call("POST", "/api/v1/auth/login", "", map[string]any{"id": "x", "password": "whatever1"}, nil,
		"X-Forwarded-For", "198.51.100.9"); st != http.StatusUnauthorized {
		t.Fatalf("another client behind the same proxy: %d %s, want 401", st, b)
	}
}
