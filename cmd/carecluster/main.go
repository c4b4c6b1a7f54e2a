// Command carecluster runs `make cluster-demo`: carehub scaled out on one
// machine without containers (issue 15), as internal/cluster starts it: a
// 3-node NATS JetStream cluster, two Mosquitto brokers, InfluxDB and three
// carehub instances on loopback ports, with homesim's homes split across
// both brokers. It prints every instance's console and the logins, and
// stops everything on Ctrl-C.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/carehub/carehub/internal/cluster"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// Demo logins, as deploy/dev/demo.sh's.
const (
	demoToken     = "demo-admin-token-not-for-production"
	coordPassword = "demo-coordinator-password"
	carePassword  = "demo-caregiver-password"
)

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("carecluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", ".run/cluster", "working directory (emptied at start): logs and data of every process")
	homes := fs.Int("homes", 4, "simulated homes per broker")
	speed := fs.Float64("speed", 60, "simulated seconds per wall second")
	instances := fs.Int("instances", 3, "carehub instances")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := demo(ctx, *dir, *homes, *instances, *speed, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "carecluster: %v\n", err)
		return 1
	}
	return 0
}

func demo(ctx context.Context, dir string, homes, instances int, speed float64, stdout, stderr io.Writer) error {
	wd, _ := os.Getwd()
	root, err := cluster.RepoRoot(wd)
	if err != nil {
		return err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }
	logf("building nats-server (once), influxd (once), carehub and homesim ...")
	bin, err := cluster.Build(ctx, root, filepath.Join(dir, "bin"))
	if err != nil {
		return err
	}
	top, err := cluster.Start(ctx, cluster.Options{Dir: dir, Bin: bin, Instances: instances, AdminToken: demoToken, Logf: logf,
		Env: map[string]string{"CARE_LOG_FORMAT": "json"}})
	if err != nil {
		return err
	}
	defer func() { fmt.Fprintln(stdout, "\nstopping the cluster"); top.Close() }()

	// One homesim per broker: seeds 1, 2, ... give disjoint ids
	// (sim-{seed}-r0001 ...); each registers through a different instance.
	for i, broker := range top.BrokerURLs {
		api := top.Carehubs[i%len(top.Carehubs)].Base
		if _, err := top.Run(ctx, fmt.Sprintf("homesim-%d", i+1), bin.Homesim, "-api", api, "-token", top.AdminToken, "-mqtt", broker,
			"-homes", fmt.Sprint(homes), "-speed", fmt.Sprint(speed), "-seed", fmt.Sprint(i+1), "-incidents-per-day", "6",
			"-state", filepath.Join(dir, fmt.Sprintf("homesim-%d.json", i+1))); err != nil {
			return err
		}
	}
	if err := logins(ctx, top); err != nil {
		return err
	}

	fmt.Fprintf(stdout, "\ncarehub runs as %d instances on a 3-node NATS cluster and %d Mosquitto brokers, with %d simulated homes per broker (time runs %.0fx).\n",
		len(top.Carehubs), len(top.BrokerURLs), homes, speed)
	for _, c := range top.Carehubs {
		fmt.Fprintf(stdout, "  Console %-7s %s/\n", c.ID, c.Base)
	}
	fmt.Fprintf(stdout, "  Logins          coordinator: coord / %s, caregiver: care1 / %s\n", coordPassword, carePassword)
	fmt.Fprintf(stdout, "  API             admin token: %s\n", top.AdminToken)
	for i, u := range top.NATSURLs {
		fmt.Fprintf(stdout, "  NATS n%d         %s\n", i+1, u)
	}
	for i, u := range top.BrokerURLs {
		fmt.Fprintf(stdout, "  MQTT mqtt-%d     %s (homesim-%d's homes)\n", i+1, u, i+1)
	}
	fmt.Fprintf(stdout, "  InfluxDB        %s (database %s)\n  logs            %s/*.log\n", top.InfluxURL, top.InfluxDB, dir)
	fmt.Fprint(stdout, "\nKill a process to see the others carry on (kill -9 PID):\n ")
	for _, p := range append(append(append([]*cluster.Proc{}, top.NATS...), top.Brokers...), carehubProcs(top)...) {
		fmt.Fprintf(stdout, " %s=%d", p.Name, p.PID())
	}
	fmt.Fprintf(stdout, "\nTry: curl -s %s/readyz\nCtrl-C stops everything.\n", top.Carehubs[0].Base)
	<-ctx.Done()
	return nil
}

func carehubProcs(top *cluster.Topology) []*cluster.Proc {
	var ps []*cluster.Proc
	for _, c := range top.Carehubs {
		ps = append(ps, c.Proc)
	}
	return ps
}

// logins creates the demo's coordinator and a caregiver assigned the
// first resident, once homesim has registered it (409 on a rerun: fine).
func logins(ctx context.Context, top *cluster.Topology) error {
	base := top.Carehubs[0].Base
	call := func(method, path, body string) int {
		req, err := http.NewRequestWithContext(ctx, method, base+path, bytes.NewBufferString(body))
		if err != nil {
			return 0
		}
		req.Header.Set("Authorization", "Bearer "+top.AdminToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	const first = "sim-1-r0001" // homesim's ids are {prefix}-{seed}-r0001 ...
	deadline := time.Now().Add(60 * time.Second)
	for call(http.MethodGet, "/api/v1/residents/"+first, "") != http.StatusOK {
		if time.Now().After(deadline) {
			return fmt.Errorf("homesim registered no resident %s within 60 s; see its log homesim-1.log", first)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	call(http.MethodPost, "/api/v1/users", `{"id":"coord","name":"Demo Coordinator","role":"coordinator","password":"`+coordPassword+`"}`)
	call(http.MethodPost, "/api/v1/users", `{"id":"care1","name":"Demo Caregiver","role":"caregiver","password":"`+carePassword+`"}`)
	if code := call(http.MethodPut, "/api/v1/users/care1/residents", `{"resident_ids":["`+first+`"]}`); code != http.StatusOK && code != http.StatusNoContent {
		return fmt.Errorf("assigning %s to care1: HTTP %d", first, code)
	}
	return nil
}
