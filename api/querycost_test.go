package api_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/carehub/carehub/api"
)

// TestQueryRateLimited: each user has a budget of InfluxDB-backed queries;
// past it, 429 rate_limited with Retry-After, while another user still
// gets answers; the budget refills with time.
func TestQueryRateLimited(t *testing.T) {
	h := newHarness(t, func(o *api.Options) { o.QueryRate, o.QueryBurst = 60, 3 })
	h.resident("r1")
	care := h.user("care", "caregiver", "r1")
	q := "/api/v1/residents/r1/readings?metric=heart_rate"
	for range 3 {
		h.expect(http.StatusOK, "GET", q, care, nil, nil)
	}
	code, hdr, b := h.call("GET", q, care, nil, nil)
	if code != http.StatusTooManyRequests || errCode(b) != "rate_limited" {
		t.Fatalf("fourth query: %d %s", code, b)
	}
	if s, err := strconv.Atoi(hdr.Get("Retry-After")); err != nil || s < 1 || s > 2 {
		t.Fatalf("Retry-After %q: one token a second", hdr.Get("Retry-After"))
	}
	h.expect(http.StatusOK, "GET", q, adminToken, nil, nil) // another account
	h.clk.add(time.Second)
	h.expect(http.StatusOK, "GET", q, care, nil, nil)
	h.expect(http.StatusTooManyRequests, "GET", q, care, nil, nil)
}
