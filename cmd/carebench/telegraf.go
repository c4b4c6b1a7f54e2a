package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// telegrafResult is what the general-purpose tool did with the same load.
type telegrafResult struct {
	rate      float64 // messages stored per second
	cpuSec    float64 // telegraf's CPU during the load
	peakRSSMB float64
	stored    int
}

// telegrafConfig is Telegraf tuned as a care program would tune it for this
// load: a persistent QoS 1 session with room for 10,000 undelivered
// messages, and InfluxDB batches of 5,000. The payload is carehub's
// telemetry ({"ts": ms, "values": {...}}); the device id comes from the topic.
func telegrafConfig(broker, influxURL, db string) string {
	return fmt.Sprintf(`[agent]
  interval = "1s"
  flush_interval = "100ms"
  flush_jitter = "0s"
  metric_batch_size = 5000
  metric_buffer_limit = 200000
  omit_hostname = true

[[inputs.mqtt_consumer]]
  servers = [%q]
  topics = ["care/v1/dev/+/telemetry"]
  qos = 1
  persistent_session = true
  client_id = "carebench-telegraf"
  max_undelivered_messages = 10000
  data_format = "json_v2"
  [[inputs.mqtt_consumer.topic_parsing]]
    topic = "care/v1/dev/+/telemetry"
    tags = "_/_/_/device_id/_"
  [[inputs.mqtt_consumer.json_v2]]
    measurement_name = "readings"
    timestamp_path = "ts"
    timestamp_format = "unix_ms"
    [[inputs.mqtt_consumer.json_v2.object]]
      path = "values"

[[outputs.influxdb_v2]]
  urls = [%q]
  bucket = "%s/autogen"
  token = ""
  organization = ""
  metric_batch_size = 5000
`, broker, influxURL, db)
}

// runTelegraf stores the loader's messages with Telegraf into a database of
// its own, checks every one arrived, and returns its figures.
func runTelegraf(ctx context.Context, e *env, messages int, broker, influxURL string, load func(prefix, broker string, extra ...string) error, stdout io.Writer) (telegrafResult, error) {
	var r telegrafResult
	out, err := exec.CommandContext(ctx, filepath.Join(e.root, "deploy", "dev", "telegraf.sh"), "path").Output()
	if err != nil {
		return r, fmt.Errorf("telegraf: %w", err)
	}
	bin := strings.TrimSpace(string(out))
	const db = "telegraf"
	resp, err := http.PostForm(influxURL+"/query", url.Values{"q": {"CREATE DATABASE " + db}})
	if err != nil {
		return r, err
	}
	resp.Body.Close()
	conf := filepath.Join(e.dir, "telegraf.conf")
	if err := os.WriteFile(conf, []byte(telegrafConfig(broker, influxURL, db)), 0o644); err != nil {
		return r, err
	}
	cmd := exec.CommandContext(ctx, bin, "--config", conf)
	if err := e.start("telegraf", cmd); err != nil {
		return r, err
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_, _ = cmd.Process.Wait()
	}()
	// Telegraf subscribes once it is connected; a message before that would
	// be lost to it, not to the comparison.
	if err := waitFor(ctx, 30*time.Second, "telegraf subscribed", func() bool {
		return strings.Contains(e.logTail("telegraf"), "Connected")
	}); err != nil {
		return r, fmt.Errorf("%w\n%s", err, e.logTail("telegraf"))
	}
	fmt.Fprintf(stdout, "telegraf: %d messages ...\n", messages)
	_, cpu0 := procStats(cmd.Process.Pid)
	t0 := time.Now()
	done := make(chan error, 1)
	go func() { done <- load("tlg", broker, "-register=false") }()
	// Counting is an InfluxQL query over everything stored: poll it
	// sparingly, so the count does not slow down what it measures.
	var storedAt time.Time
	deadline := time.Now().Add(10 * time.Minute)
	for r.stored < messages {
		if time.Now().After(deadline) {
			return r, fmt.Errorf("telegraf stored %d of %d messages in 10 minutes\n%s", r.stored, messages, e.logTail("telegraf"))
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		if n, err := countReadings(influxURL, db); err == nil {
			r.stored, storedAt = n, time.Now()
		}
	}
	if err := <-done; err != nil {
		return r, err
	}
	r.peakRSSMB, r.cpuSec = procStats(cmd.Process.Pid)
	r.cpuSec -= cpu0
	r.rate = float64(messages) / storedAt.Sub(t0).Seconds()
	if r.stored != messages {
		return r, fmt.Errorf("telegraf stored %d points for %d messages", r.stored, messages)
	}
	return r, nil
}
