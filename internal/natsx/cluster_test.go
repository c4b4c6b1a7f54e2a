package natsx_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/kv"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/natsx"
	"github.com/carehub/carehub/internal/testenv"
)

// smallStreams keeps three servers' reservations small.
func smallStreams(replicas int) natsx.StreamOptions {
	o := natsx.DefaultStreamOptions
	o.Replicas = replicas
	o.MaxBytes = map[string]int64{}
	for _, name := range natsx.StreamNames {
		o.MaxBytes[name] = 64 << 20
	}
	return o
}

// CARE_NATS_REPLICAS=3 on a three-node cluster: streams and buckets made
// with one copy get three at the next start, and carehub's connection,
// given the cluster as a list, keeps publishing when the node leading
// CARE_READINGS dies, without losing or doubling a message.
func TestReplicasOnClusterAndLeaderDeath(t *testing.T) {
	c := testenv.NATSCluster(t, 3)
	nc, err := natsx.Connect(c.URLs(), "carehub-test", zerolog.Nop(), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	base, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// An install with one copy of everything ...
	if err := natsx.EnsureStreams(ctx, base, smallStreams(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Open(ctx, base, kv.Bucket{Name: model.BucketResidents}); err != nil {
		t.Fatal(err)
	}
	// ... started again with CARE_NATS_REPLICAS=3.
	js := kv.WithReplicas(base, 3)
	if err := natsx.EnsureStreams(ctx, js, smallStreams(3)); err != nil {
		t.Fatal(err)
	}
	bucket, err := kv.Open(ctx, js, kv.Bucket{Name: model.BucketResidents})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range natsx.StreamNames {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.CachedInfo().Config.Replicas; got != 3 {
			t.Errorf("stream %s has %d replicas, want 3", name, got)
		}
	}
	st, err := bucket.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas; got != 3 {
		t.Errorf("bucket %s has %d replicas, want 3", model.BucketResidents, got)
	}

	// Every replica current before the leader dies.
	var leader string
	testenv.WaitFor(t, 30*time.Second, "CARE_READINGS with a leader and two current replicas", func() bool {
		s, err := js.Stream(ctx, model.StreamReadings)
		if err != nil {
			return false
		}
		info := s.CachedInfo()
		if info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
			return false
		}
		for _, r := range info.Cluster.Replicas {
			if !r.Current {
				return false
			}
		}
		leader = info.Cluster.Leader
		return true
	})

	const n = 300
	publish := func(i int) time.Duration {
		t0 := time.Now()
		subject := model.ReadingSubject("r1", "d1")
		for {
			// The message id makes a retry after an unknown outcome safe.
			_, err := js.Publish(ctx, subject, fmt.Appendf(nil, `{"i":%d}`, i), jetstream.WithMsgID(fmt.Sprint(i)))
			if err == nil {
				return time.Since(t0)
			}
			if ctx.Err() != nil {
				t.Fatalf("message %d not stored within the test's time: %v", i, err)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				time.Sleep(20 * time.Millisecond) // the cluster is electing; retry
			}
		}
	}
	for i := range n {
		publish(i)
	}
	c.Kill(c.Index(leader))
	killed := time.Now()
	var worst time.Duration
	for i := n; i < 2*n; i++ {
		worst = max(worst, publish(i))
	}
	t.Logf("leader %s killed: the longest publish after it took %s; all %d stored %s after the kill", leader, worst, n, time.Since(killed))

	testenv.WaitFor(t, 30*time.Second, "a new leader holding every message once", func() bool {
		s, err := js.Stream(ctx, model.StreamReadings)
		if err != nil {
			return false
		}
		info := s.CachedInfo()
		return info.Cluster != nil && info.Cluster.Leader != "" && info.Cluster.Leader != leader && info.State.Msgs == 2*n
	})
	s, _ := js.Stream(ctx, model.StreamReadings)
	if got := s.CachedInfo().State.Msgs; got != 2*n {
		t.Fatalf("CARE_READINGS holds %d messages, want %d", got, 2*n)
	}
	if !nc.IsConnected() {
		t.Fatal("carehub's connection did not move to another server")
	}
}
