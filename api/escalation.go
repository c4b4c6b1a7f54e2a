package api

import (
	"context"

	"github.com/carehub/carehub/alerts/escalation"
	"github.com/gofiber/fiber/v2"
)

// ChainStore is what the API needs of escalation.Store.
type ChainStore interface {
	Chain(ctx context.Context, residentID string) (escalation.Chain, error)
	Put(ctx context.Context, ch escalation.Chain) error
}

// getChain: GET /residents/{id}/escalation → the escalation chain (the
// default one when none is stored); through the query layer, as the
// console's chain page reads it.
func (s *Server) getChain(c *fiber.Ctx) error {
	if s.o.Chains == nil {
		return ErrUnavailable.with("escalation chains are not configured on this instance")
	}
	q, p := s.query(c)
	ch, err := q.Chain(c.UserContext(), p, c.Params("id"))
	if err != nil {
		return queryError(err, "no resident "+truncate(c.Params("id"), 64))
	}
	return c.JSON(ch)
}

type chainBody struct {
	Tiers []escalation.Tier `json:"tiers"`
}

// putChain: PUT /residents/{id}/escalation {"tiers": [...]} (staff).
func (s *Server) putChain(c *fiber.Ctx) error {
	if s.o.Chains == nil {
		return ErrUnavailable.with("escalation chains are not configured on this instance")
	}
	r, err := s.visibleResident(c)
	if err != nil {
		return err
	}
	var b chainBody
	if err := decode(c, &b); err != nil {
		return err
	}
	ch := escalation.Chain{ResidentID: r.ID, Tiers: b.Tiers}
	if err := ch.Validate(); err != nil {
		return invalidFields("invalid_chain", err)
	}
	if err := s.audit(c, r.ID, "escalation.update", ""); err != nil {
		return err
	}
	if err := s.o.Chains.Put(c.UserContext(), ch); err != nil {
		return alertError(err, "invalid_chain")
	}
	return c.JSON(ch)
}
