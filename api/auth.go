package api

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/ratelimit"
	"github.com/carehub/carehub/internal/users"
)

type loginBody struct {
	ID       string `json:"id"`
	Password string `json:"password"`
}

// errLoginBusy: every password-hashing slot stayed taken for the store's
// hash wait; the client retries later.
var errLoginBusy = &Error{Status: http.StatusServiceUnavailable, Code: "login_busy",
	Message: "too many logins are being checked right now; retry in a few seconds"}

// login: POST /auth/login {"id", "password"} → {"token", "expires_at"}.
// Attempts are limited per user id and source address together and per
// source address, reserved before the password is checked, so parallel
// guesses cannot pass the limit; an attacker elsewhere cannot lock a real
// user out. Password checks run a bounded number at a time (users.Store).
func (s *Server) login(c *fiber.Ctx) error {
	if err := s.needUsers(); err != nil {
		return err
	}
	var b loginBody
	if err := decode(c, &b); err != nil {
		return err
	}
	if b.ID == "" || b.Password == "" {
		return invalid("invalid_field", "id and password are required")
	}
	tok, exp, err := s.Login(c, b.ID, b.Password)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(fiber.Map{"token": tok, "expires_at": exp.UTC().Format(time.RFC3339)})
}

// Login checks a password as POST /auth/login does, for the console's login
// form too: the same limits per user and address, log lines and audit
// entries. Errors are the API's (*Error: 401, 429, 503).
func (s *Server) Login(c *fiber.Ctx, id, password string) (string, time.Time, error) {
	if err := s.needUsers(); err != nil {
		return "", time.Time{}, err
	}
	b := loginBody{ID: id, Password: password}
	ip := s.clientIP(c)
	keys := []string{"user+ip:" + truncate(b.ID, 64) + "|" + ip, "ip:" + ip}
	res, wait := s.logins.reserve(keys...)
	if wait > 0 {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		return "", time.Time{}, ErrRateLimited.with("too many failed logins; retry after " + wait.Round(time.Second).String())
	}
	tok, exp, err := s.o.Users.Login(c.UserContext(), b.ID, b.Password)
	if errors.Is(err, users.ErrUnauthorized) {
		ev := s.log.Info().Str("source", ip)
		if catalog.ValidID(b.ID) { // anything else may be a mistyped password: not logged
			ev = ev.Str("user_id", b.ID)
		}
		ev.Msg("login failed")
		_ = s.auditLogin(c, b.ID, OutcomeDenied, "wrong user id or password") // logged if it fails; the answer stays 401
		return "", time.Time{}, ErrUnauthorized.with("wrong user id or password")
	}
	if errors.Is(err, users.ErrBusy) {
		s.logins.refund(res)
		c.Set(fiber.HeaderRetryAfter, "2")
		return "", time.Time{}, errLoginBusy
	}
	if err != nil {
		s.logins.refund(res)
		return "", time.Time{}, err
	}
	s.logins.refund(res)
	if err := s.auditLogin(c, b.ID, OutcomeOK, ""); err != nil {
		// An unaudited login must not hand out a working token.
		if rerr := s.o.Users.Revoke(c.UserContext(), tok); rerr != nil {
			s.log.Error().Err(rerr).Msg("revoking the token of an unaudited login failed")
		}
		return "", time.Time{}, err
	}
	s.logins.reset(keys[0])
	return tok, exp, nil
}

// logout: POST /auth/logout revokes the caller's token.
func (s *Server) logout(c *fiber.Ctx) error {
	p := principal(c)
	if p.token == "" {
		return invalid("not_revocable", "the bootstrap admin token is revoked by changing CARE_ADMIN_TOKEN")
	}
	if err := s.o.Users.Revoke(c.UserContext(), p.token); err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
}

// me: GET /auth/me tells a client who its token belongs to.
func (s *Server) me(c *fiber.Ctx) error {
	p := principal(c)
	res := p.Residents
	if res == nil {
		res = []string{}
	}
	return c.JSON(fiber.Map{"id": p.ID, "role": p.Role, "resident_ids": res})
}

// Login rate limiting: at most loginFailures attempts that are not
// successes per key (a user id with a source address, a source address)
// at once, earned back at loginFailures per loginWindow; then 429 until
// one is. An attempt counts from the moment it is admitted (reserve) and is
// given back when it succeeds, so N parallel guesses cannot all pass one
// check.
const (
	loginFailures   = 5
	loginWindow     = time.Minute
	loginMaxTracked = 10000 // bounds the limiter's memory
)

type loginLimiter struct {
	now  func() time.Time
	keys *ratelimit.Keyed
}

func newLoginLimiter(now func() time.Time) *loginLimiter {
	return &loginLimiter{now: now, keys: ratelimit.Per(loginFailures, loginWindow, loginMaxTracked)}
}

// reserve admits one attempt and counts it against every key at once, or
// returns how long the longest-blocked key must wait.
func (l *loginLimiter) reserve(keys ...string) (ratelimit.Reservation, time.Duration) {
	return l.keys.ReserveAll(l.now(), keys...)
}

// refund gives back an attempt that did not fail (a success, or a check
// that never ran).
func (l *loginLimiter) refund(res ratelimit.Reservation) { l.keys.Refund(res) }

func (l *loginLimiter) reset(key string) { l.keys.Forget(key) }

// authenticate accepts the bootstrap admin token (CARE_ADMIN_TOKEN,
// contract §5) and users' expiring tokens.
func (s *Server) authenticate(c *fiber.Ctx) error {
	h := c.Get(fiber.HeaderAuthorization)
	token, ok := strings.CutPrefix(h, "Bearer ")
	if (!ok || token == "") && h == "" && s.o.Session != nil {
		token, ok = s.o.Session(c)
	}
	if !ok || token == "" {
		return ErrUnauthorized
	}
	if s.o.AdminToken != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.o.AdminToken)) == 1 {
		c.Locals(localPrincipal, Principal{ID: BootstrapAdminID, Role: RoleAdmin})
		return c.Next()
	}
	if s.o.Users == nil {
		return ErrUnauthorized
	}
	u, err := s.o.Users.Authenticate(c.UserContext(), token)
	if errors.Is(err, users.ErrUnauthorized) {
		return ErrUnauthorized
	}
	if err != nil {
		s.log.Error().Err(err).Msg("token check failed")
		return ErrUnavailable.with("the user store did not answer; retry later")
	}
	c.Locals(localPrincipal, Principal{ID: u.ID, Role: u.Role, Residents: u.ResidentIDs, token: token})
	return c.Next()
}
