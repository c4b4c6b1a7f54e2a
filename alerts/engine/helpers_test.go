package engine

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/internal/testenv"
)

// The helpers below are the few of package alerts' test helpers the engine
// tests need (alerts/helpers_test.go): a clock the tests move, a real NATS
// server with carehub's streams, a Manager on it, a subscriber that counts.

// testClock is the injected clock the tests move by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *testClock {
	return &testClock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is one real NATS server with carehub's streams.
type env struct {
	nc *nats.Conn
	js jetstream.JetStream
}

func newEnv(t *testing.T) *env {
	t.Helper()
	nc, js := testenv.JetStream(t, testenv.NATS(t))
	return &env{nc: nc, js: js}
}

func (e *env) manager(t *testing.T, o alerts.Options) *alerts.Manager {
	t.Helper()
	o.JS, o.NC, o.Log = e.js, e.nc, zerolog.Nop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := alerts.NewManager(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// counter counts what a plain nats.go subscriber receives.
type counter struct {
	mu sync.Mutex
	n  int
}

func (e *env) subscribe(t *testing.T, subject string) *counter {
	t.Helper()
	c := &counter{}
	sub, err := e.nc.Subscribe(subject, func(*nats.Msg) {
		c.mu.Lock()
		c.n++
		c.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return c
}

func (c *counter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}
