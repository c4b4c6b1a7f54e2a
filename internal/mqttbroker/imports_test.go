package mqttbroker

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestNoDeviceRegistry keeps the broker apart from the registry (issue 11):
// it is given an Authenticator that tells a refusal's reason, and reports
// with model's reasons, so it needs nothing of package devices.
func TestNoDeviceRegistry(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if slices.Contains(deps, "github.com/carehub/carehub/devices") {
		t.Error("internal/mqttbroker depends on github.com/carehub/carehub/devices")
	}
}
