package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
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
	ResidentIDs []string  `json:"resident_ids"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func viewUser(u users.User) userView {
	return userView{ID: u.ID, Name: u.Name, Role: u.Role, ResidentIDs: u.ResidentIDs, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
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
	s.log.Info().Str("user_id", c.Params("id")).Str("by", principal(c).ID).Msg("user tokens revoked")
	return c.SendStatus(http.StatusNoContent)
}

type loginBody struct {
	ID       string `json:"id"`
	Password string `json:"password"`
}

// login: POST /auth/login {"id", "password"} → {"token", "expires_at"}.
// Failures are rate limited per user id and per source address, so neither
// one account nor one client can guess passwords quickly.
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
	keys := []string{"user:" + truncate(b.ID, 64), "ip:" + c.IP()}
	if wait := s.logins.blocked(keys...); wait > 0 {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		return ErrRateLimited.with("too many failed logins; retry after " + wait.Round(time.Second).String())
	}
	tok, exp, err := s.o.Users.Login(c.UserContext(), b.ID, b.Password)
	if errors.Is(err, users.ErrUnauthorized) {
		s.logins.fail(keys...)
		ev := s.log.Info().Str("source", c.IP())
		if catalog.ValidID(b.ID) { // anything else may be a mistyped password: not logged
			ev = ev.Str("user_id", b.ID)
		}
		ev.Msg("login failed")
		_ = s.auditLogin(c, b.ID, OutcomeDenied, "wrong user id or password") // logged if it fails; the answer stays 401
		return ErrUnauthorized.with("wrong user id or password")
	}
	if err != nil {
		return err
	}
	if err := s.auditLogin(c, b.ID, OutcomeOK, ""); err != nil {
		// An unaudited login must not hand out a working token.
		if rerr := s.o.Users.Revoke(c.UserContext(), tok); rerr != nil {
			s.log.Error().Err(rerr).Msg("revoking the token of an unaudited login failed")
		}
		return err
	}
	s.logins.reset(keys[0])
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(fiber.Map{"token": tok, "expires_at": exp.UTC().Format(time.RFC3339)})
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

// Login rate limiting: at most loginFailures failed logins per key (a user
// id, a source address) within loginWindow; then 429 until the window ends.
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

func newLoginLimiter(now func() time.Time) *loginLimiter {
	return &loginLimiter{now: now, m: map[string]*failWindow{}}
}

// blocked returns how long the longest-blocked key must wait, 0 if none is.
func (l *loginLimiter) blocked(keys ...string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var wait time.Duration
	for _, k := range keys {
		w := l.m[k]
		if w == nil || now.Sub(w.start) >= loginWindow {
			continue
		}
		if w.n >= loginFailures {
			wait = max(wait, w.start.Add(loginWindow).Sub(now))
		}
	}
	return wait
}

func (l *loginLimiter) fail(keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
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
