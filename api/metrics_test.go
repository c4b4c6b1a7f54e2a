package api_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestMetricsEndpoint: GET /metrics answers the Prometheus text format with
// the HTTP families the server registers, as dashboards read them.
func TestMetricsEndpoint(t *testing.T) {
	h := newHarness(t, nil)
	h.expect(http.StatusOK, "GET", "/healthz", "", nil, nil)
	h.expect(http.StatusOK, "GET", "/api/v1/healthz", "", nil, nil)
	status, hdr, body := h.call("GET", "/metrics", "", nil, nil)
	if status != http.StatusOK {
		t.Fatalf("GET /metrics = %d: %s", status, body)
	}
	if ct := hdr.Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	text := string(body)
	for _, want := range []string{
		"# HELP carehub_http_requests_total HTTP requests by route and status class.\n# TYPE carehub_http_requests_total counter\n",
		`carehub_http_requests_total{route="/healthz",status="2xx"} 1` + "\n",
		`carehub_http_requests_total{route="/api/v1/healthz",status="2xx"} 1` + "\n",
		"# TYPE carehub_http_request_seconds histogram\n",
		`carehub_http_request_seconds_bucket{route="/healthz",le="0.001"} `,
		`carehub_http_request_seconds_bucket{route="/healthz",le="+Inf"} 1` + "\n",
		`carehub_http_request_seconds_count{route="/healthz"} 1` + "\n",
		`carehub_http_request_seconds_sum{route="/healthz"} `,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, text)
		}
	}
}
