//go:build cluster

package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/carehub/carehub/internal/cluster"
)

// TestTopologyComesUp: every instance ready on the shared cluster,
// CARE_READINGS replicated with a leader, and a killed NATS node comes
// back with its data.
func TestTopologyComesUp(t *testing.T) {
	top := startTopology(t, cluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := top.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	leader, err := top.StreamLeader(ctx, "CARE_READINGS")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("CARE_READINGS led by %s", top.NATS[leader].Name)
	top.NATS[leader].Kill()
	var next int
	if err := waitErr(ctx, 30*time.Second, func() error {
		next, err = top.StreamLeader(ctx, "CARE_READINGS")
		return err
	}); err != nil {
		t.Fatalf("no new leader of CARE_READINGS after %s died: %v", top.NATS[leader].Name, err)
	}
	if next == leader {
		t.Fatalf("the dead node %s still leads", top.NATS[leader].Name)
	}
	if err := top.NATS[leader].Restart(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
}
