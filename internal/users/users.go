// Package users keeps carehub's people who use the API (contract §4 roles:
// admin, coordinator, caregiver) and their bearer tokens in NATS KV: users
// in care_users, tokens in care_tokens. A token is 32 random bytes shown
// once; only its SHA-256 is stored, so a copy of the bucket logs nobody in.
package users

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/crypto/bcrypt"

	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/kv"
	"github.com/carehub/carehub/internal/model"
)

// Roles (contract §4).
const (
	RoleAdmin       = "admin"
	RoleCoordinator = "coordinator"
	RoleCaregiver   = "caregiver"
)

// DefaultTokenTTL is how long a login lasts: one care worker's shift
// (12 h), so a lost phone's session dies by the next shift.
const DefaultTokenTTL = 12 * time.Hour

// MaxTokenTTL bounds any token's life; it is also the token bucket's
// MaxAge, so an expired token's record disappears by itself.
const MaxTokenTTL = 30 * 24 * time.Hour

// bcryptCost is the work factor of password hashes: about 50 ms on one core,
// paid once per login (logins are rate limited by the API).
const bcryptCost = bcrypt.DefaultCost

// minPasswordRunes is the shortest accepted password (NIST SP 800-63B §5.1.1.2: at least 8).
const minPasswordRunes = 8

// maxPasswordBytes is bcrypt's input limit; longer passwords are refused
// rather than silently truncated.
const maxPasswordBytes = 72

// maxNameRunes bounds a user's display name.
const maxNameRunes = 200

// Errors; the API maps them to 404, 409, 422 and 401.
var (
	ErrNotFound     = errors.New("user not found")
	ErrConflict     = errors.New("user already exists")
	ErrInvalid      = errors.New("invalid user")
	ErrUnauthorized = errors.New("invalid credentials")
	// ErrBusy: too many password hashes in progress; the caller waited
	// longer than the store's hash wait. The API answers 503.
	ErrBusy = errors.New("too many password checks in progress")
)

// User is one person with API access. Name is personal data: never logged.
type User struct {
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	Role         string   `json:"role"`
	PasswordHash string   `json:"password_hash,omitempty"`
	ResidentIDs  []string `json:"resident_ids"`
	// TokensNotBefore revokes every token issued before it (admin "log this
	// user out everywhere").
	TokensNotBefore time.Time `json:"tokens_not_before"`
	// Disabled locks a departed or suspended user out: no login, no token,
	// no open stream. Unlike a revocation it survives the next login.
	Disabled bool `json:"disabled,omitempty"`
	// Epoch is random per created account and copied into its tokens, so a
	// token of a deleted user never works for a new user of the same id.
	Epoch     string    `json:"epoch,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Assigned reports whether a caregiver is assigned residentID.
func (u User) Assigned(residentID string) bool { return slices.Contains(u.ResidentIDs, residentID) }

// token is what care_tokens holds under the hex SHA-256 of a token.
type token struct {
	UserID    string    `json:"user_id"`
	UserEpoch string    `json:"user_epoch,omitempty"`
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Store is the users and tokens store.
type Store struct {
	users  jetstream.KeyValue
	tokens jetstream.KeyValue
	now    func() time.Time
	// dummyHash is compared against when a login names an unknown user, so
	// the answer takes as long as for a known one (no user enumeration).
	dummyHash []byte
	// hashSlots bounds concurrent bcrypt work (about 50 ms of one core
	// each), so a flood of logins cannot take every core from alerting.
	hashSlots chan struct{}
	hashWait  time.Duration
}

// DefaultHashWait is how long a login waits for a free hashing slot before
// it is refused with ErrBusy.
const DefaultHashWait = 2 * time.Second

// LimitHashing sets how many password hashes may run at once (n, at least
// 1) and how long a caller waits for a slot. Call it before serving.
func (s *Store) LimitHashing(n int, wait time.Duration) {
	s.hashSlots = make(chan struct{}, max(n, 1))
	if wait > 0 {
		s.hashWait = wait
	}
}

// withHashSlot runs f while holding one hashing slot, or returns ErrBusy
// when none frees up within hashWait.
func (s *Store) withHashSlot(ctx context.Context, f func() error) error {
	t := time.NewTimer(s.hashWait)
	defer t.Stop()
	select {
	case s.hashSlots <- struct{}{}:
	case <-t.C:
		return ErrBusy
	case <-ctx.Done():
		return ErrBusy
	}
	defer func() { <-s.hashSlots }()
	return f()
}

// Open binds to (or creates) the buckets.
func Open(ctx context.Context, js jetstream.JetStream, now func() time.Time) (*Store, error) {
	if now == nil {
		now = time.Now
	}
	users, err := kv.Open(ctx, js, kv.Bucket{Name: model.BucketUsers, Description: "API users: role, password hash, assigned residents",
		History: 5})
	if err != nil {
		return nil, err
	}
	tokens, err := kv.Open(ctx, js, kv.Bucket{Name: model.BucketTokens, Description: "SHA-256 of API bearer tokens with user and expiry",
		History: 1, TTL: MaxTokenTTL})
	if err != nil {
		return nil, err
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("not-a-password-of-anyone"), bcryptCost)
	if err != nil {
		return nil, err
	}
	st := &Store{users: users, tokens: tokens, now: now, dummyHash: dummy, hashWait: DefaultHashWait}
	st.LimitHashing(runtime.GOMAXPROCS(0), DefaultHashWait)
	return st, nil
}

// NewUser is what Create takes.
type NewUser struct {
	ID       string // empty: generated ("u-...")
	Name     string
	Role     string
	Password string // empty: token login only
}

// ValidRole reports whether r is a contract role.
func ValidRole(r string) bool {
	return r == RoleAdmin || r == RoleCoordinator || r == RoleCaregiver
}

// Create stores a new user. An existing id is ErrConflict.
func (s *Store) Create(ctx context.Context, n NewUser) (User, error) {
	if n.ID != "" && !catalog.ValidID(n.ID) {
		return User{}, fmt.Errorf("%w: id %q does not match ^[a-z0-9][a-z0-9_-]{0,63}$", ErrInvalid, n.ID)
	}
	if strings.TrimSpace(n.Name) == "" || !utf8.ValidString(n.Name) || utf8.RuneCountInString(n.Name) > maxNameRunes {
		return User{}, fmt.Errorf("%w: name is required (at most %d characters)", ErrInvalid, maxNameRunes)
	}
	if !ValidRole(n.Role) {
		return User{}, fmt.Errorf("%w: role %q is not one of admin, coordinator, caregiver", ErrInvalid, n.Role)
	}
	now := s.now().UTC()
	u := User{ID: n.ID, Name: n.Name, Role: n.Role, ResidentIDs: []string{}, Epoch: randomHex(8), CreatedAt: now, UpdatedAt: now}
	if n.Password != "" {
		h, err := s.hashPassword(ctx, n.Password)
		if err != nil {
			return User{}, err
		}
		u.PasswordHash = h
	}
	generated := u.ID == ""
	for range 5 {
		if generated {
			u.ID = "u-" + randomHex(6)
		}
		b, err := json.Marshal(u)
		if err != nil {
			return User{}, err
		}
		_, err = s.users.Create(ctx, u.ID, b)
		if errors.Is(err, jetstream.ErrKeyExists) {
			if generated {
				continue
			}
			return User{}, fmt.Errorf("%w: %s", ErrConflict, u.ID)
		}
		if err != nil {
			return User{}, fmt.Errorf("store user: %w", err)
		}
		return u, nil
	}
	return User{}, fmt.Errorf("%w: could not generate a free id", ErrConflict)
}

func (s *Store) hashPassword(ctx context.Context, p string) (string, error) {
	if utf8.RuneCountInString(p) < minPasswordRunes {
		return "", fmt.Errorf("%w: password must have at least %d characters", ErrInvalid, minPasswordRunes)
	}
	if len(p) > maxPasswordBytes {
		return "", fmt.Errorf("%w: password longer than %d bytes", ErrInvalid, maxPasswordBytes)
	}
	var h []byte
	err := s.withHashSlot(ctx, func() (err error) {
		h, err = bcrypt.GenerateFromPassword([]byte(p), bcryptCost)
		return err
	})
	if err != nil {
		return "", err
	}
	return string(h), nil
}

// Get returns a user.
func (s *Store) Get(ctx context.Context, id string) (User, error) {
	u, _, err := s.get(ctx, id)
	return u, err
}

func (s *Store) get(ctx context.Context, id string) (User, uint64, error) {
	if !catalog.ValidID(id) {
		return User{}, 0, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	e, err := s.users.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return User{}, 0, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return User{}, 0, fmt.Errorf("read user: %w", err)
	}
	var u User
	if err := json.Unmarshal(e.Value(), &u); err != nil {
		return User{}, 0, fmt.Errorf("read user %s: %w", id, err)
	}
	return u, e.Revision(), nil
}

// List returns every user, sorted by id, without password hashes (nobody
// who lists users needs them). role, when not empty, keeps that role only.
func (s *Store) List(ctx context.Context, role string) ([]User, error) {
	keys, err := s.users.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer func() { _ = keys.Stop() }()
	out := []User{}
	for id := range keys.Keys() {
		u, err := s.Get(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue // deleted since the key was listed
		}
		if err != nil {
			return nil, err
		}
		if role != "" && u.Role != role {
			continue
		}
		u.PasswordHash = ""
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b User) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// update applies change on the latest revision, retrying on a concurrent write.
func (s *Store) update(ctx context.Context, id string, change func(*User) error) (User, error) {
	for range 5 {
		u, rev, err := s.get(ctx, id)
		if err != nil {
			return User{}, err
		}
		if err := change(&u); err != nil {
			return User{}, err
		}
		u.UpdatedAt = s.now().UTC()
		b, err := json.Marshal(u)
		if err != nil {
			return User{}, err
		}
		_, err = s.users.Update(ctx, id, b, rev)
		if err == nil {
			return u, nil
		}
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) || apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence {
			return User{}, fmt.Errorf("update user: %w", err)
		}
	}
	return User{}, fmt.Errorf("%w: user %s keeps changing; retry", ErrConflict, id)
}

// SetResidents replaces a caregiver's assigned residents.
func (s *Store) SetResidents(ctx context.Context, id string, residentIDs []string) (User, error) {
	ids := slices.Clone(residentIDs)
	for _, r := range ids {
		if !catalog.ValidID(r) {
			return User{}, fmt.Errorf("%w: resident id %q", ErrInvalid, r)
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if ids == nil {
		ids = []string{}
	}
	return s.update(ctx, id, func(u *User) error {
		if u.Role != RoleCaregiver {
			return fmt.Errorf("%w: only a caregiver is assigned residents; %s is %s", ErrInvalid, u.ID, u.Role)
		}
		u.ResidentIDs = ids
		return nil
	})
}

// RemoveResident takes an erased resident off every caregiver's assignment
// list and returns how many lists changed.
func (s *Store) RemoveResident(ctx context.Context, residentID string) (int, error) {
	keys, err := s.users.ListKeys(ctx)
	if err != nil {
		return 0, fmt.Errorf("list users: %w", err)
	}
	defer func() { _ = keys.Stop() }()
	changed := 0
	for id := range keys.Keys() {
		u, err := s.Get(ctx, id)
		if err != nil || !u.Assigned(residentID) {
			continue
		}
		if _, err := s.update(ctx, id, func(u *User) error {
			u.ResidentIDs = slices.DeleteFunc(u.ResidentIDs, func(r string) bool { return r == residentID })
			return nil
		}); err != nil {
			return changed, err
		}
		changed++
	}
	return changed, nil
}

// RevokeAll invalidates every token the user holds now.
func (s *Store) RevokeAll(ctx context.Context, id string) error {
	_, err := s.update(ctx, id, func(u *User) error {
		u.TokensNotBefore = s.now().UTC()
		return nil
	})
	return err
}

// SetDisabled disables or re-enables a user. Disabling also revokes every
// token the user holds, so re-enabling does not bring old sessions back.
func (s *Store) SetDisabled(ctx context.Context, id string, disabled bool) (User, error) {
	return s.update(ctx, id, func(u *User) error {
		u.Disabled = disabled
		if disabled {
			u.TokensNotBefore = s.now().UTC()
		}
		return nil
	})
}

// SetRole changes a user's role. Leaving the caregiver role drops the
// assignment list (only caregivers have one); tokens stay valid and take
// the new role at their next request.
func (s *Store) SetRole(ctx context.Context, id, role string) (User, error) {
	if !ValidRole(role) {
		return User{}, fmt.Errorf("%w: role %q is not one of admin, coordinator, caregiver", ErrInvalid, role)
	}
	return s.update(ctx, id, func(u *User) error {
		if u.Role != role {
			u.ResidentIDs = []string{}
		}
		u.Role = role
		return nil
	})
}

// SetPassword replaces a user's password (an admin reset) and revokes every
// token the user holds: whoever knew the old password is logged out.
func (s *Store) SetPassword(ctx context.Context, id, password string) (User, error) {
	if _, err := s.Get(ctx, id); err != nil {
		return User{}, err // before paying for a hash
	}
	h, err := s.hashPassword(ctx, password)
	if err != nil {
		return User{}, err
	}
	return s.update(ctx, id, func(u *User) error {
		u.PasswordHash = h
		u.TokensNotBefore = s.now().UTC()
		return nil
	})
}

// Delete removes a user and its history (the name is personal data). Its
// tokens stop working at once: they name a user that no longer exists, and
// a later user of the same id has another Epoch.
func (s *Store) Delete(ctx context.Context, id string) error {
	if _, err := s.Get(ctx, id); err != nil {
		return err
	}
	if err := s.users.Purge(ctx, id); err != nil {
		return fmt.Errorf("delete user: %w", err)
	}
	return nil
}

// Issue creates a token for a user valid for ttl (0 = DefaultTokenTTL).
func (s *Store) Issue(ctx context.Context, userID string, ttl time.Duration) (string, time.Time, error) {
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	ttl = min(ttl, MaxTokenTTL)
	u, err := s.Get(ctx, userID)
	if err != nil {
		return "", time.Time{}, err
	}
	if u.Disabled {
		return "", time.Time{}, ErrUnauthorized
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", time.Time{}, err
	}
	tok := base64.RawURLEncoding.EncodeToString(raw[:])
	now := s.now().UTC()
	t := token{UserID: userID, UserEpoch: u.Epoch, IssuedAt: now, ExpiresAt: now.Add(ttl)}
	b, err := json.Marshal(t)
	if err != nil {
		return "", time.Time{}, err
	}
	if _, err := s.tokens.Put(ctx, tokenKey(tok), b); err != nil {
		return "", time.Time{}, fmt.Errorf("store token: %w", err)
	}
	return tok, t.ExpiresAt, nil
}

// tokenKey is the KV key of a token: its SHA-256 in hex. The token has 256
// random bits, so a fast hash is enough (nothing to brute-force).
func tokenKey(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// Login checks a user's password and issues a token. Every failure is
// ErrUnauthorized, whether the user is unknown or the password wrong.
func (s *Store) Login(ctx context.Context, id, password string) (string, time.Time, error) {
	u, err := s.Get(ctx, id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return "", time.Time{}, err
	}
	hash := s.dummyHash
	if err == nil && u.PasswordHash != "" {
		hash = []byte(u.PasswordHash)
	}
	var ok bool
	if herr := s.withHashSlot(ctx, func() error {
		ok = bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
		return nil
	}); herr != nil {
		return "", time.Time{}, herr
	}
	// A disabled user's right password is refused like a wrong one, after
	// the same work, so the answer does not tell an attacker it was right.
	if err != nil || u.PasswordHash == "" || !ok || u.Disabled {
		return "", time.Time{}, ErrUnauthorized
	}
	return s.Issue(ctx, u.ID, DefaultTokenTTL)
}

// Authenticate returns the user a token belongs to, or ErrUnauthorized when
// it is unknown, expired or revoked.
func (s *Store) Authenticate(ctx context.Context, tok string) (User, error) {
	if tok == "" || len(tok) > 256 {
		return User{}, ErrUnauthorized
	}
	e, err := s.tokens.Get(ctx, tokenKey(tok))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return User{}, ErrUnauthorized
	}
	if err != nil {
		return User{}, fmt.Errorf("read token: %w", err)
	}
	var t token
	if err := json.Unmarshal(e.Value(), &t); err != nil {
		return User{}, ErrUnauthorized
	}
	if !s.now().Before(t.ExpiresAt) {
		return User{}, ErrUnauthorized
	}
	u, err := s.Get(ctx, t.UserID)
	if errors.Is(err, ErrNotFound) {
		return User{}, ErrUnauthorized
	}
	if err != nil {
		return User{}, err
	}
	if !u.TokensNotBefore.IsZero() && !t.IssuedAt.After(u.TokensNotBefore) {
		return User{}, ErrUnauthorized
	}
	if u.Disabled || t.UserEpoch != u.Epoch {
		return User{}, ErrUnauthorized
	}
	return u, nil
}

// Revoke deletes one token (logout).
func (s *Store) Revoke(ctx context.Context, tok string) error {
	if err := s.tokens.Delete(ctx, tokenKey(tok)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("revoke token: %w", err)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
