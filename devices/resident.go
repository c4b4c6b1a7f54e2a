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

// ErrStale is an update conditioned on a revision (an HTTP If-Match) that is
// no longer the record's latest: someone else changed it since it was read.
// The API answers 412 (RFC 9110 §13.1.1).
var ErrStale = errors.New("changed since it was read")

// Consent scopes (domain.md privacy; PIPA Art. 23 asks separate consent for
// health data, and Art. 17 for handing it to a third party, here an export).
const (
	ConsentMonitoring       = "monitoring"
	ConsentMonitoringExport = "monitoring+export"
)

// ValidConsentScope reports whether s is a consent scope carehub knows.
func ValidConsentScope(s string) bool {
	return s == ConsentMonitoring || s == ConsentMonitoringExport
}

// Consent is what was recorded about a resident's consent to monitoring:
// its scope, who recorded it, the signed form's reference, and when it was
// given or withdrawn. A withdrawal keeps GivenAt, so the record shows the
// whole period in which monitoring was lawful.
type Consent struct {
	Given       bool       `json:"given"`
	Scope       string     `json:"scope"`
	RecordedBy  string     `json:"recorded_by"`
	DocumentRef string     `json:"document_ref,omitempty"`
	GivenAt     *time.Time `json:"given_at,omitempty"`
	WithdrawnAt *time.Time `json:"withdrawn_at,omitempty"`
}

// ResidentRevision returns a resident from memory with the KV revision it
// was read at: the API's ETag, which UpdateResident checks.
func (r *Registry) ResidentRevision(id string) (Resident, uint64, bool) {
	return r.residentTab.GetRevision(id)
}

// UpdateResident applies change to a resident and stores it. With
// ifRevision > 0 the write happens only if the resident's latest KV revision
// is still ifRevision, and KV Update checks that atomically, so of two
// concurrent editors holding the same ETag exactly one wins and the other
// gets ErrStale. With ifRevision 0 a concurrent write makes it re-read and
// re-apply change (no update is lost). The result is validated like a new
// resident; a changed home_id creates the home when missing and moves the
// resident's devices with it (a device's home is its resident's). It returns
// the stored resident and its new revision.
func (r *Registry) UpdateResident(ctx context.Context, id string, ifRevision uint64, change func(*Resident) error) (Resident, uint64, error) {
	now := r.now().UTC()
	for range updateRetries {
		e, err := r.residents.Get(ctx, id)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return Resident{}, 0, fmt.Errorf("%w: resident %q", ErrNotFound, id)
		}
		if err != nil {
			return Resident{}, 0, fmt.Errorf("%s get %q: %w", model.BucketResidents, id, err)
		}
		if ifRevision != 0 && e.Revision() != ifRevision {
			return Resident{}, 0, fmt.Errorf("%w: resident %q", ErrStale, id)
		}
		var cur Resident
		if err := json.Unmarshal(e.Value(), &cur); err != nil {
			return Resident{}, 0, fmt.Errorf("%s %q: %w", model.BucketResidents, id, err)
		}
		next := cur
		if err := change(&next); err != nil {
			return Resident{}, 0, err
		}
		next.ID, next.CreatedAt, next.UpdatedAt = cur.ID, cur.CreatedAt, now
		if err := validateResident(next, now.Year()); err != nil {
			return Resident{}, 0, err
		}
		if next.HomeID != cur.HomeID {
			if _, err := r.ensureHome(ctx, next.HomeID); err != nil {
				return Resident{}, 0, err
			}
		}
		b, err := json.Marshal(next)
		if err != nil {
			return Resident{}, 0, err
		}
		rev, err := r.residents.Update(ctx, id, b, e.Revision())
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			if ifRevision != 0 {
				return Resident{}, 0, fmt.Errorf("%w: resident %q", ErrStale, id)
			}
			continue
		}
		if err != nil {
			return Resident{}, 0, fmt.Errorf("%s update %q: %w", model.BucketResidents, id, err)
		}
		r.residentTab.Put(id, next, rev)
		if next.HomeID != cur.HomeID {
			if err := r.moveDevices(ctx, id, next.HomeID); err != nil {
				return next, rev, err
			}
		}
		return next, rev, nil
	}
	return Resident{}, 0, fmt.Errorf("%w: resident %q changed concurrently %d times", ErrConflict, id, updateRetries)
}

// moveDevices sets the home of a resident's devices to home.
func (r *Registry) moveDevices(ctx context.Context, residentID, home string) error {
	var errs []error
	for _, d := range r.Devices(func(d Device) bool { return d.ResidentID == residentID && d.HomeID != home }) {
		nd, rev, err := updateJSON(ctx, r.devices, d.ID, func(d *Device) error {
			d.HomeID = home
			d.UpdatedAt = r.now().UTC()
			return nil
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r.deviceTab.Put(nd.ID, nd, rev)
	}
	return errors.Join(errs...)
}
