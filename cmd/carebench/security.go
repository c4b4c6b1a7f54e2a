package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"time"
)

// probeTarget is the running carehub a security probe attacks: carehub with
// its embedded MQTT broker and NATS server, against a real InfluxDB.
type probeTarget struct {
	HTTP       string // API base, http://host:port
	MQTTAddr   string // embedded broker, host:port
	NATSAddr   string // embedded NATS, host:port
	AdminToken string // the bootstrap admin's bearer token
	DataDir    string // carehub's CARE_DATA_DIR
	PID        int    // carehub's process id, for memory readings
	InstanceID string // CARE_INSTANCE_ID: names carehub's own broker user and client ids
}

// probeResult is what one probe found: Pass says whether carehub held.
type probeResult struct {
	Pass   bool
	Detail string
}

// securityProbe is one black-box attack on a running carehub. Each file
// secprobe_*.go registers its probes in an init function.
type securityProbe struct {
	name string
	run  func(ctx context.Context, t probeTarget) probeResult
}

var securityProbes []securityProbe

func registerProbe(name string, run func(ctx context.Context, t probeTarget) probeResult) {
	securityProbes = append(securityProbes, securityProbe{name: name, run: run})
}

// benchSecurity starts carehub on its embedded broker and NATS and runs
// every registered probe against it, printing each one's result. It fails
// when any probe finds a hole.
func benchSecurity(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("security", flag.ContinueOnError)
	only := fs.String("only", "", "run only the probe of this name")
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	e, err := newEnv(stderr)
	if err != nil {
		return err
	}
	defer e.close()
	influxURL, err := e.influxd(ctx, "care")
	if err != nil {
		return err
	}
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort())
	mqttAddr := fmt.Sprintf("127.0.0.1:%d", freePort())
	natsAddr := fmt.Sprintf("127.0.0.1:%d", freePort())
	dataDir := filepath.Join(e.dir, "carehub")
	proc, err := e.carehub(ctx, map[string]string{
		"CARE_HTTP_ADDR": httpAddr, "CARE_MQTT_LISTEN": mqttAddr, "CARE_NATS_LISTEN": natsAddr,
		"CARE_INFLUX_URL": influxURL, "CARE_INFLUX_BUCKET": "care", "CARE_DATA_DIR": dataDir,
		"CARE_ADMIN_TOKEN": benchToken, "CARE_LOG_LEVEL": "warn", "CARE_INSTANCE_ID": "security",
	})
	if err != nil {
		return err
	}
	target := probeTarget{HTTP: "http://" + httpAddr, MQTTAddr: mqttAddr, NATSAddr: natsAddr,
		AdminToken: benchToken, DataDir: dataDir, PID: proc.Process.Pid, InstanceID: "security"}
	probes := append([]securityProbe(nil), securityProbes...)
	sort.Slice(probes, func(i, j int) bool { return probes[i].name < probes[j].name })
	failed, ran := 0, 0
	for _, p := range probes {
		if *only != "" && p.name != *only {
			continue
		}
		ran++
		pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		start := time.Now()
		r := p.run(pctx, target)
		cancel()
		verdict := "held"
		if !r.Pass {
			verdict = "HOLE"
			failed++
		}
		fmt.Fprintf(stdout, "%-28s %-5s %6.1fs  %s\n", p.name, verdict, time.Since(start).Seconds(), r.Detail)
	}
	fmt.Fprintf(stdout, "security: %d probes, %d held, %d found a hole\n", ran, ran-failed, failed)
	if failed > 0 {
		return fmt.Errorf("%d probes found a hole", failed)
	}
	return nil
}
