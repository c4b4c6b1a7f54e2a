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
	"sync"
	"time"

	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/natsx"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"
)

// benchAlerts measures the time from a device's MQTT publish of an SOS to the
// alert's arrival at a plain NATS subscriber (as a phone backend would be),
// while homesim's load mode keeps thousands of readings per second flowing.
func benchAlerts(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("alerts", flag.ContinueOnError)
	probes := fs.Int("probes", 400, "SOS presses to time")
	residents := fs.Int("residents", 50, "residents with an SOS button pressed in turn")
	rate := fs.Int("load-rate", 5000, "background readings per second")
	devices := fs.Int("load-devices", 2000, "background devices")
	if err := fs.Parse(args); err != nil {
		return err
	}
	e, err := newEnv(stderr)
	if err != nil {
		return err
	}
	defer e.close()
	broker, influxURL, err := e.services(ctx)
	if err != nil {
		return err
	}
	st, err := e.startCarehub(ctx, broker, influxURL, nil)
	if err != nil {
		return err
	}
	base, natsAddr, proc := st.base, st.natsAddr, st.proc

	// SOS buttons of the probe residents.
	fmt.Fprintf(stdout, "registering %d residents with SOS buttons and %d load devices ...\n", *residents, *devices)
	sos := make([]string, *residents)
	resOf := map[string]int{}
	for i := range sos {
		rid, did := fmt.Sprintf("bench-res-%03d", i), fmt.Sprintf("bench-sos-%03d", i)
		if err := post(base, "/api/v1/residents", map[string]any{"id": rid, "name": "Bench Resident", "home_id": fmt.Sprintf("bench-home-%03d", i)}); err != nil {
			return err
		}
		if err := post(base, "/api/v1/devices", map[string]any{"id": did, "kind": "sos", "resident_id": rid}); err != nil {
			return err
		}
		sos[i] = did
		resOf[rid] = i
	}
	state := filepath.Join(e.dir, "homesim-state.json")
	if _, err := e.homesim(ctx, "-load", "-register-only", "-devices", fmt.Sprint(*devices), "-api", base, "-token", benchToken,
		"-state", state, "-id-prefix", "bload", "-log-level", "warn"); err != nil {
		return err
	}

	// The phone backend: a plain NATS subscriber on care.alerts.>, logged
	// in with carehub's embedded-server secret from its data directory.
	secret, err := natsx.OwnSecret(st.dataDir)
	if err != nil {
		return err
	}
	nc, err := nats.Connect("nats://"+natsAddr, nats.UserInfo(natsx.OwnUser, secret))
	if err != nil {
		return err
	}
	defer nc.Close()
	var mu sync.Mutex
	sent := map[int]time.Time{} // probe residents' pending press → publish time
	var lat []time.Duration
	gotOne := make(chan struct{}, 1)
	_, err = nc.Subscribe(model.SubjectAlertsAll, func(m *nats.Msg) {
		now := time.Now()
		var a struct {
			ResidentID string `json:"resident_id"`
			Rule       string `json:"rule"`
			Transition string `json:"transition"`
		}
		if json.Unmarshal(m.Data, &a) != nil || a.Rule != "sos" || (a.Transition != "raised" && a.Transition != "repeated") {
			return
		}
		i, ok := resOf[a.ResidentID]
		if !ok {
			return
		}
		mu.Lock()
		if t, ok := sent[i]; ok {
			lat = append(lat, now.Sub(t))
			delete(sent, i)
		}
		mu.Unlock()
		select {
		case gotOne <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return err
	}

	// Background load for the whole measurement.
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	loadDone := make(chan error, 1)
	go func() {
		_, err := e.homesim(loadCtx, "-load", "-mqtt", broker, "-devices", fmt.Sprint(*devices), "-conns", "4",
			"-rate", fmt.Sprint(*rate), "-count", "0", "-duration", "10m", "-values", "3", "-per-device-conns=false",
			"-api", base, "-token", benchToken, "-state", state, "-id-prefix", "bload", "-log-level", "warn")
		loadDone <- err
	}()
	if err := waitFor(ctx, 60*time.Second, "the background load to reach carehub", func() bool {
		m, err := scrape(base)
		return err == nil && m[`carehub_ingest_messages_total{kind="telemetry",outcome="accepted"}`] > float64(*rate)
	}); err != nil {
		return err
	}

	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID("carebench-sos"))
	if tok := pub.Connect(); tok.Wait() && tok.Error() != nil {
		return tok.Error()
	}
	defer pub.Disconnect(100)
	fmt.Fprintf(stdout, "timing %d SOS presses under %d readings/s ...\n", *probes, *rate)
	m0, _ := scrape(base)
	for p := 0; p < *probes; p++ {
		i := p % *residents
		mu.Lock()
		t := time.Now()
		sent[i] = t
		mu.Unlock()
		payload := fmt.Sprintf(`{"ts":%d,"type":"sos"}`, t.UnixMilli())
		pub.Publish("care/v1/dev/"+sos[i]+"/event", 1, false, payload).Wait()
		select {
		case <-gotOne:
		case <-time.After(5 * time.Second):
		}
		// The same millisecond would be the same event (deduplicated by id).
		time.Sleep(20 * time.Millisecond) // pacing between presses, not a wait for a result
	}
	m1, _ := scrape(base)
	stopLoad()
	if err := <-loadDone; err != nil {
		return fmt.Errorf("alert load: %w", err)
	}
	peakRSS, _ := procStats(proc.Process.Pid)

	mu.Lock()
	defer mu.Unlock()
	if len(lat) < *probes*9/10 {
		return fmt.Errorf("only %d of %d SOS presses reached the subscriber", len(lat), *probes)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	readings := m1[`carehub_ingest_messages_total{kind="telemetry",outcome="accepted"}`] - m0[`carehub_ingest_messages_total{kind="telemetry",outcome="accepted"}`]
	fmt.Fprintf(stdout, "\n== bench-alerts: device MQTT publish -> alert at a NATS subscriber ==\n")
	fmt.Fprintf(stdout, "presses timed        %d of %d (residents %d)\n", len(lat), *probes, *residents)
	fmt.Fprintf(stdout, "latency              p50 %.1f ms   p90 %.1f ms   p99 %.1f ms   max %.1f ms\n", q(0.5), q(0.9), q(0.99), q(1))
	fmt.Fprintf(stdout, "background readings  %.0f accepted during the presses\n", readings)
	fmt.Fprintf(stdout, "carehub peak RSS     %.0f MB\n", peakRSS)
	return nil
}

func post(base, path string, body any) error {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", base+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+benchToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("POST %s: %s: %s", path, resp.Status, msg)
	}
	return nil
}
