package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/carehub/carehub/api"
)

// /readyz names the failed checks but never their errors: those quote
// internal addresses and, in a careless URL, credentials.
func TestReadyzHidesErrors(t *testing.T) {
	h := newHarness(t, func(o *api.Options) {
		o.Ready = map[string]api.Check{
			"influxdb": func(context.Context) error {
				return errors.New(`Get "http://admin:hunter2@10.20.30.40:8086/ping": dial tcp 10.20.30.40:8086: connection refused`)
			},
			"nats": func(context.Context) error { return nil },
		}
	})
	code, _, body := h.call("GET", "/readyz", "", nil, nil)
	if code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz: HTTP %d, want 503", code)
	}
	for _, leak := range []string{"hunter2", "10.20.30.40", "8086", "admin"} {
		if strings.Contains(string(body), leak) {
			t.Errorf("/readyz reveals %q: %s", leak, body)
		}
	}
	var r struct {
		Failed []string          `json:"failed"`
		Checks map[string]string `json:"checks"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Failed) != 1 || r.Failed[0] != "influxdb" || r.Checks["influxdb"] != "failed" || r.Checks["nats"] != "ok" {
		t.Fatalf("/readyz answer %s: want influxdb named as failed, nats ok", body)
	}
}
