package alerts

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/nats-io/nats.go/jetstream"
)

// EraseResident removes every alert of a resident from memory and from the
// care_alerts bucket (domain.md privacy: erasure per resident) and returns
// how many it removed. Purge, not Delete, so KV keeps no earlier revision.
// Resolved alerts live only in the bucket, so it is read in one pass first
// (the caller has closed the resident's gate, so no new alert appears).
// Transitions still in an alert's outbox are dropped with it: they would
// only publish the resident's data again. The alert history in the
// CARE_ALERTS stream is not touched here.
func (m *Manager) EraseResident(ctx context.Context, residentID string) (int, error) {
	ids := map[string]bool{}
	if err := m.scan(ctx, func(r *record) {
		if r.Alert.ResidentID == residentID {
			ids[r.Alert.ID] = true
		}
	}); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, r := range m.byID {
		if r.Alert.ResidentID == residentID {
			ids[id] = true
		}
	}
	n := 0
	var errs []error
	for id := range ids {
		if err := m.kv.Purge(ctx, kvKey(id)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			errs = append(errs, fmt.Errorf("purge alert %s: %w", id, err))
			continue
		}
		m.drop(id)
		m.gone[id] = math.MaxUint64 // until the watch brings the purge
		n++
	}
	m.count()
	return n, errors.Join(errs...)
}
