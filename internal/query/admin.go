package query

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"github.com/carehub/carehub/alerts/escalation"
	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/internal/audit"
	"github.com/carehub/carehub/internal/catalog"
)

// ChainSource reads escalation chains (escalation.Store).
type ChainSource interface {
	Chain(ctx context.Context, residentID string) (escalation.Chain, error)
}

// AuditReader answers audit trail queries (audit.Log).
type AuditReader interface {
	Query(ctx context.Context, q audit.Query) (audit.Result, error)
}

// SettingsETag is the strong ETag of a resident's rule settings: the store
// keeps no revision a client could see, and equal content is the same
// representation. GET and PUT /residents/{id}/settings and the console's
// settings page send it; PUT's If-Match compares against it.
func SettingsETag(st rules.Settings) string {
	b, _ := json.Marshal(st)
	h := sha256.Sum256(b)
	return `"` + hex.EncodeToString(h[:12]) + `"`
}

// Settings is GET /residents/{id}/settings: the resident's rule settings
// (the defaults when none are stored), audited as settings.read.
func (s *Service) Settings(ctx context.Context, p Principal, residentID string) (rules.Settings, error) {
	if _, err := s.Visible(p, residentID); err != nil {
		return rules.Settings{}, err
	}
	if s.RuleSettings == nil {
		return rules.Settings{}, ErrUnavailable
	}
	if err := s.Record(ctx, p, audit.Entry{ResidentID: residentID, Action: "settings.read"}); err != nil {
		return rules.Settings{}, err
	}
	return s.RuleSettings.Settings(residentID), nil
}

// Chain is GET /residents/{id}/escalation: the resident's escalation chain
// (the default one when none is stored), audited as escalation.read.
func (s *Service) Chain(ctx context.Context, p Principal, residentID string) (escalation.Chain, error) {
	if _, err := s.Visible(p, residentID); err != nil {
		return escalation.Chain{}, err
	}
	if s.Chains == nil {
		return escalation.Chain{}, ErrUnavailable
	}
	if err := s.Record(ctx, p, audit.Entry{ResidentID: residentID, Action: "escalation.read"}); err != nil {
		return escalation.Chain{}, err
	}
	return s.Chains.Chain(ctx, residentID)
}

// AuditTrail is GET /audit for an already validated query: admins only
// (anyone else gets ErrNotFound), audited as audit.read naming the
// resident asked about, if any.
func (s *Service) AuditTrail(ctx context.Context, p Principal, q audit.Query) (audit.Result, error) {
	if p.Role != RoleAdmin || (q.ResidentID != "" && !catalog.ValidID(q.ResidentID)) {
		return audit.Result{}, ErrNotFound
	}
	if s.AuditLog == nil {
		return audit.Result{}, ErrUnavailable
	}
	if err := s.Record(ctx, p, audit.Entry{ResidentID: q.ResidentID, Action: "audit.read"}); err != nil {
		return audit.Result{}, err
	}
	return s.AuditLog.Query(ctx, q)
}
