package devices

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/bcrypt"

	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/model"
)

// passwordBytes is the entropy of a device password: 192 bits, so the
// password cannot be guessed online and the slow hash is defence in depth.
const passwordBytes = 24

// bcryptCost is the work factor of the stored password hash: about 50 ms on
// one core. bcrypt rather than argon2id because argon2id's memory cost (tens
// of MiB per verification) multiplied by a reconnect storm of thousands of
// devices is a memory spike, while bcrypt needs 4 KiB; with 192-bit random
// passwords the extra GPU resistance of argon2id buys nothing.
const bcryptCost = 10

// RegisterDevice stores a new device bound to a resident (its home is the
// resident's) and issues its MQTT password, which is returned once and stored
// only as a bcrypt hash (contract §4, POST /devices). An empty id gets a
// generated one ("d-...").
func (r *Registry) RegisterDevice(ctx context.Context, id, kind, residentID string) (Device, string, error) {
	if id != "" && !catalog.ValidID(id) {
		return Device{}, "", invalid("id", "device id %q does not match ^[a-z0-9][a-z0-9_-]{0,63}$", id)
	}
	if id != "" && r.reserved != nil && r.reserved(id) {
		return Device{}, "", fmt.Errorf("%w: %q", ErrReservedID, id)
	}
	if !catalog.ValidKind(kind) {
		return Device{}, "", invalid("kind", "device kind %q is not one of %v", kind, catalog.Kinds())
	}
	if !catalog.ValidID(residentID) {
		return Device{}, "", invalid("resident_id", "resident_id %q is not a valid id", residentID)
	}
	res, ok, err := readThrough(ctx, r.residents, r.residentTab, residentID)
	if err != nil {
		return Device{}, "", err
	}
	if !ok {
		// The request names a resident that does not exist: the input is
		// wrong (422), not the device (404).
		return Device{}, "", invalid("resident_id", "resident %q does not exist", residentID)
	}
	password, hash, err := newCredentials()
	if err != nil {
		return Device{}, "", err
	}
	now := r.now().UTC()
	_, rev, v, err := createWithID(ctx, r.devices, id, "d-", func(id string) any {
		return Device{
			ID: id, Kind: kind, ResidentID: res.ID, HomeID: res.HomeID,
			SecretHash: hash, CreatedAt: now, UpdatedAt: now,
		}
	})
	if err != nil {
		return Device{}, "", err
	}
	d := v.(Device)
	if r.accounts != nil {
		// The device is not registered unless the broker will let it in:
		// its password is never shown again. The purge reaches every
		// instance's memory through the KV watch, like any change.
		if err := r.accounts.CreateDevice(ctx, d.ID, password); err != nil {
			if perr := r.devices.Purge(ctx, d.ID); perr != nil {
				r.log.Error().Err(perr).Str("device_id", d.ID).Msg("device registered but not at the broker, and not removed again: rotate its credentials")
			}
			return Device{}, "", brokerError(err)
		}
	}
	r.deviceTab.Put(d.ID, d, rev)
	r.auth.remember(d.ID, d.SecretHash, password)
	return d, password, nil
}

// newCredentials returns a fresh random password and its bcrypt hash.
func newCredentials() (password, hash string, err error) {
	b := make([]byte, passwordBytes)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("device password: %w", err)
	}
	password = base64.RawURLEncoding.EncodeToString(b)
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcryptCost)
	if err != nil {
		return "", "", fmt.Errorf("device password hash: %w", err)
	}
	return password, string(h), nil
}

// Device returns a device from memory. It is on the ingest hot path (every
// MQTT message): one read lock and a map lookup, no I/O.
func (r *Registry) Device(id string) (Device, bool) { return r.deviceTab.Get(id) }

// Devices returns the devices for which keep returns true (all when keep is
// nil), sorted by id.
func (r *Registry) Devices(keep func(Device) bool) []Device {
	return sortByID(r.deviceTab.List(keep), func(d Device) string { return d.ID })
}

// SetDeviceDisabled disables or re-enables a device. A disabled device fails
// authentication and its messages are rejected by ingest (contract §1).
func (r *Registry) SetDeviceDisabled(ctx context.Context, id string, disabled bool) (Device, error) {
	now := r.now().UTC()
	d, rev, err := updateJSON(ctx, r.devices, id, func(d *Device) error {
		d.Disabled = disabled
		d.UpdatedAt = now
		return nil
	})
	if err != nil {
		return Device{}, err
	}
	r.deviceTab.Put(d.ID, d, rev)
	if r.accounts != nil {
		// Ingest already rejects a disabled device's messages; the broker
		// refusing its login is the second half. A failure here is undone
		// by SyncDisabled at the next start, or by repeating the call.
		if err := r.accounts.SetDeviceEnabled(ctx, d.ID, !disabled); err != nil {
			return d, brokerError(err)
		}
	}
	return d, nil
}

// RotateCredentials issues a new password for a device; the old one stops
// working at once on every instance (the hash changes, and the verification
// cache is keyed by it).
func (r *Registry) RotateCredentials(ctx context.Context, id string) (Device, string, error) {
	password, hash, err := newCredentials()
	if err != nil {
		return Device{}, "", err
	}
	now := r.now().UTC()
	d, rev, err := updateJSON(ctx, r.devices, id, func(d *Device) error {
		d.SecretHash = hash
		d.UpdatedAt = now
		return nil
	})
	if err != nil {
		return Device{}, "", err
	}
	r.deviceTab.Put(d.ID, d, rev)
	r.auth.remember(d.ID, d.SecretHash, password)
	if r.accounts != nil {
		// The broker keeps the old password: the device still logs in with
		// it, and the caller rotates again.
		if err := r.accounts.SetDevicePassword(ctx, d.ID, password); err != nil {
			return d, "", brokerError(err)
		}
	}
	return d, password, nil
}

// Authenticate reports whether password is the current password of an
// enabled, registered device. A successful bcrypt verification is cached per
// device (an HMAC of the password under a per-process key, bound to the
// stored hash), so a reconnect storm after a broker restart costs one bcrypt
// per device, not one per attempt; a changed hash invalidates the entry.
// Unknown and disabled devices fail without running bcrypt.
func (r *Registry) Authenticate(deviceID, password string) bool {
	d, ok := r.Device(deviceID)
	if !ok || d.Disabled || d.SecretHash == "" || password == "" {
		return false
	}
	if r.auth.matches(deviceID, d.SecretHash, password) {
		return true
	}
	if !r.auth.verify(d.SecretHash, password) {
		return false
	}
	r.auth.remember(deviceID, d.SecretHash, password)
	return true
}

// CheckLogin is Authenticate with the refusal's reason, which the embedded
// broker reports (contract §1): "" for a good login, else
// model.ReasonUnknownDevice, model.ReasonDisabledDevice or
// model.ReasonAuthFailed.
func (r *Registry) CheckLogin(deviceID, password string) (reason string) {
	if r.Authenticate(deviceID, password) {
		return ""
	}
	switch d, ok := r.Device(deviceID); {
	case !ok:
		return model.ReasonUnknownDevice
	case d.Disabled:
		return model.ReasonDisabledDevice
	}
	return model.ReasonAuthFailed
}

// authCache remembers successful password verifications, one entry per
// device (so it is bounded by the number of devices), and bounds how many
// bcrypt verifications run at once so that a storm of wrong passwords cannot
// take every core from ingest.
type authCache struct {
	key  []byte
	slow chan struct{}

	// verifications counts bcrypt runs: what a reconnect storm costs.
	verifications atomic.Int64

	mu sync.RWMutex
	ok map[string]authEntry
}

type authEntry struct {
	secretHash string
	digest     []byte
}

func newAuthCache() *authCache {
	n := max(1, runtime.GOMAXPROCS(0)/2)
	return &authCache{key: newMACKey(), slow: make(chan struct{}, n), ok: make(map[string]authEntry)}
}

func (c *authCache) matches(id, secretHash, password string) bool {
	c.mu.RLock()
	e, ok := c.ok[id]
	c.mu.RUnlock()
	if !ok || e.secretHash != secretHash {
		return false
	}
	return subtle.ConstantTimeCompare(e.digest, mac(c.key, id, password)) == 1
}

func (c *authCache) remember(id, secretHash, password string) {
	d := mac(c.key, id, password)
	c.mu.Lock()
	c.ok[id] = authEntry{secretHash: secretHash, digest: d}
	c.mu.Unlock()
}

// verify runs bcrypt (constant-time compare inside) under the concurrency bound.
func (c *authCache) verify(secretHash, password string) bool {
	c.slow <- struct{}{}
	defer func() { <-c.slow }()
	c.verifications.Add(1)
	return bcrypt.CompareHashAndPassword([]byte(secretHash), []byte(password)) == nil
}
