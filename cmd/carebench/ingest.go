package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

const benchToken = "carebench-admin-token-0123456789"

type ingestFlags struct {
	messages, devices, conns, values int
	mqttConns                        int
	embedded                         bool
}

// benchIngest measures messages stored per second end to end, device lag
// and carehub's footprint, against the broker-only rate of the same run.
func benchIngest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f ingestFlags
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	fs.IntVar(&f.messages, "messages", 200000, "QoS 1 telemetry messages to publish")
	fs.IntVar(&f.devices, "devices", 1000, "devices the messages come from")
	fs.IntVar(&f.conns, "conns", 4, "loader connections")
	fs.IntVar(&f.values, "values", 3, "values per message")
	fs.IntVar(&f.mqttConns, "carehub-conns", 4, "carehub's subscriber connections (CARE_MQTT_CONNECTIONS)")
	fs.BoolVar(&f.embedded, "embedded", false, "devices publish to carehub's embedded broker (one connection each) instead of Mosquitto; no broker-only run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	e, err := newEnv(stderr)
	if err != nil {
		return err
	}
	defer e.close()

	fmt.Fprintln(stdout, "starting Mosquitto (deploy/mosquitto/carehub.conf) and InfluxDB 1.8 ...")
	broker, influxURL, err := e.services(ctx)
	if err != nil {
		return err
	}
	perDevice := "-per-device-conns=false"
	if f.embedded {
		perDevice = "-per-device-conns=true"
	}
	load := func(prefix, broker string, extra ...string) error {
		args := append([]string{"-load", "-mqtt", broker, "-devices", fmt.Sprint(f.devices), "-conns", fmt.Sprint(f.conns),
			"-count", fmt.Sprint(f.messages), "-values", fmt.Sprint(f.values), perDevice,
			"-id-prefix", prefix, "-log-level", "warn"}, extra...)
		_, err := e.homesim(ctx, args...)
		return err
	}

	// 1. The broker alone: a subscriber that only counts.
	brokerRate := 0.0
	if !f.embedded {
		if brokerRate, err = brokerOnly(ctx, f, broker, load, stdout); err != nil {
			return err
		}
	}

	// 2. carehub: Mosquitto (or its embedded broker) → ingest → JetStream →
	// writer → InfluxDB.
	vars := map[string]string{"CARE_MQTT_CONNECTIONS": fmt.Sprint(f.mqttConns)}
	external := broker
	if f.embedded {
		listen := fmt.Sprintf("127.0.0.1:%d", freePort())
		vars["CARE_MQTT_LISTEN"] = listen
		external, broker = "", "tcp://"+listen
	}
	st, err := e.startCarehub(ctx, external, influxURL, vars)
	if err != nil {
		return err
	}
	base, proc := st.base, st.proc
	state := filepath.Join(e.dir, "homesim-state.json")
	fmt.Fprintf(stdout, "registering %d devices through the API ...\n", f.devices)
	if _, err := e.homesim(ctx, "-load", "-register-only", "-devices", fmt.Sprint(f.devices), "-api", base, "-token", benchToken,
		"-state", state, "-id-prefix", "bench", "-log-level", "warn"); err != nil {
		return err
	}
	_, cpu0 := procStats(proc.Process.Pid)
	fmt.Fprintf(stdout, "carehub: %d messages of %d values from %d devices over %d connections ...\n", f.messages, f.values, f.devices, f.conns)
	t0 := time.Now()
	done := make(chan error, 1)
	go func() {
		done <- load("bench", broker, "-api", base, "-token", benchToken, "-state", state)
	}()
	var stored float64
	var storedAt time.Time
	err = waitFor(ctx, 10*time.Minute, "every reading stored", func() bool {
		m, err := scrape(base)
		if err != nil {
			return false
		}
		stored = m[`carehub_influx_points_written_total{measurement="readings"}`]
		storedAt = time.Now()
		return stored >= float64(f.messages)
	})
	if err != nil {
		return fmt.Errorf("%w (%.0f of %d stored)\n%s", err, stored, f.messages, e.logTail("carehub"))
	}
	if err := <-done; err != nil {
		return err
	}
	elapsed := storedAt.Sub(t0)
	m, err := scrape(base)
	if err != nil {
		return err
	}
	peakRSS, cpu1 := procStats(proc.Process.Pid)
	inDB, err := countReadings(influxURL, "care")
	if err != nil {
		fmt.Fprintf(stderr, "counting points in InfluxDB: %v\n", err)
	}
	rate := float64(f.messages) / elapsed.Seconds()
	p50 := histogramQuantile(m, "carehub_ingest_end_to_end_seconds", 0.50)
	p99 := histogramQuantile(m, "carehub_ingest_end_to_end_seconds", 0.99)
	rejected := 0.0
	var reasons []string
	for k, v := range m {
		if strings.HasPrefix(k, "carehub_ingest_rejected_total") && v > 0 {
			rejected += v
			reasons = append(reasons, fmt.Sprintf("%s=%.0f", strings.TrimSuffix(strings.TrimPrefix(k, `carehub_ingest_rejected_total{reason="`), `"}`), v))
		}
	}

	if f.embedded {
		fmt.Fprintf(stdout, "\n== bench-ingest, embedded broker: %d QoS 1 messages x %d values, %d devices on a connection each ==\n",
			f.messages, f.values, f.devices)
	} else {
		fmt.Fprintf(stdout, "\n== bench-ingest: %d QoS 1 messages x %d values, %d devices, %d loader connections, %d carehub connections ==\n",
			f.messages, f.values, f.devices, f.conns, f.mqttConns)
		fmt.Fprintf(stdout, "broker only (counting subscriber)   %10.0f msgs/s\n", brokerRate)
	}
	fmt.Fprintf(stdout, "carehub, stored in InfluxDB         %10.0f msgs/s   %10.0f values/s   (%.1f s for all)\n", rate, rate*float64(f.values), elapsed.Seconds())
	if brokerRate > 0 {
		fmt.Fprintf(stdout, "ratio carehub / broker only         %10.2f\n", rate/brokerRate)
	}
	fmt.Fprintf(stdout, "end-to-end lag (publish to stored)  p50 %6.0f ms   p99 %6.0f ms\n", p50*1000, p99*1000)
	fmt.Fprintf(stdout, "carehub peak RSS                    %10.0f MB\n", peakRSS)
	fmt.Fprintf(stdout, "carehub CPU during the load         %10.1f s\n", cpu1-cpu0)
	fmt.Fprintf(stdout, "points in InfluxDB                  %10d (want %d)   rejected: %.0f %v\n", inDB, f.messages, rejected, reasons)
	if inDB != f.messages {
		return fmt.Errorf("lost or duplicated readings: %d points in InfluxDB, %d published", inDB, f.messages)
	}
	return nil
}

// brokerOnly measures Mosquitto alone: the loader's messages to a
// subscriber that only counts them.
func brokerOnly(ctx context.Context, f ingestFlags, broker string, load func(prefix, broker string, extra ...string) error, stdout io.Writer) (float64, error) {
	fmt.Fprintf(stdout, "broker only: %d messages from %d devices over %d connections to a counting subscriber ...\n", f.messages, f.devices, f.conns)
	var got atomic.Int64
	var last atomic.Int64
	sub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID("carebench-counter").SetCleanSession(true).
		SetDefaultPublishHandler(func(mqtt.Client, mqtt.Message) { got.Add(1); last.Store(time.Now().UnixNano()) }))
	if tok := sub.Connect(); tok.Wait() && tok.Error() != nil {
		return 0, tok.Error()
	}
	defer sub.Disconnect(100)
	if tok := sub.Subscribe("$share/bench/care/v1/dev/+/telemetry", 1, nil); tok.Wait() && tok.Error() != nil {
		return 0, tok.Error()
	}
	t0 := time.Now()
	if err := load("brk", broker, "-register=false"); err != nil {
		return 0, err
	}
	if err := waitFor(ctx, 2*time.Minute, "the counting subscriber to get every message", func() bool { return got.Load() >= int64(f.messages) }); err != nil {
		return 0, err
	}
	return float64(f.messages) / time.Unix(0, last.Load()).Sub(t0).Seconds(), nil
}

// countReadings counts the readings points with InfluxQL: the number of
// heart_rate values, which every loader message carries.
func countReadings(influxURL, db string) (int, error) {
	resp, err := http.PostForm(influxURL+"/query", url.Values{"db": {db}, "epoch": {"ms"}, "q": {`SELECT count("heart_rate") FROM "readings"`}})
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Results []struct {
			Series []struct {
				Values [][]json.Number `json:"values"`
			} `json:"series"`
		} `json:"results"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, err
	}
	if len(r.Results) == 0 || len(r.Results[0].Series) == 0 || len(r.Results[0].Series[0].Values) == 0 {
		return 0, nil
	}
	n, err := r.Results[0].Series[0].Values[0][1].Int64()
	return int(n), err
}
