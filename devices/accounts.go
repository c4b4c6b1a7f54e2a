package devices

import (
	"context"
	"errors"
	"fmt"
)

// ErrBroker is a change the registry made that the external broker did
// not take (internal/dynsec): the API answers 503 and the caller may
// repeat the action.
var ErrBroker = errors.New("the MQTT broker did not take the change")

// BrokerAccounts mirrors device credentials into an external broker that
// authenticates devices itself (Mosquitto's dynamic-security plugin). The
// embedded broker needs none: it asks the registry.
type BrokerAccounts interface {
	CreateDevice(ctx context.Context, id, password string) error
	SetDevicePassword(ctx context.Context, id, password string) error
	SetDeviceEnabled(ctx context.Context, id string, enabled bool) error
	DeleteDevice(ctx context.Context, id string) error
}

// MirrorAccounts makes every credential the registry issues, and every
// disable, enable and erasure, reach a (nil: no external broker). Call it
// before the API serves.
func (r *Registry) MirrorAccounts(a BrokerAccounts) { r.accounts = a }

// SyncDisabled disables at the broker every device disabled in the
// registry: a disable whose broker half failed, or made while mirroring was
// off, takes effect at the next start.
func (r *Registry) SyncDisabled(ctx context.Context) error {
	if r.accounts == nil {
		return nil
	}
	var errs []error
	for _, d := range r.Devices(func(d Device) bool { return d.Disabled }) {
		if err := r.accounts.SetDeviceEnabled(ctx, d.ID, false); err != nil {
			errs = append(errs, fmt.Errorf("device %s: %w", d.ID, err))
		}
	}
	return errors.Join(errs...)
}

func brokerError(err error) error { return fmt.Errorf("%w: %v", ErrBroker, err) }
