package mqttbroker

import (
	"log/slog"
	"path/filepath"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/packets"
)

// The PUBACK the broker sends for a device's message is not stored, and
// completing it must not delete a stored message of the same client that
// happens to carry the same packet id (packet ids are per direction).
func TestBoltStoreSkipsReceivedPubacks(t *testing.T) {
	s := newBoltStore()
	s.SetOpts(slog.Default(), nil)
	if err := s.Init(&bolt.Options{Path: filepath.Join(t.TempDir(), "broker.db")}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	cl := &mqtt.Client{ID: "carehub-ingest-0"}
	stored := func() map[uint16]string {
		t.Helper()
		msgs, err := s.StoredInflightMessages()
		if err != nil {
			t.Fatal(err)
		}
		out := map[uint16]string{}
		for _, m := range msgs {
			out[m.PacketID] = m.TopicName
		}
		return out
	}

	// The broker sends the client message 7 (stored: it must survive a
	// restart) and acknowledges the client's own message 7 (not stored).
	out := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 7, TopicName: "care/v1/dev/d1/config"}
	s.OnQosPublish(cl, out, 1, 0)
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: 7}
	s.OnQosPublish(cl, ack, 1, 0)
	if got := stored(); len(got) != 1 || got[7] != out.TopicName {
		t.Fatalf("after one outbound message and one PUBACK sent: stored %v, want only the message", got)
	}

	// The PUBACK sent completes: the outbound message 7 stays.
	s.OnQosComplete(cl, ack)
	if got := stored(); len(got) != 1 {
		t.Fatalf("the PUBACK sent for the client's message deleted the outbound one: stored %v", got)
	}
	// The client's PUBACK for message 7 completes it: now it goes.
	s.OnQosComplete(cl, ack)
	if got := stored(); len(got) != 0 {
		t.Fatalf("the client's PUBACK did not delete the outbound message: stored %v", got)
	}

	// A PUBACK that never completed (its write failed) is forgotten when
	// the client goes, so a later PUBACK with its id deletes as it should.
	s.OnQosPublish(cl, ack, 1, 0)
	s.OnDisconnect(cl, nil, false)
	s.OnQosPublish(cl, out, 1, 0)
	s.OnQosComplete(cl, ack)
	if got := stored(); len(got) != 0 {
		t.Fatalf("a PUBACK left over from a gone connection shadowed the client's PUBACK: stored %v", got)
	}
}
