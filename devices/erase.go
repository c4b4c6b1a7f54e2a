package devices

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/internal/model"
)

func (c *authCache) forget(id string) {
	c.mu.Lock()
	delete(c.ok, id)
	c.mu.Unlock()
}

// EraseResident removes a resident and their devices from the registry
// (domain.md privacy: erasure per resident when the purpose ends) and
// returns the ids of the erased devices. Each device is disabled first, so
// it fails Authenticate from that moment on every instance; then kick, when
// not nil, closes its MQTT session (a connected device would otherwise keep
// publishing until it reconnects); then its record is purged. The resident
// goes last, so an erasure that fails half-way can be run again. Purge, not
// Delete: KV keeps no earlier revision of the records. The home stays: it
// is a dwelling, not personal data, and may get a new resident.
func (r *Registry) EraseResident(ctx context.Context, id string, kick func(deviceID string)) ([]string, error) {
	if _, ok, err := readThrough(ctx, r.residents, r.residentTab, id); err != nil {
		return nil, err
	} else if !ok {
		return nil, fmt.Errorf("%w: resident %q", ErrNotFound, id)
	}
	erased := []string{}
	for _, d := range r.Devices(func(d Device) bool { return d.ResidentID == id }) {
		if _, err := r.SetDeviceDisabled(ctx, d.ID, true); err != nil && !errors.Is(err, ErrNotFound) {
			return erased, fmt.Errorf("disable device %s: %w", d.ID, err)
		}
		if kick != nil {
			kick(d.ID)
		}
		if err := r.devices.Purge(ctx, d.ID); err != nil {
			return erased, fmt.Errorf("%s purge %q: %w", model.BucketDevices, d.ID, err)
		}
		r.deviceTab.Drop(d.ID)
		r.auth.forget(d.ID)
		if r.accounts != nil {
			// Disabled above at the broker too, so it cannot log in; the
			// account (an id and a hash, nothing about the resident) goes
			// now, and if the broker fails here it stays disabled.
			if err := r.accounts.DeleteDevice(ctx, d.ID); err != nil {
				r.log.Warn().Err(err).Str("device_id", d.ID).Msg("erased device's broker account not deleted; it stays disabled")
			}
		}
		erased = append(erased, d.ID)
	}
	if err := r.residents.Purge(ctx, id); err != nil {
		return erased, fmt.Errorf("%s purge %q: %w", model.BucketResidents, id, err)
	}
	r.residentTab.Drop(id)
	return erased, nil
}

// Forget removes a device's presence from memory and purges it from KV
// (erasure): last_seen and battery are about a resident's home life.
func (t *PresenceTracker) Forget(ctx context.Context, deviceID string) error {
	t.flushMu.Lock() // a flush in progress must not write the entry back
	defer t.flushMu.Unlock()
	t.mu.Lock()
	delete(t.m, deviceID)
	t.mu.Unlock()
	if err := t.kv.Purge(ctx, deviceID); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("%s purge %q: %w", model.BucketPresence, deviceID, err)
	}
	t.stored.Drop(deviceID)
	return nil
}

// Tombstone marks an erased resident id. It holds no personal data: the id
// is a pseudonymous key (names live only in the purged resident record).
type Tombstone struct {
	ErasedAt time.Time `json:"erased_at"`
}

// MarkErased records that resident id is being erased, before anything of
// theirs is deleted, and keeps the mark for good (bucket care_erased). From
// this moment this instance drops every message of the resident that is
// still on its way (the InfluxDB writer and the alert engine ask Erased),
// and other instances do once their watcher sees the mark, within
// milliseconds. A mark is never removed: a reading published before the
// erasure can surface later (a redelivery, a backlog), and the id is
// never given to another resident (CreateResident refuses it).
func (r *Registry) MarkErased(ctx context.Context, id string) error {
	if _, ok := r.erasedTab.Get(id); ok {
		return nil
	}
	b, err := json.Marshal(Tombstone{ErasedAt: r.now().UTC()})
	if err != nil {
		return err
	}
	rev, err := r.erased.Put(ctx, id, b)
	if err != nil {
		return fmt.Errorf("%s put %q: %w", model.BucketErased, id, err)
	}
	r.erasedTab.Put(id, Tombstone{ErasedAt: r.now().UTC()}, rev)
	return nil
}

// Erased reports whether resident id was erased (MarkErased). It is read
// for every message the writer stores, from memory.
func (r *Registry) Erased(id string) bool {
	_, ok := r.erasedTab.Get(id)
	return ok
}

// Monitored reports whether alerts may be raised for resident id: the
// resident is in the registry and not erased. A message or a rule's
// signal for anyone else is dropped (an erased person must never be
// escalated to 119, and a resident nobody registered has nobody to call).
func (r *Registry) Monitored(id string) bool {
	if r.Erased(id) {
		return false
	}
	_, ok := r.residentTab.Get(id)
	return ok
}
