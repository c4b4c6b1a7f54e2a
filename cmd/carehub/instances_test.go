package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/carehub/carehub/internal/kv"
	"github.com/carehub/carehub/internal/lease"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/testenv"
)

// TestInstancesCommand: `carehub instances` against a real NATS lists the
// instances with their state, refuses to retire one that is up or unknown
// (exit 1), and marks a stopped one retiring (exit 0).
func TestInstancesCommand(t *testing.T) {
	ns := testenv.NATS(t)
	_, js := testenv.JetStream(t, ns)
	ctx := context.Background()
	getenv := func(k string) string { return map[string]string{"CARE_NATS_URL": ns.ClientURL()}[k] }
	cmd := func(want int, args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := run(ctx, append([]string{"instances"}, args...), getenv, &out, &errOut); code != want {
			t.Fatalf("carehub instances %v: exit %d, want %d (%s%s)", args, code, want, out.String(), errOut.String())
		}
		return out.String() + errOut.String()
	}
	if out := cmd(0); out != "" {
		t.Fatalf("no instances yet, listed %q", out)
	}
	members, err := kv.Open(ctx, js, kv.Bucket{Name: model.BucketInstances})
	if err != nil {
		t.Fatal(err)
	}
	leases, err := lease.Open(ctx, js, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"east", "west"} {
		if _, err := members.Put(ctx, id, []byte(`{"mqtt_connections":2}`)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := leases.Put(ctx, "instance.east", []byte("east")); err != nil {
		t.Fatal(err)
	}
	if out := cmd(0, "list"); out != "east\tup\nwest\tdown\n" {
		t.Fatalf("list: %q", out)
	}
	if out := cmd(1, "retire", "east"); !strings.Contains(out, "is up") {
		t.Errorf("retiring an instance that is up: %q", out)
	}
	if out := cmd(1, "retire", "north"); !strings.Contains(out, "no carehub instance") {
		t.Errorf("retiring an unknown instance: %q", out)
	}
	cmd(0, "retire", "west")
	if out := cmd(0); out != "east\tup\nwest\tdown, retiring\n" {
		t.Fatalf("list after the retire: %q", out)
	}
	cmd(2, "retire")
	cmd(2, "frobnicate")
}
