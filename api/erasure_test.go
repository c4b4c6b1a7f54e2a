package api_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/carehub/carehub/api"
	"github.com/carehub/carehub/internal/erasure"
	"github.com/carehub/carehub/internal/model"
)

// eraserSpy stands in for erasure.Eraser (tested in internal/erasure, and
// end to end in internal/app): these tests are about the endpoint.
type eraserSpy struct {
	erased []string
	fail   error
	at     time.Time
}

func (e *eraserSpy) Erase(_ context.Context, rid string) (erasure.Result, error) {
	e.erased = append(e.erased, rid)
	if e.fail != nil {
		return erasure.Result{ResidentID: rid}, e.fail
	}
	return erasure.Result{ResidentID: rid, Devices: 2, Alerts: 1, Series: "readings,resident_id=" + rid, Messages: 4, Assignments: 1,
		Skipped:       []string{},
		Retained:      []erasure.Retained{{What: "audit trail", Why: "PIPA", Until: e.at}},
		RetainedUntil: map[string]time.Time{model.StreamAudit: e.at}}, nil
}

// TestEraseResident: only an admin may erase (403), a reason is required
// (422), an unknown resident is 404, and none of these erase anything. The
// erasure is audited with its reason and answered with what was erased
// and what is retained; a failed erasure is 503 and says to run it again.
func TestEraseResident(t *testing.T) {
	spy := &eraserSpy{at: time.Date(2028, 12, 3, 0, 0, 0, 0, time.UTC)}
	h := newHarness(t, func(o *api.Options) { o.Erasure = spy })
	start := h.clk.now().Add(-time.Minute)
	h.resident("r1")
	h.resident("r2")

	coord := h.user("coord", "coordinator")
	care := h.user("care", "caregiver", "r1")
	h.expect(http.StatusForbidden, "DELETE", "/api/v1/residents/r1?reason=x", coord, nil, nil)
	h.expect(http.StatusForbidden, "DELETE", "/api/v1/residents/r1?reason=x", care, nil, nil)
	if b := h.expect(422, "DELETE", "/api/v1/residents/r1", adminToken, nil, nil); errCode(b) != "reason_required" {
		t.Fatalf("without reason: %s", b)
	}
	h.expect(422, "DELETE", "/api/v1/residents/r1", adminToken, map[string]any{"reason": "   "}, nil)
	h.expect(http.StatusNotFound, "DELETE", "/api/v1/residents/nobody?reason=x", adminToken, nil, nil)
	if len(spy.erased) != 0 {
		t.Fatalf("a refused erasure erased %v", spy.erased)
	}

	var res struct {
		ResidentID string `json:"resident_id"`
		Erased     struct {
			Devices  int    `json:"devices"`
			Alerts   int    `json:"alerts"`
			Series   string `json:"series"`
			Messages int    `json:"buffered_messages"`
			Assigned int    `json:"caregiver_assignments"`
		} `json:"erased"`
		Skipped  []string `json:"skipped"`
		Retained []struct {
			What  string    `json:"what"`
			Why   string    `json:"why"`
			Until time.Time `json:"until"`
		} `json:"retained"`
		RetainedUntil map[string]time.Time `json:"retained_until"`
	}
	h.expect(http.StatusOK, "DELETE", "/api/v1/residents/r1", adminToken, map[string]any{"reason": "moved to a nursing home; contract ended"}, &res)
	if res.ResidentID != "r1" || res.Erased.Devices != 2 || res.Erased.Alerts != 1 || res.Erased.Messages != 4 ||
		res.Erased.Series != "readings,resident_id=r1" || len(res.Skipped) != 0 || res.Erased.Assigned != 1 ||
		len(res.Retained) != 1 || res.Retained[0].What != "audit trail" || !res.Retained[0].Until.Equal(spy.at) ||
		!res.RetainedUntil[model.StreamAudit].Equal(spy.at) {
		t.Fatalf("answer: %+v", res)
	}
	if !slices.Equal(spy.erased, []string{"r1"}) {
		t.Fatalf("erased %v", spy.erased)
	}

	spy.fail = errors.New("influxdb: timeout")
	if b := h.expect(http.StatusServiceUnavailable, "DELETE", "/api/v1/residents/r2?reason=end", adminToken, nil, nil); errCode(b) != "unavailable" {
		t.Fatalf("failed erasure: %s", b)
	}

	// Audited with the reason, before the erasure ran
	acts := h.auditReasons("r1", start)
	if rs := acts["resident.erase"]; len(rs) != 1 || rs[0] != "moved to a nursing home; contract ended" {
		t.Fatalf("erasure audit: %v", acts)
	}
	// (and its failure recorded after it: audit.go's auditFailure)
	if rs := h.auditReasons("r2", start)["resident.erase"]; len(rs) == 0 || rs[0] != "end" {
		t.Fatalf("failed erasure's audit: %v", rs)
	}
}

// TestEraseResidentNotConfigured: without an eraser the endpoint refuses
// (503) rather than erase half and nothing is touched.
func TestEraseResidentNotConfigured(t *testing.T) {
	h := newHarness(t, nil)
	h.resident("r1")
	if b := h.expect(http.StatusServiceUnavailable, "DELETE", "/api/v1/residents/r1?reason=end", adminToken, nil, nil); errCode(b) != "unavailable" {
		t.Fatalf("answer: %s", b)
	}
	if _, ok := h.reg.Resident("r1"); !ok {
		t.Fatal("resident erased without an eraser")
	}
}
