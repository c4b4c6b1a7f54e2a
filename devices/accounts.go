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

// ErrAccountTaken is a device id whose broker account exists but was not
// created by carehub for a device (an operator's or another system's user):
// carehub never adopts it, changes its password or deletes it. The API
// answers 409 broker_account_exists.
var ErrAccountTaken = errors.New("the MQTT broker already has an account of that name that carehub did not create")

// ErrReservedID is a device id equal to one of carehub's own broker users or
// client ids: a device with it could take over carehub's sessions or
// account. The API answers 409 device_id_reserved.
var ErrReservedID = errors.New("the device id is reserved for carehub's own broker connections")

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

// ReserveIDs makes RegisterDevice refuse every id for which reserved returns
// true (ErrReservedID): carehub's own broker users and client ids. Call it
// before the API serves.
func (r *Registry) ReserveIDs(reserved func(id string) bool) { r.reserved = reserved }

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

// brokerError marks a failure of the broker's half as ErrBroker (503, try
// again), except a foreign account, which no retry will change (409).
func brokerError(err error) error {
	if errors.Is(err, ErrAccountTaken) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrBroker, err)
}
