//go:build cluster

package cluster_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/carehub/carehub/internal/cluster"
)

// startTopology builds the binaries and starts a topology for the test;
// on failure the test's log gets every process's log tail and the
// directory is kept.
func startTopology(t *testing.T, o cluster.Options) *cluster.Topology {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	wd, _ := os.Getwd()
	root, err := cluster.RepoRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	o.Bin, err = cluster.Build(ctx, root, filepath.Join(t.TempDir(), "bin"))
	if err != nil {
		t.Fatal(err)
	}
	o.Dir = t.TempDir()
	o.Logf = t.Logf
	top, err := cluster.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs of the topology in %s:\n%s", top.Dir, top.Logs(4000))
		}
		top.Close()
	})
	return top
}

// waitErr polls f every 100 ms until it returns nil or timeout passes,
// and returns its last error.
func waitErr(ctx context.Context, timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
