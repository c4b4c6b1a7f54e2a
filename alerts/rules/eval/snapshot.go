package eval

import (
	"encoding/json"
	"fmt"
)

// snapshotVersion changes when the state layout does; Restore refuses other
// versions rather than misreading durations in progress.
const snapshotVersion = 1

type snapshot struct {
	Version   int                  `json:"version"`
	Residents map[string]*resident `json:"residents"`
}

// Snapshot returns every resident's rule state (durations in progress,
// last activity, pending falls and night exits, what has been signalled) as
// JSON, for the lifecycle to keep in NATS KV so that a restart loses
// nothing. Settings are not part of it: they live with their source.
func (e *Evaluator) Snapshot() ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return json.Marshal(snapshot{Version: snapshotVersion, Residents: e.residents})
}

// Restore replaces the evaluator's state with a Snapshot's. On error the
// state is unchanged.
func (e *Evaluator) Restore(b []byte) error {
	var s snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("rules: restore: %w", err)
	}
	if s.Version != snapshotVersion {
		return fmt.Errorf("rules: restore: snapshot version %d, want %d", s.Version, snapshotVersion)
	}
	if s.Residents == nil {
		s.Residents = make(map[string]*resident)
	}
	for id, rs := range s.Residents {
		if rs == nil {
			return fmt.Errorf("rules: restore: resident %q has no state", id)
		}
		rs.ID = id
		for _, d := range rs.Devs {
			if d == nil {
				return fmt.Errorf("rules: restore: resident %q has an empty device", id)
			}
		}
		for _, t := range rs.Thr {
			if t == nil {
				return fmt.Errorf("rules: restore: resident %q has an empty threshold state", id)
			}
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.residents = s.Residents
	return nil
}

// Prune forgets every resident whose id keep rejects, with all their rule
// state (durations in progress, devices, what was signalled), and returns
// how many it forgot. The engine prunes residents who were erased or are
// no longer in the registry: otherwise Tick would keep finding their
// devices offline and them inactive, and raise alerts about nobody. A
// forgotten resident's open conditions are not cleared by a signal: their
// alerts are erased with them.
func (e *Evaluator) Prune(keep func(residentID string) bool) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for id := range e.residents {
		if !keep(id) {
			delete(e.residents, id)
			n++
		}
	}
	return n
}
