package wire

import (
	"bytes"
	"io"
	"log/slog"
	"sync"
	"testing"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/carehub/carehub/internal/testenv"
)

// received is one message the broker routed.
type received struct {
	Topic   string
	Payload []byte
}

// recorder keeps everything the broker routes on care/v1/dev/#.
type recorder struct {
	mu   sync.Mutex
	msgs []received
}

func (r *recorder) all() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.msgs...)
}

func (r *recorder) count(pred func(received) bool) int {
	n := 0
	for _, m := range r.all() {
		if pred(m) {
			n++
		}
	}
	return n
}

// allowAll lets every client connect and publish anywhere, like a broker
// with anonymous access. (mochi's own auth.AllowHook would pull in yaml.v3,
// which go.sum does not hold.)
type allowAll struct{ mochi.HookBase }

func (h *allowAll) ID() string { return "allow-all" }
func (h *allowAll) Provides(b byte) bool {
	return bytes.Contains([]byte{mochi.OnConnectAuthenticate, mochi.OnACLCheck}, []byte{b})
}
func (h *allowAll) OnConnectAuthenticate(*mochi.Client, packets.Packet) bool { return true }
func (h *allowAll) OnACLCheck(*mochi.Client, string, bool) bool              { return true }

// startBroker runs an in-process mochi broker with allow-all auth on a
// random loopback port and records what it routes.
func startBroker(t *testing.T) (url string, rec *recorder) {
	t.Helper()
	s := mochi.New(&mochi.Options{InlineClient: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := s.AddHook(new(allowAll), nil); err != nil {
		t.Fatal(err)
	}
	l := listeners.NewTCP(listeners.Config{ID: testenv.ID("t"), Address: "127.0.0.1:0"})
	if err := s.AddListener(l); err != nil {
		t.Fatal(err)
	}
	rec = &recorder{}
	if err := s.Subscribe("care/v1/dev/#", 1, func(_ *mochi.Client, _ packets.Subscription, pk packets.Packet) {
		rec.mu.Lock()
		rec.msgs = append(rec.msgs, received{Topic: pk.TopicName, Payload: append([]byte(nil), pk.Payload...)})
		rec.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return "tcp://" + l.Address(), rec
}
