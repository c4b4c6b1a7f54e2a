package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/users"
)

// UserStore is what the API needs of internal/users.Store.
type UserStore interface {
	Create(ctx context.Context, n users.NewUser) (users.User, error)
	Get(ctx context.Context, id string) (users.User, error)
	SetResidents(ctx context.Context, id string, residentIDs []string) (users.User, error)
	RevokeAll(ctx context.Context, id string) error
	Issue(ctx context.Context, userID string, ttl time.Duration) (string, time.Time, error)
	Login(ctx context.Context, id, password string) (string, time.Time, error)
	Authenticate(ctx context.Context, token string) (users.User, error)
	Revoke(ctx context.Context, token string) error
	SetDisabled(ctx context.Context, id string, disabled bool) (users.User, error)
	SetRole(ctx context.Context, id, role string) (users.User, error)
	SetPassword(ctx context.Context, id, password string) (users.User, error)
	Delete(ctx context.Context, id string) error
}

// userError maps the store's typed errors to the catalogue.
func userError(err error) error {
	switch {
	case errors.Is(err, users.ErrNotFound):
		return ErrNotFound.with(err.Error())
	case errors.Is(err, users.ErrConflict):
		return ErrConflict.with(err.Error())
	case errors.Is(err, users.ErrInvalid):
		return invalid("invalid_field", err.Error())
	case errors.Is(err, users.ErrBusy):
		return errLoginBusy
	}
	return err
}

func (s *Server) needUsers() error {
	if s.o.Users == nil {
		return ErrUnavailable.with("user accounts are not configured on this instance")
	}
	return nil
}

type createUserBody struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Role     string `json:"role"`
	Password string `json:"password"`
}

type userCreated struct {
	ID        string    `json:"id"`
	Role      string    `json:"role"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// userView is a user as the API shows it: never the password hash.
type userView struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Role        string    `json:"role"`
	Disabled    bool      `json:"disabled"`
	ResidentIDs []string  `json:"resident_ids"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func viewUser(u users.User) userView {
	return userView{ID: u.ID, Name: u.Name, Role: u.Role, Disabled: u.Disabled, ResidentIDs: u.ResidentIDs, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
}

// createUser: POST /users {"id"?, "name", "role", "password"?} → 201
// {"id", "role", "token"} (contract §4); admins only. The token lets a
// user without a password (a service, a phone paired by a coordinator)
// work at once.
func (s *Server) createUser(c *fiber.Ctx) error {
	if err := s.needUsers(); err != nil {
		return err
	}
	var b createUserBody
	if err := decode(c, &b); err != nil {
		return err
	}
	u, err := s.o.Users.Create(c.UserContext(), users.NewUser{ID: b.ID, Name: b.Name, Role: b.Role, Password: b.Password})
	if err != nil {
		return userError(err)
	}
	tok, exp, err := s.o.Users.Issue(c.UserContext(), u.ID, users.DefaultTokenTTL)
	if err != nil {
		return err
	}
	if err := s.AuditUserAction(c, "user.create", u.ID, OutcomeOK); err != nil {
		return err
	}
	s.log.Info().Str("user_id", u.ID).Str("role", u.Role).Str("by", principal(c).ID).Msg("user created")
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(http.StatusCreated).JSON(userCreated{ID: u.ID, Role: u.Role, Token: tok, ExpiresAt: exp})
}

// getUser: GET /users/{id}; admins only.
func (s *Server) getUser(c *fiber.Ctx) error {
	if err := s.needUsers(); err != nil {
		return err
	}
	u, err := s.o.Users.Get(c.UserContext(), c.Params("id"))
	if err != nil {
		return userError(err)
	}
	return c.JSON(viewUser(u))
}

type residentsBody struct {
	ResidentIDs []string `json:"resident_ids"`
}

// maxAssigned bounds one caregiver's assignment list.
const maxAssigned = 1000

// setUserResidents: PUT /users/{id}/residents {"resident_ids": [...]} sets
// a caregiver's assignment (contract §4); admins and coordinators. Every id
// must name an existing resident, so a typo does not silently hide one.
func (s *Server) setUserResidents(c *fiber.Ctx) error {
	if err := s.needUsers(); err != nil {
		return err
	}
	var b residentsBody
	if err := decode(c, &b); err != nil {
		return err
	}
	if b.ResidentIDs == nil {
		return invalid("invalid_field", "resident_ids is required (an empty list unassigns everyone)")
	}
	if len(b.ResidentIDs) > maxAssigned {
		return invalid("invalid_field", "at most "+strconv.Itoa(maxAssigned)+" resident_ids")
	}
	for _, id := range b.ResidentIDs {
		if _, ok := s.o.Registry.Resident(id); !ok || !catalog.ValidID(id) {
			return invalid("unknown_resident", "resident "+truncate(id, 64)+" does not exist")
		}
	}
	u, err := s.o.Users.SetResidents(c.UserContext(), c.Params("id"), b.ResidentIDs)
	if err != nil {
		return userError(err)
	}
	for _, id := range b.ResidentIDs {
		if err := s.audit(c, id, "assignment.set", "caregiver "+u.ID); err != nil {
			return err
		}
	}
	// Open streams were opened for the old assignment; they end and the
	// phone reconnects with the new one.
	s.endStreams(u.ID, "assignment changed; reconnect")
	return c.JSON(viewUser(u))
}

// revokeUserTokens: POST /users/{id}/revoke-tokens logs a user out
// everywhere (a lost phone, a leaver); admins only.
func (s *Server) revokeUserTokens(c *fiber.Ctx) error {
	if err := s.needUsers(); err != nil {
		return err
	}
	if err := s.o.Users.RevokeAll(c.UserContext(), c.Params("id")); err != nil {
		return userError(err)
	}
	if err := s.AuditUserAction(c, "user.revoke_tokens", c.Params("id"), OutcomeOK); err != nil {
		return err
	}
	s.endStreams(c.Params("id"), "token no longer valid")
	s.log.Info().Str("user_id", c.Params("id")).Str("by", principal(c).ID).Msg("user tokens revoked")
	return c.SendStatus(http.StatusNoContent)
}

// userAdmin runs one admin change to a user (item 6 of issue 9: locking
// departed staff out): it refuses changes to the caller's own account (an
// admin cannot lock themselves out by mistake; another admin or the
// bootstrap token can), audits the change before and after, and ends the
// user's open alert streams so no session outlives it.
func (s *Server) userAdmin(action string, change func(c *fiber.Ctx, id string) (users.User, error)) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if err := s.needUsers(); err != nil {
			return err
		}
		id := c.Params("id")
		if id == principal(c).ID {
			return invalid("own_account", "an admin may not "+strings.TrimPrefix(action, "user.")+" their own account; ask another admin")
		}
		if _, err := s.o.Users.Get(c.UserContext(), id); err != nil {
			return userError(err)
		}
		if err := s.AuditUserAction(c, action, id, OutcomeOK); err != nil {
			return err
		}
		u, err := change(c, id)
		if err != nil {
			return userError(err)
		}
		s.endStreams(id, "account changed: "+action)
		s.log.Info().Str("user_id", id).Str("action", action).Str("by", principal(c).ID).Msg("user changed")
		if u.ID == "" {
			return c.SendStatus(http.StatusNoContent)
		}
		return c.JSON(viewUser(u))
	}
}

// disableUser: POST /users/{id}/disable → 200 user; the user can no longer
// log in, every token is revoked and open streams end. Admins only.
func (s *Server) disableUser(c *fiber.Ctx, id string) (users.User, error) {
	return s.o.Users.SetDisabled(c.UserContext(), id, true)
}

// enableUser: POST /users/{id}/enable → 200 user; the user may log in
// again (old tokens stay revoked). Admins only.
func (s *Server) enableUser(c *fiber.Ctx, id string) (users.User, error) {
	return s.o.Users.SetDisabled(c.UserContext(), id, false)
}

// deleteUser: DELETE /users/{id} → 204. Admins only.
func (s *Server) deleteUser(c *fiber.Ctx, id string) (users.User, error) {
	return users.User{}, s.o.Users.Delete(c.UserContext(), id)
}

type roleBody struct {
	Role string `json:"role"`
}

// setUserRole: PUT /users/{id}/role {"role"} → 200 user. Leaving the
// caregiver role clears the assignment list. Admins only.
func (s *Server) setUserRole(c *fiber.Ctx, id string) (users.User, error) {
	var b roleBody
	if err := decode(c, &b); err != nil {
		return users.User{}, err
	}
	return s.o.Users.SetRole(c.UserContext(), id, b.Role)
}

type passwordBody struct {
	Password string `json:"password"`
}

// resetUserPassword: POST /users/{id}/password {"password"} → 200 user; sets
// a new password and revokes every token. Admins only.
func (s *Server) resetUserPassword(c *fiber.Ctx, id string) (users.User, error) {
	var b passwordBody
	if err := decode(c, &b); err != nil {
		return users.User{}, err
	}
	if b.Password == "" {
		return users.User{}, invalid("invalid_field", "password is required")
	}
	return s.o.Users.SetPassword(c.UserContext(), id, b.Password)
}

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
// within loginWindow; then 429 until the window ends. An attempt counts
// from the moment it is admitted (reserve) and is given back when it
// succeeds, so N parallel guesses cannot all pass one check.
const (
	loginFailures   = 5
	loginWindow     = time.Minute
	loginMaxTracked = 10000 // bounds the limiter's memory
)

type loginLimiter struct {
	mu  sync.Mutex
	now func() time.Time
	m   map[string]*failWindow
}

type failWindow struct {
	start time.Time
	n     int
}

// reservation is what reserve counted, for refund.
type reservation []*failWindow

func newLoginLimiter(now func() time.Time) *loginLimiter {
	return &loginLimiter{now: now, m: map[string]*failWindow{}}
}

// reserve admits one attempt and counts it against every key at once, or
// returns how long the longest-blocked key must wait.
func (l *loginLimiter) reserve(keys ...string) (reservation, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var wait time.Duration
	for _, k := range keys {
		w := l.m[k]
		if w != nil && now.Sub(w.start) < loginWindow && w.n >= loginFailures {
			wait = max(wait, w.start.Add(loginWindow).Sub(now))
		}
	}
	if wait > 0 {
		return nil, wait
	}
	res := make(reservation, 0, len(keys))
	for _, k := range keys {
		w := l.m[k]
		if w == nil || now.Sub(w.start) >= loginWindow {
			if w == nil && len(l.m) >= loginMaxTracked {
				l.evict(now)
			}
			w = &failWindow{start: now}
			l.m[k] = w
		}
		w.n++
		res = append(res, w)
	}
	return res, 0
}

// refund gives back an attempt that did not fail (a success, or a check
// that never ran).
func (l *loginLimiter) refund(res reservation) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, w := range res {
		if w.n > 0 {
			w.n--
		}
	}
}

// evict drops expired windows, and when none has expired, one arbitrary
// entry, so the map never grows past loginMaxTracked.
func (l *loginLimiter) evict(now time.Time) {
	for k, w := range l.m {
		if now.Sub(w.start) >= loginWindow {
			delete(l.m, k)
		}
	}
	for k := range l.m {
		if len(l.m) < loginMaxTracked {
			break
		}
		delete(l.m, k)
	}
}

func (l *loginLimiter) reset(key string) {
	l.mu.Lock()
	delete(l.m, key)
	l.mu.Unlock()
}
