package app

import (
	"testing"

	"github.com/carehub/carehub/ingest/mqttsub"
)

// TestReservedDeviceIDs: every client id carehub gives its own connections
// to any of several brokers, and its broker logins, is refused as a device
// id; ordinary ids are not.
func TestReservedDeviceIDs(t *testing.T) {
	reserved := reservedDeviceIDs("carehub-ingest", "admin")
	for _, n := range []int{1, 2, mqttsub.ConnectionStride} {
		for k := range 3 {
			for i := range n + 1 {
				if id := mqttsub.ClientID("c1", k, i, n); !reserved(id) {
					t.Errorf("ingest client id %q not reserved", id)
				}
			}
			if id := dynsecClientID("c1", k); !reserved(id) {
				t.Errorf("dynsec client id %q not reserved", id)
			}
		}
	}
	for _, id := range []string{"carehub-ingest", "admin"} {
		if !reserved(id) {
			t.Errorf("login %q not reserved", id)
		}
	}
	for _, id := range []string{"wearable-1", "ingest-7a", "c1-ingest-", "c1-dynsec-x", "c1-ingest-events-", "dynsec"} {
		if reserved(id) {
			t.Errorf("device id %q reserved", id)
		}
	}
}
