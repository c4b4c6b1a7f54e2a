package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/users"
)

// UserStore is what the API needs of internal/users.Store.
type UserStore interface {
	Create(ctx context.Context, n users.NewUser) (users.User, error)
	Get(ctx context.Context, id string) (users.User, error)
	List(ctx context.Context, role string) ([]users.User, error)
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

type usersList struct {
	Users []userView `json:"users"`
}

// listUsers: GET /users?role= → {"users": [...]} sorted by id, without
// secrets. Admins list everyone (role filters). Coordinators list
// caregivers only, which is what they need to assign residents (PUT
// /users/{id}/residents is theirs too); asking for another role is 403.
// Not paged: a care centre has tens to hundreds of staff. Not audited, as
// GET /users/{id} is not: it shows no resident's data beyond assignment ids.
func (s *Server) listUsers(c *fiber.Ctx) error {
	if err := s.needUsers(); err != nil {
		return err
	}
	role := c.Query("role")
	if role != "" && !users.ValidRole(role) {
		return invalid("invalid_field", "role must be admin, coordinator or caregiver")
	}
	if principal(c).Role != RoleAdmin {
		if role != "" && role != users.RoleCaregiver {
			return ErrForbidden
		}
		role = users.RoleCaregiver
	}
	list, err := s.o.Users.List(c.UserContext(), role)
	if err != nil {
		return userError(err)
	}
	out := usersList{Users: make([]userView, len(list))}
	for i, u := range list {
		out.Users[i] = viewUser(u)
	}
	return c.JSON(out)
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
