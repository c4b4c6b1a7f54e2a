package coalesce_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/internal/coalesce"
	"github.com/carehub/carehub/internal/testenv"
)

// TestNATSThroughCoalescingConn: nats.go over NATSDialer against a real
// server: JetStream publishes are all acknowledged and stored in order, and
// core messages published just before Drain all reach another connection.
func TestNATSThroughCoalescingConn(t *testing.T) {
	ns := testenv.NATS(t)
	nc, err := nats.Connect(ns.ClientURL(), nats.SetCustomDialer(coalesce.NATSDialer{}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, ok := nc.Opts.CustomDialer.(coalesce.NATSDialer); !ok {
		t.Fatal("the dialer was not used")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 20000
	futures := make([]jetstream.PubAckFuture, 0, n)
	for i := range n {
		f, err := js.PublishAsync(fmt.Sprintf("t.%d", i%7), []byte(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		futures = append(futures, f)
	}
	for i, f := range futures {
		select {
		case ack := <-f.Ok():
			if ack.Sequence != uint64(i+1) {
				t.Fatalf("publish %d stored as %d", i, ack.Sequence)
			}
		case err := <-f.Err():
			t.Fatalf("publish %d: %v", i, err)
		case <-ctx.Done():
			t.Fatalf("publish %d: no ack", i)
		}
	}
	for _, seq := range []uint64{1, n / 2, n} {
		m, err := s.GetMsg(ctx, seq)
		if err != nil || string(m.Data) != fmt.Sprint(seq-1) {
			t.Fatalf("message %d: %v %q", seq, err, m.Data)
		}
	}

	other, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	var got atomic.Int64
	sub, err := other.Subscribe("core", func(*nats.Msg) { got.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	_ = sub.SetPendingLimits(-1, -1)
	if err := other.Flush(); err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := nc.Publish("core", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Drain(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "every core message", func() bool { return got.Load() == n })
}
