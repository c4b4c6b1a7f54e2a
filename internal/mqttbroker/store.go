package mqttbroker

import (
	"strconv"
	"strings"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/packets"
)

// boltStore is mochi's bbolt storage hook with one fix. In mochi v2.7.9 the
// bolt hook stores inflight messages without their packet id (the badger
// and pebble hooks set it), so after a restart every queued message of a
// session is reloaded as packet id 0, they overwrite each other in the
// inflight map, and the subscriber receives at most one invalid packet:
// queued QoS 1 messages are lost. The id is still in the record's key,
// "IFM_{client id}:{packet id}", so it is restored from there on load.
//
// It also does not store the PUBACK of a device's QoS 1 message. mochi
// keeps that PUBACK in the client's inflight map only while it writes it,
// and a stored copy means nothing after a restart (a device resends what
// was not acknowledged), yet storing and deleting it were two bbolt write
// transactions per device message, serialised on bbolt's one writer: a
// third of the embedded broker's CPU time under load (carebench ingest
// -embedded).
type boltStore struct {
	*bolt.Hook
	unstored *sync.Map // ackKey of the PUBACKs not stored
}

// ackKey names one client's PUBACK without allocating: it is taken twice
// for every device message.
type ackKey struct {
	cl *mqtt.Client
	id uint16
}

func newBoltStore() boltStore { return boltStore{Hook: new(bolt.Hook), unstored: &sync.Map{}} }

// OnQosPublish stores an inflight message, except the PUBACK of a
// message received (mochi calls it for both directions).
func (s boltStore) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, resends int) {
	if pk.FixedHeader.Type == packets.Puback {
		s.unstored.Store(ackKey{cl, pk.PacketID}, struct{}{})
		return
	}
	s.Hook.OnQosPublish(cl, pk, sent, resends)
}

// OnQosComplete deletes a stored inflight message. mochi passes a PUBACK
// both for a message received (the PUBACK it sent, not stored above) and
// for one it sent (the client's PUBACK, whose message is stored).
func (s boltStore) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	if pk.FixedHeader.Type == packets.Puback {
		if _, ok := s.unstored.LoadAndDelete(ackKey{cl, pk.PacketID}); ok {
			return
		}
	}
	s.Hook.OnQosComplete(cl, pk)
}

// OnDisconnect forgets the client's PUBACKs not stored (one whose write
// failed never completes).
func (s boltStore) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	s.unstored.Range(func(k, _ any) bool {
		if k.(ackKey).cl == cl {
			s.unstored.Delete(k)
		}
		return true
	})
	s.Hook.OnDisconnect(cl, err, expire)
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
