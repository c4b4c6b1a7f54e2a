package natsx_test

import (
	"testing"

	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/coalesce"
	"github.com/carehub/carehub/internal/natsx"
	"github.com/carehub/carehub/internal/testenv"
)

// carehub's NATS connection over nats:// is the coalescing one, and works.
func TestConnectCoalescesPlainNATS(t *testing.T) {
	ns := testenv.NATS(t)
	nc, err := natsx.Connect(ns.ClientURL(), "test", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, ok := nc.Opts.CustomDialer.(coalesce.NATSDialer); !ok {
		t.Fatalf("dialer %T, want coalesce.NATSDialer", nc.Opts.CustomDialer)
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("round trip: %v", err)
	}
}
