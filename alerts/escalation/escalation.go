// Package escalation holds who is told about a resident's alerts, tier by
// tier (domain.md: caregiver → backup → coordinator → guardian → 119), and
// where those chains are kept (the care_assignments bucket).
package escalation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/kv"
	"github.com/carehub/carehub/internal/model"
)

// Escalation roles, in the order domain.md walks them: assigned caregiver →
// on-call backup → center nurse/coordinator → guardian → 119.
const (
	RoleCaregiver   = "caregiver"
	RoleBackup      = "backup"
	RoleCoordinator = "coordinator"
	RoleGuardian    = "guardian"
	RoleEmergency   = "emergency"
)

var validRoles = map[string]bool{
	RoleCaregiver: true, RoleBackup: true, RoleCoordinator: true, RoleGuardian: true, RoleEmergency: true,
}

// Tier is one step of a resident's escalation chain: who is notified when
// the alert reaches it. The emergency tier has no users: reaching it means
// publishing to model.EmergencySubject.
type Tier struct {
	Role    string   `json:"role"`
	UserIDs []string `json:"user_ids"`
}

// Chain is who is told about a resident's alerts, tier by tier.
// Escalation level n means tiers 1..n have been notified.
type Chain struct {
	ResidentID string `json:"resident_id"`
	Tiers      []Tier `json:"tiers"`
}

// Default is used for a resident without a stored chain: every role in
// domain.md's order, nobody named yet. Levels still advance so the alert
// reaches 119 on time even when assignments are missing.
func Default(residentID string) Chain {
	return Chain{ResidentID: residentID, Tiers: []Tier{
		{Role: RoleCaregiver}, {Role: RoleBackup}, {Role: RoleCoordinator}, {Role: RoleGuardian}, {Role: RoleEmergency},
	}}
}

// Validate checks ids and roles, and that the emergency tier, if present, is
// the last one (119 is the last resort, domain.md).
func (c Chain) Validate() error {
	if !catalog.ValidID(c.ResidentID) {
		return fmt.Errorf("%w: resident_id %q", ErrInvalid, c.ResidentID)
	}
	if len(c.Tiers) == 0 {
		return invalid("tiers", "an escalation chain needs at least one tier")
	}
	for i, t := range c.Tiers {
		if !validRoles[t.Role] {
			return invalid(fmt.Sprintf("tiers.%d.role", i), "%q is not one of caregiver, backup, coordinator, guardian, emergency", t.Role)
		}
		if t.Role == RoleEmergency && i != len(c.Tiers)-1 {
			return invalid(fmt.Sprintf("tiers.%d.role", i), "the emergency tier must be the last one")
		}
		for _, u := range t.UserIDs {
			if !catalog.ValidID(u) {
				return invalid(fmt.Sprintf("tiers.%d.user_ids", i), "%q is not a user id", u)
			}
		}
	}
	return nil
}

// invalid is ErrInvalid with the field at fault (rules.Problem), for a
// client to point at and translate: "tiers.2.role: ...".
func invalid(field, reason string, args ...any) error {
	return fmt.Errorf("%w: %w", ErrInvalid, rules.Problem{Field: field, Reason: reason, Args: args})
}

// Store keeps escalation chains in the care_assignments KV bucket.
type Store struct{ kv jetstream.KeyValue }

// Open binds to (or creates) the care_assignments bucket.
func Open(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	bucket, err := kv.Open(ctx, js, kv.Bucket{Name: model.BucketAssignments, Description: "escalation chain per resident", History: 5})
	if err != nil {
		return nil, err
	}
	return &Store{kv: bucket}, nil
}

// Chain returns the stored chain, or Default when none is stored.
func (c *Store) Chain(ctx context.Context, residentID string) (Chain, error) {
	e, err := c.kv.Get(ctx, residentID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Default(residentID), nil
	}
	if err != nil {
		return Chain{}, fmt.Errorf("escalation chain of %s: %w", residentID, err)
	}
	var ch Chain
	if err := json.Unmarshal(e.Value(), &ch); err != nil {
		return Chain{}, fmt.Errorf("escalation chain of %s: %w", residentID, err)
	}
	if len(ch.Tiers) == 0 {
		return Default(residentID), nil
	}
	return ch, nil
}

// Put stores a resident's chain after validating it.
func (c *Store) Put(ctx context.Context, ch Chain) error {
	if err := ch.Validate(); err != nil {
		return err
	}
	b, err := json.Marshal(ch)
	if err != nil {
		return err
	}
	_, err = c.kv.Put(ctx, ch.ResidentID, b)
	return err
}

// ErrInvalid is returned for a chain that does not validate; the alert
// lifecycle's alerts.ErrInvalid is the same error.
var ErrInvalid = errors.New("invalid alert request")

// Erase removes a resident's escalation chain with all its stored revisions
// (the bucket keeps 5): the chain names their caregivers and guardian.
func (c *Store) Erase(ctx context.Context, residentID string) error {
	if err := c.kv.Purge(ctx, residentID); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("purge escalation chain of %s: %w", residentID, err)
	}
	return nil
}
