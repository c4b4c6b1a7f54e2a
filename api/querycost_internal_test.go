package api

import (
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/metrics"
)

// TestQueryConcurrencyCap: while MaxQueries InfluxDB-backed queries run,
// one more waits briefly and is then refused with 429 rate_limited and
// Retry-After, before it reaches the store (or the registry).
func TestQueryConcurrencyCap(t *testing.T) {
	const token = "admin-test-token-0123456789abcdef"
	s := New(Options{Metrics: metrics.New(), AdminToken: token, Log: zerolog.Nop(), MaxQueries: 2})
	s.queries.slots <- struct{}{}
	s.queries.slots <- struct{}{} // two queries running
	req := httptest.NewRequest("GET", "/api/v1/overview", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	start := time.Now()
	resp, err := s.App().Test(req, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ Error Error }
	_ = json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != 429 || body.Error.Code != "rate_limited" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("query over the cap: %d %+v", resp.StatusCode, body)
	}
	if waited := time.Since(start); waited < queryWait {
		t.Fatalf("refused after %s, before waiting %s for a slot", waited, queryWait)
	}
}
