package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
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

// probePost, probeGet and probeDo call the API as the bootstrap admin; a
// non-2xx answer is an error that quotes the answer.
func probePost(ctx context.Context, t probeTarget, path string, body, out any) error {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(ctx, "POST", t.HTTP+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	return probeDo(req, t, out)
}

func probeGet(ctx context.Context, t probeTarget, path string, out any) error {
	req, _ := http.NewRequestWithContext(ctx, "GET", t.HTTP+path, nil)
	return probeDo(req, t, out)
}

func probeDo(req *http.Request, t probeTarget, out any) error {
	req.Header.Set("Authorization", "Bearer "+t.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return &statusError{code: resp.StatusCode, call: req.Method + " " + req.URL.Path, body: string(b)}
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// statusError is a non-2xx answer of the API; probes check its code.
type statusError struct {
	code       int
	call, body string
}

func (e *statusError) Error() string { return fmt.Sprintf("%s: HTTP %d: %s", e.call, e.code, e.body) }

type probeDevice struct{ id, resident, password string }

// probeRegister creates a resident and a device of kind as the admin and
// returns the device's MQTT password; deviceID "" lets carehub choose.
func probeRegister(ctx context.Context, t probeTarget, residentID, deviceID, kind string) (probeDevice, error) {
	if err := probePost(ctx, t, "/api/v1/residents", map[string]any{"id": residentID, "name": "Probe Resident", "home_id": "home-" + residentID}, nil); err != nil {
		return probeDevice{}, err
	}
	body := map[string]any{"kind": kind, "resident_id": residentID}
	if deviceID != "" {
		body["id"] = deviceID
	}
	var d struct {
		ID   string `json:"id"`
		MQTT struct {
			Password string `json:"password"`
		} `json:"mqtt"`
	}
	if err := probePost(ctx, t, "/api/v1/devices", body, &d); err != nil {
		return probeDevice{}, err
	}
	if d.MQTT.Password == "" {
		return probeDevice{}, fmt.Errorf("no MQTT password for device %q", d.ID)
	}
	return probeDevice{id: d.ID, resident: residentID, password: d.MQTT.Password}, nil
}
