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
	pacedRate                        float64
	pacedFor                         time.Duration
	compare                          string
	storm                            bool
	sampleEvery                      time.Duration
	ingestBatch                      int
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
	fs.IntVar(&f.ingestBatch, "ingest-batch", -1, "readings per cross-device JetStream batch (CARE_INGEST_BATCH; 0 = off, -1 = carehub's default)")
	fs.BoolVar(&f.embedded, "embedded", false, "devices publish to carehub's embedded broker (one connection each) instead of Mosquitto; no broker-only run")
	fs.Float64Var(&f.pacedRate, "paced-rate", 0, "then a steady load at this many msgs/s, to measure lag without a backlog (0 = half the rate measured, -1 = skip)")
	fs.DurationVar(&f.pacedFor, "paced-for", 15*time.Second, "how long the steady load lasts (0 = skip it)")
	fs.BoolVar(&f.storm, "storm", false, "make the steady load an alert storm: every reading's systolic_bp crosses its threshold and back on alternate rounds (about one alert transition a message)")
	fs.DurationVar(&f.sampleEvery, "sample-every", 5*time.Second, "during the steady load, sample carehub's CPU and RSS this often")
	fs.StringVar(&f.compare, "compare", "", `"telegraf": the same load through Telegraf v1.37.2 (tuned; built into the cache once, about 10 minutes) into a database of its own`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if f.storm && (f.pacedRate < 0 || f.pacedFor <= 0) {
		return fmt.Errorf("-storm is a steady load: give -paced-rate and -paced-for")
	}
	if f.sampleEvery < time.Second {
		return fmt.Errorf("-sample-every must be at least 1s")
	}
	if f.compare != "" && (f.compare != "telegraf" || f.embedded) {
		return fmt.Errorf("-compare: only \"telegraf\", and only through Mosquitto (not -embedded)")
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

	var tg telegrafResult
	if f.compare == "telegraf" {
		if tg, err = runTelegraf(ctx, e, f.messages, broker, influxURL, load, stdout); err != nil {
			return err
		}
	}

	// 2. carehub: Mosquitto (or its embedded broker) → ingest → JetStream →
	// writer → InfluxDB.
	// The loader sends each device's messages as fast as the broker takes
	// them, far over a real device's quota (CARE_DEVICE_RATE): the bench
	// measures carehub's throughput, not the quota.
	vars := map[string]string{"CARE_MQTT_CONNECTIONS": fmt.Sprint(f.mqttConns), "CARE_DEVICE_RATE": "1000000", "CARE_DEVICE_BURST": "1000000"}
	if f.ingestBatch >= 0 {
		vars["CARE_INGEST_BATCH"] = fmt.Sprint(f.ingestBatch)
	}
	external := broker
	if f.embedded {
		listen := fmt.Sprintf("127.0.0.1:%d", freePort())
		vars["CARE_MQTT_LISTEN"] = listen
		// Every simulated device connects from the loopback address.
		vars["CARE_MQTT_MAX_CONNECTIONS_PER_ADDR"] = fmt.Sprint(max(256, f.devices+64))
		vars["CARE_MQTT_MAX_CONNECTIONS"] = fmt.Sprint(max(10000, f.devices+64))
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
	others0 := e.cpuByProcess("mosquitto", "influxd")
	fmt.Fprintf(stdout, "carehub: %d messages of %d values from %d devices over %d connections ...\n", f.messages, f.values, f.devices, f.conns)
	loadArgs := []string{"-api", base, "-token", benchToken, "-state", state}
	elapsed, err := loadAndWait(ctx, e, base, 0, f.messages, 10*time.Minute, func() error { return load("bench", broker, loadArgs...) })
	if err != nil {
		return err
	}
	m, err := scrape(base)
	if err != nil {
		return err
	}
	peakRSS, cpu1 := procStats(proc.Process.Pid)
	others1 := e.cpuByProcess("mosquitto", "influxd")
	rate := float64(f.messages) / elapsed.Seconds()
	p50 := histogramQuantile(m, "carehub_ingest_end_to_end_seconds", 0.50)
	p99 := histogramQuantile(m, "carehub_ingest_end_to_end_seconds", 0.99)
	// 3. A steady load below what carehub sustains: the lag of a reading
	// when no backlog is queued in front of it.
	paced, pacedRate := 0, f.pacedRate
	var pacedP50, pacedP99 float64
	var samples []steadyRow
	if pacedRate == 0 {
		pacedRate = float64(int(rate/2/1000)) * 1000
	}
	if pacedRate >= 1 && f.pacedFor > 0 {
		// What the burst left behind (InfluxDB compacting, carehub's
		// collector) is not the steady load's lag: wait until both idle.
		for _, name := range []string{"influxd", "carehub"} {
			if _, err := e.settle(ctx, name, time.Minute); err != nil {
				return err
			}
		}
		paced = int(pacedRate * f.pacedFor.Seconds())
		kind := "steady load"
		args := append([]string{"-rate", fmt.Sprint(pacedRate)}, loadArgs...)
		args = append(args, "-count", fmt.Sprint(paced)) // the last -count counts
		if f.storm {
			kind = "alert storm"
			args = append(args, "-storm")
		}
		fmt.Fprintf(stdout, "%s: %d messages at %.0f msgs/s over %s, sampled every %s ...\n", kind, paced, pacedRate, f.pacedFor, f.sampleEvery)
		stop := make(chan struct{})
		sampled := make(chan []steadyRow, 1)
		go func() { sampled <- sampleSteady(proc.Process.Pid, base, f.sampleEvery, f.storm, stop, stdout) }()
		_, err := loadAndWait(ctx, e, base, f.messages, paced, f.pacedFor+10*time.Minute, func() error { return load("bench", broker, args...) })
		close(stop)
		samples = <-sampled
		if err != nil {
			return err
		}
		m2, err := scrape(base)
		if err != nil {
			return err
		}
		d := histogramDelta(m2, m, "carehub_ingest_end_to_end_seconds")
		m = m2
		pacedP50 = histogramQuantile(d, "carehub_ingest_end_to_end_seconds", 0.50)
		pacedP99 = histogramQuantile(d, "carehub_ingest_end_to_end_seconds", 0.99)
	}
	rejected := 0.0
	var reasons []string
	for k, v := range m {
		if strings.HasPrefix(k, "carehub_ingest_rejected_total") && v > 0 {
			rejected += v
			reasons = append(reasons, fmt.Sprintf("%s=%.0f", strings.TrimSuffix(strings.TrimPrefix(k, `carehub_ingest_rejected_total{reason="`), `"}`), v))
		}
	}

	inDB, err := countReadings(influxURL, "care")
	if err != nil {
		fmt.Fprintf(stderr, "counting points in InfluxDB: %v\n", err)
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
	if tg.rate > 0 {
		fmt.Fprintf(stdout, "telegraf v1.37.2, stored            %10.0f msgs/s   CPU %.1f µs a message   peak RSS %.0f MB   (%d points)\n",
			tg.rate, tg.cpuSec/float64(f.messages)*1e6, tg.peakRSSMB, tg.stored)
		fmt.Fprintf(stdout, "ratio carehub / telegraf            %10.2f\n", rate/tg.rate)
	}
	fmt.Fprintf(stdout, "end-to-end lag (publish to stored)  p50 %6.0f ms   p99 %6.0f ms   (a backlog: the loader outruns carehub)\n", p50*1000, p99*1000)
	if paced > 0 {
		fmt.Fprintf(stdout, "lag at a steady %6.0f msgs/s       p50 %6.0f ms   p99 %6.0f ms   (%d messages over %s)\n", pacedRate, pacedP50*1000, pacedP99*1000, paced, f.pacedFor)
		printSteadyTotals(stdout, samples, f.storm)
	}
	fmt.Fprintf(stdout, "carehub peak RSS                    %10.0f MB\n", peakRSS)
	fmt.Fprintf(stdout, "carehub CPU during the load         %10.1f s   (%.1f µs a message)\n", cpu1-cpu0, (cpu1-cpu0)/float64(f.messages)*1e6)
	for _, name := range []string{"mosquitto", "influxd"} {
		if c, ok := others1[name]; ok {
			fmt.Fprintf(stdout, "%-9s CPU during the load         %8.1f s   (%.1f µs a message)\n", name, c-others0[name], (c-others0[name])/float64(f.messages)*1e6)
		}
	}
	fmt.Fprintf(stdout, "points in InfluxDB                  %10d (want %d)   rejected: %.0f %v\n", inDB, f.messages+paced, rejected, reasons)
	if inDB != f.messages+paced {
		return fmt.Errorf("lost or duplicated readings: %d points in InfluxDB, %d published", inDB, f.messages+paced)
	}
	return nil
}

// loadAndWait runs load and waits until InfluxDB holds n more readings
// than before (by carehub's counter), returning the time from the load's
// start to the last of them stored.
func loadAndWait(ctx context.Context, e *env, base string, before, n int, timeout time.Duration, load func() error) (time.Duration, error) {
	t0 := time.Now()
	done := make(chan error, 1)
	go func() { done <- load() }()
	var stored float64
	var storedAt time.Time
	err := waitFor(ctx, timeout, "every reading stored", func() bool {
		m, err := scrape(base)
		if err != nil {
			return false
		}
		stored = m[`carehub_influx_points_written_total{measurement="readings"}`]
		storedAt = time.Now()
		return stored >= float64(before+n)
	})
	if err != nil {
		return 0, fmt.Errorf("%w (%.0f of %d stored)\n%s", err, stored-float64(before), n, e.logTail("carehub"))
	}
	if err := <-done; err != nil {
		return 0, err
	}
	return storedAt.Sub(t0), nil
}

// histogramDelta is histogram name in now minus in before: what was
// observed in between.
func histogramDelta(now, before map[string]float64, name string) map[string]float64 {
	d := map[string]float64{}
	for k, v := range now {
		if strings.HasPrefix(k, name+"_bucket{") {
			d[k] = v - before[k]
		}
	}
	return d
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
