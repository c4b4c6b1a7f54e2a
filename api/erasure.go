package api

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/internal/erasure"
)

// ResidentEraser erases a resident's data everywhere (erasure.Eraser).
type ResidentEraser interface {
	Erase(ctx context.Context, residentID string) (erasure.Result, error)
}

// erasureTimeout bounds one erasure: InfluxDB's DROP SERIES rewrites the
// index and can take seconds on a large database.
const erasureTimeout = 2 * time.Minute

type eraseBody struct {
	Reason string `json:"reason"`
}

type erasedCounts struct {
	Devices     int    `json:"devices"`
	Alerts      int    `json:"alerts"`
	Series      string `json:"series"`
	Messages    uint64 `json:"buffered_messages"`
	Assignments int    `json:"caregiver_assignments"`
}

type retainedData struct {
	What  string    `json:"what"`
	Why   string    `json:"why"`
	Until time.Time `json:"until"`
}

type erasureResult struct {
	ResidentID string         `json:"resident_id"`
	Erased     erasedCounts   `json:"erased"`
	Skipped    []string       `json:"skipped,omitempty"`
	Retained   []retainedData `json:"retained"`
	// RetainedUntil is when the last copy of each retained kind is gone.
	RetainedUntil map[string]time.Time `json:"retained_until"`
}

func viewErasure(r erasure.Result) erasureResult {
	out := erasureResult{
		ResidentID: r.ResidentID,
		Erased: erasedCounts{Devices: r.Devices, Alerts: r.Alerts, Series: r.Series,
			Messages: r.Messages, Assignments: r.Assignments},
		Skipped: r.Skipped, Retained: make([]retainedData, len(r.Retained)), RetainedUntil: r.RetainedUntil,
	}
	for i, x := range r.Retained {
		out.Retained[i] = retainedData{What: x.What, Why: x.Why, Until: x.Until}
	}
	return out
}

// eraseResident: DELETE /residents/{id}?reason= (or body {"reason"}) (admin)
// erases a resident's data everywhere (domain.md privacy: erasure per
// resident when the purpose ends; PIPA Art. 21; the steps and their order
// are erasure.Eraser.Erase's). The reason is required (422) and audited
// before anything is erased. Without Options.Erasure the endpoint answers
// 503: an erasure that leaves the readings behind is not one.
func (s *Server) eraseResident(c *fiber.Ctx) error {
	if s.o.Erasure == nil {
		return ErrUnavailable.with("erasure is not configured on this instance (no InfluxDB eraser)")
	}
	r, err := s.visibleResident(c)
	if err != nil {
		return err
	}
	reason := c.Query("reason")
	if reason == "" && len(c.Body()) > 0 {
		var b eraseBody
		if err := decode(c, &b); err != nil {
			return err
		}
		reason = b.Reason
	}
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return invalid("reason_required", "reason is required (query ?reason= or body {\"reason\"}): an erasure is audited with its reason")
	}
	if len(reason) > maxNoteBytes {
		return invalid("reason_required", "reason longer than "+strconv.Itoa(maxNoteBytes)+" bytes")
	}
	if err := s.audit(c, r.ID, "resident.erase", reason); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), erasureTimeout)
	defer cancel()
	res, err := s.o.Erasure.Erase(ctx, r.ID)
	if err != nil {
		s.log.Error().Err(err).Str("resident_id", r.ID).Msg("erasure incomplete; it can be run again")
		return ErrUnavailable.with("the erasure did not complete (" + truncate(err.Error(), 300) + "); run it again")
	}
	s.log.Info().Str("resident_id", r.ID).Int("devices", res.Devices).Int("alerts", res.Alerts).Msg("resident erased")
	return c.JSON(viewErasure(res))
}
