package api

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/carehub/carehub/devices"
)

// A registry change the external broker did not take is a 503 the caller
// may repeat, not a 500.
func TestRegistryErrorBroker(t *testing.T) {
	var e *Error
	if err := registryError(fmt.Errorf("%w: broker down", devices.ErrBroker)); !errors.As(err, &e) || e.Status != http.StatusServiceUnavailable {
		t.Fatalf("registryError(ErrBroker) = %v, want a 503", err)
	}
}
