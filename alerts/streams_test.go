package alerts

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/testenv"
)

// TestManagerNeedsTheAlertsStream: alerts declares no stream (natsx does,
// at start); without CARE_ALERTS the Manager refuses to start rather than
// publish transitions into the void.
func TestManagerNeedsTheAlertsStream(t *testing.T) {
	nc, err := nats.Connect(testenv.NATS(t).ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = NewManager(ctx, Options{JS: js, NC: nc, Log: zerolog.Nop()})
	if err == nil || !strings.Contains(err.Error(), model.StreamAlerts) {
		t.Fatalf("NewManager without %s: %v", model.StreamAlerts, err)
	}
	if _, err := js.Stream(ctx, model.StreamAlerts); err == nil {
		t.Fatalf("NewManager declared %s", model.StreamAlerts)
	}
}
