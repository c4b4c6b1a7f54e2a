package mqttbroker

import (
	"strconv"
	"strings"

	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
)

// boltStore is mochi's bbolt storage hook with one fix. In mochi v2.7.9 the
// bolt hook stores inflight messages without their packet id (the badger
// and pebble hooks set it), so after a restart every queued message of a
// session is reloaded as packet id 0, they overwrite each other in the
// inflight map, and the subscriber receives at most one invalid packet:
// queued QoS 1 messages are lost. The id is still in the record's key,
// "IFM_{client id}:{packet id}", so it is restored from there on load.
type boltStore struct {
	*bolt.Hook
}

// StoredInflightMessages returns the stored inflight messages with their
// packet ids restored.
func (s boltStore) StoredInflightMessages() ([]storage.Message, error) {
	msgs, err := s.Hook.StoredInflightMessages()
	if err != nil {
		return nil, err
	}
	out := msgs[:0]
	for _, m := range msgs {
		if m.PacketID == 0 {
			i := strings.LastIndexByte(m.ID, ':')
			id, perr := strconv.ParseUint(m.ID[i+1:], 10, 16)
			if i < 0 || perr != nil || id == 0 {
				continue // not a record this hook wrote; cannot be resent
			}
			m.PacketID = uint16(id)
		}
		out = append(out, m)
	}
	return out, nil
}
