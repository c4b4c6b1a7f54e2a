package mqttbroker

import (
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// maxUnconfirmed bounds one connection's messages taken by the Intake but
// not yet stored, hence not yet acknowledged. A gateway catching up after
// an outage keeps this many in flight instead of one, so it is not held to
// one JetStream round trip a message; beyond it the connection's reads
// wait (back-pressure on that device alone). What they hold is bounded
// further by ingest's publish window.
const maxUnconfirmed = 64

// acker acknowledges one connection's QoS 1 messages once the Intake has
// stored them, in the order they arrived, off the connection's goroutine:
// mochi reads a connection's packets one at a time, and waiting in its
// publish hook for each message to be stored capped a connection at one
// message per JetStream round trip (docs/performance.md, "One connection
// to the embedded broker").
type acker struct {
	cl      *mqtt.Client
	slots   chan struct{} // one per message queued or being confirmed
	mu      sync.Mutex
	queue   []unconfirmed
	running bool // a goroutine is draining queue
}

// unconfirmed is a message taken but not yet acknowledged.
type unconfirmed struct {
	packetID uint16       // 0 for QoS 0: nothing to acknowledge
	confirm  func() error // nil: nothing to wait for (rejected, reported)
}

func newAcker(cl *mqtt.Client) *acker {
	return &acker{cl: cl, slots: make(chan struct{}, maxUnconfirmed)}
}

// add queues u behind the connection's earlier messages; it waits while
// maxUnconfirmed are queued.
func (a *acker) add(u unconfirmed) {
	a.slots <- struct{}{}
	a.mu.Lock()
	a.queue = append(a.queue, u)
	start := !a.running
	a.running = true
	a.mu.Unlock()
	if start {
		go a.drain()
	}
}

// drain confirms the queued messages in order and acknowledges each one
// stored. A message not stored (carehub is stopping) is not acknowledged,
// and neither is any after it: the device sends them again.
func (a *acker) drain() {
	failed := false
	for {
		a.mu.Lock()
		if len(a.queue) == 0 {
			a.queue = a.queue[:0]
			a.running = false
			a.mu.Unlock()
			return
		}
		u := a.queue[0]
		a.queue[0] = unconfirmed{}
		a.queue = a.queue[1:]
		a.mu.Unlock()

		if u.confirm != nil && u.confirm() != nil {
			failed = true
		}
		if !failed && u.packetID != 0 {
			// A closed connection refuses the write: the device sends the
			// message again on its next connection.
			_ = a.cl.WritePacket(packets.Packet{
				FixedHeader: packets.FixedHeader{Type: packets.Puback},
				PacketID:    u.packetID,
				ReasonCode:  packets.CodeSuccess.Code,
			})
		}
		<-a.slots
	}
}
