package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/carehub/carehub/internal/cluster"
	"github.com/carehub/carehub/internal/model"
)

// benchCluster is make bench-cluster (issue 15): bench-ingest's load
// through the scaled-out topology (3 NATS nodes, 2 Mosquitto, InfluxDB)
// with 3 carehub instances and then with 1, the messages split over both
// brokers; then, under a steady load, the time the 3-instance topology
// takes to recover from a NATS node and from a carehub instance killed.
func benchCluster(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	messages := fs.Int("messages", 200000, "QoS 1 telemetry messages to publish, split over the brokers")
	devices := fs.Int("devices", 1000, "devices the messages come from, split over the brokers")
	conns := fs.Int("conns", 4, "loader connections per broker")
	values := fs.Int("values", 3, "values per message")
	pacedRate := fs.Float64("fault-rate", 2000, "steady load during the faults, msgs/s in total (0 = skip the faults)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	wd, _ := os.Getwd()
	root, err := cluster.RepoRoot(wd)
	if err != nil {
		return err
	}
	binDir, err := os.MkdirTemp("", "carebench-cluster-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(binDir)
	fmt.Fprintln(stdout, "building nats-server (once), influxd (once), carehub and homesim ...")
	bin, err := cluster.Build(ctx, root, binDir)
	if err != nil {
		return err
	}
	l := clusterLoad{bin: bin, messages: *messages, devices: *devices, conns: *conns, values: *values}
	var results []clusterResult
	for _, n := range []int{3, 1} {
		r, err := l.run(ctx, n, *pacedRate, stdout, stderr)
		if err != nil {
			return fmt.Errorf("%d instances: %w", n, err)
		}
		results = append(results, r)
	}
	fmt.Fprintf(stdout, "\n== bench-cluster: %d QoS 1 messages x %d values, %d devices, over 2 Mosquitto (%d loader connections each), 3 NATS nodes (R3) ==\n",
		l.messages, l.values, l.devices, l.conns)
	for _, r := range results {
		fmt.Fprintf(stdout, "%d carehub instance(s), stored   %10.0f msgs/s   lag p50 %6.0f ms   p99 %6.0f ms   (%.1f s for all; %d points in InfluxDB)\n",
			r.instances, r.rate, r.p50*1000, r.p99*1000, r.elapsed.Seconds(), r.points)
	}
	if len(results) == 2 && results[1].rate > 0 {
		fmt.Fprintf(stdout, "ratio 3 instances / 1                   %6.2f\n", results[0].rate/results[1].rate)
	}
	for _, f := range results[0].faults {
		if f.recovery < 0 {
			fmt.Fprintf(stdout, "recovery, %-44s not within %s: at worst %.0f%% of %.0f msgs/s stored (the rest waits for the restart)\n", f.what+":", faultWindow, f.worst*100, *pacedRate)
			continue
		}
		fmt.Fprintf(stdout, "recovery, %-44s %6.1f s to store 90%% of %.0f msgs/s again (±1 s); at worst %.0f%% meanwhile\n", f.what+":", f.recovery.Seconds(), *pacedRate, f.worst*100)
	}
	if *pacedRate > 0 {
		fmt.Fprintln(stdout, "recovery, kill -9 a Mosquitto: see make test-cluster (fault c); the loader does not reconnect")
	}
	return nil
}

type clusterLoad struct {
	bin                              cluster.Binaries
	messages, devices, conns, values int
}

type clusterResult struct {
	instances      int
	rate, p50, p99 float64
	elapsed        time.Duration
	points         int
	faults         []faultResult
}

type faultResult struct {
	what     string
	recovery time.Duration // -1: not within faultWindow
	worst    float64       // the lowest stored rate seen, as a fraction of the offered one
}

// faultWindow is how long a fault's recovery is awaited under the steady
// load (which lasts 30 s).
const faultWindow = 18 * time.Second

// run starts a topology of n instances, registers the devices, loads it
// and measures; with 3 instances, then the faults.
func (l clusterLoad) run(ctx context.Context, n int, pacedRate float64, stdout, stderr io.Writer) (r clusterResult, err error) {
	r.instances = n
	fmt.Fprintf(stdout, "starting 3 NATS nodes, 2 Mosquitto, InfluxDB and %d carehub instance(s) ...\n", n)
	top, err := cluster.Start(ctx, cluster.Options{Bin: l.bin, Instances: n, Gateway: true,
		Env: map[string]string{"CARE_LOG_LEVEL": "warn", "CARE_DEVICE_RATE": "1000000", "CARE_DEVICE_BURST": "1000000"}})
	if err != nil {
		return r, err
	}
	defer func() {
		if err != nil {
			fmt.Fprintf(stderr, "logs:\n%s\n", top.Logs(2000))
		}
		top.Close()
	}()
	perBroker := l.devices / len(top.BrokerURLs)
	fmt.Fprintf(stdout, "registering %d devices through the API ...\n", perBroker*len(top.BrokerURLs))
	for k := range top.BrokerURLs {
		api := l.api(top, k)
		p, err := top.Run(ctx, fmt.Sprintf("register-%d", k+1), l.bin.Homesim, "-load", "-register-only", "-devices", fmt.Sprint(perBroker),
			"-api", api, "-token", top.AdminToken, "-state", l.state(top, k), "-id-prefix", l.prefix(k), "-log-level", "warn")
		if err != nil {
			return r, err
		}
		if err := p.Wait(ctx); err != nil {
			return r, err
		}
	}
	bases := make([]string, n)
	for i, c := range top.Carehubs {
		bases[i] = c.Base
	}
	fmt.Fprintf(stdout, "%d instance(s): %d messages ...\n", n, l.messages)
	t0 := time.Now()
	if err := l.load(ctx, top, "load", l.messages, 0); err != nil {
		return r, err
	}
	storedAt, err := waitStored(ctx, bases, float64(l.messages), 10*time.Minute)
	if err != nil {
		return r, err
	}
	r.elapsed = storedAt.Sub(t0)
	r.rate = float64(l.messages) / r.elapsed.Seconds()
	merged := map[string]float64{}
	for _, b := range bases {
		m, err := scrape(b)
		if err != nil {
			return r, err
		}
		for k, v := range m {
			if strings.HasPrefix(k, "carehub_ingest_end_to_end_seconds_bucket{") {
				merged[k] += v
			}
		}
	}
	r.p50 = histogramQuantile(merged, "carehub_ingest_end_to_end_seconds", 0.50)
	r.p99 = histogramQuantile(merged, "carehub_ingest_end_to_end_seconds", 0.99)
	if r.points, err = countReadings(top.InfluxURL, top.InfluxDB); err != nil {
		return r, err
	}
	if r.points != l.messages {
		return r, fmt.Errorf("lost or duplicated readings: %d points in InfluxDB, %d published", r.points, l.messages)
	}
	if n > 1 && pacedRate > 0 {
		r.faults, err = l.faults(ctx, top, bases, pacedRate, stdout)
	}
	return r, err
}

// api is the instance broker k's devices register through; homesim's
// state file names it, so the loads name it too.
func (l clusterLoad) api(top *cluster.Topology, k int) string {
	return top.Carehubs[k%len(top.Carehubs)].Base
}

func (l clusterLoad) prefix(k int) string { return fmt.Sprintf("bench%d", k+1) }

func (l clusterLoad) state(top *cluster.Topology, k int) string {
	return filepath.Join(top.Dir, fmt.Sprintf("homesim-%d.json", k+1))
}

// load publishes count messages split over the brokers, at rate msgs/s in
// total (0 = as fast as the brokers take them), and waits for the loaders.
func (l clusterLoad) load(ctx context.Context, top *cluster.Topology, name string, count int, rate float64) error {
	var procs []*cluster.Proc
	nb := len(top.BrokerURLs)
	for k, broker := range top.BrokerURLs {
		args := []string{"-load", "-mqtt", broker, "-devices", fmt.Sprint(l.devices / nb), "-conns", fmt.Sprint(l.conns),
			"-count", fmt.Sprint(count / nb), "-values", fmt.Sprint(l.values), "-per-device-conns=false",
			"-gateway", cluster.GatewayUser + ":" + top.GatewayPassword,
			"-api", l.api(top, k), "-token", top.AdminToken, "-state", l.state(top, k), "-id-prefix", l.prefix(k), "-log-level", "warn"}
		if rate > 0 {
			args = append(args, "-rate", fmt.Sprint(rate/float64(nb)))
		}
		p, err := top.Run(ctx, fmt.Sprintf("%s-%d-%d", name, k+1, time.Now().UnixNano()%100000), l.bin.Homesim, args...)
		if err != nil {
			return err
		}
		procs = append(procs, p)
	}
	var errs []error
	for _, p := range procs {
		errs = append(errs, p.Wait(ctx))
	}
	return errors.Join(errs...)
}

// storedTotal is the readings every instance has written to InfluxDB.
func storedTotal(bases []string) float64 {
	total := 0.0
	for _, b := range bases {
		if m, err := scrape(b); err == nil {
			total += m[`carehub_influx_points_written_total{measurement="readings"}`]
		}
	}
	return total
}

// waitStored waits until the instances have written want readings in all.
func waitStored(ctx context.Context, bases []string, want float64, timeout time.Duration) (time.Time, error) {
	var at time.Time
	var got float64
	err := waitFor(ctx, timeout, "every reading stored", func() bool {
		got, at = storedTotal(bases), time.Now()
		return got >= want
	})
	if err != nil {
		return at, fmt.Errorf("%w (%.0f of %.0f stored)", err, got, want)
	}
	return at, nil
}

// faults kills, under a steady load, the NATS node leading CARE_READINGS
// and then a carehub instance (the alert leader when /readyz names one),
// and measures each time from the kill until the surviving instances
// store at least half the steady rate again over a second.
func (l clusterLoad) faults(ctx context.Context, top *cluster.Topology, bases []string, rate float64, stdout io.Writer) ([]faultResult, error) {
	var out []faultResult
	for _, f := range []struct {
		what string
		kill func() (restart func() error, err error)
	}{
		{"kill -9 the NATS node leading CARE_READINGS", func() (func() error, error) {
			i, err := top.StreamLeader(ctx, model.StreamReadings)
			if err != nil {
				return nil, err
			}
			top.NATS[i].Kill()
			return func() error { return top.NATS[i].Restart(ctx, time.Minute) }, nil
		}},
		{"kill -9 a carehub instance", func() (func() error, error) {
			i := top.AlertLeader(ctx)
			if i < 0 {
				i = 1
			}
			top.Carehubs[i].Kill()
			return func() error { return top.Carehubs[i].Restart(ctx, 2*time.Minute) }, nil
		}},
	} {
		fmt.Fprintf(stdout, "fault under %.0f msgs/s: %s ...\n", rate, f.what)
		const steady = 30 * time.Second
		loadDone := make(chan error, 1)
		go func() { loadDone <- l.load(ctx, top, "steady", int(rate*steady.Seconds()), rate) }()
		if err := waitFor(ctx, 30*time.Second, "the steady load to be stored", func() bool { return storedRate(bases, time.Second) >= rate/2 }); err != nil {
			return out, err
		}
		t0 := time.Now()
		restart, err := f.kill()
		if err != nil {
			return out, err
		}
		// Alive bases only: a killed instance answers no scrape.
		var alive []string
		for _, c := range top.Carehubs {
			if c.Running() {
				alive = append(alive, c.Base)
			}
		}
		// Recovered: the survivors store 90 % of the offered rate again
		// over a second. What they store meanwhile is the fraction of the
		// load that still flows (a dead instance's share of the shared
		// subscription waits in its broker sessions until it is back).
		res := faultResult{what: f.what, recovery: -1, worst: 1}
		deadline := time.Now().Add(faultWindow)
		for time.Now().Before(deadline) {
			r := storedRate(alive, time.Second)
			res.worst = min(res.worst, r/rate)
			if r >= 0.9*rate {
				res.recovery = time.Since(t0)
				break
			}
		}
		out = append(out, res)
		if err := <-loadDone; err != nil {
			return out, err
		}
		if err := restart(); err != nil {
			return out, err
		}
	}
	return out, nil
}

// storedRate is the readings stored per second across bases, over window.
func storedRate(bases []string, window time.Duration) float64 {
	a := storedTotal(bases)
	time.Sleep(window)
	return (storedTotal(bases) - a) / window.Seconds()
}
