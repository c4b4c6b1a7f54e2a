package devices

import (
	"strings"
	"testing"
)

// TestResidentIDBatchReserved: "batch" would share its subjects with the
// batched readings on care.readings.batch.* (contract §3), and erasing it
// would purge every resident's batches.
func TestResidentIDBatchReserved(t *testing.T) {
	err := validateResident(Resident{ID: "batch", Name: "A Resident", HomeID: "h1"}, 2026)
	if err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Fatalf("resident id batch: %v", err)
	}
	if err := validateResident(Resident{ID: "batch-2", Name: "A Resident", HomeID: "h1"}, 2026); err != nil {
		t.Fatalf("resident id batch-2: %v", err)
	}
}
