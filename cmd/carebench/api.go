package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// benchAPI backfills a week of one-minute vitals for many residents through
// MQTT, then times the readings endpoint, the residents overview and an
// alert's fan-out to concurrent SSE clients.
func benchAPI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("api", flag.ContinueOnError)
	homes := fs.Int("homes", 100, "residents with a week of one-minute data")
	week := fs.Duration("backfill", 7*24*time.Hour, "history to backfill")
	requests := fs.Int("requests", 200, "readings requests to time")
	sseClients := fs.Int("sse", 200, "concurrent SSE clients")
	hold := fs.Bool("hold", false, "after measuring, keep carehub and InfluxDB running until interrupted (to profile or query them)")
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
	st, err := e.startCarehub(ctx, broker, influxURL, seedVars)
	if err != nil {
		return err
	}
	base := st.base
	if err := e.seedWeek(ctx, base, broker, *homes, *week, stdout); err != nil {
		return err
	}

	residents, err := listResidents(base)
	if err != nil {
		return err
	}
	if len(residents) == 0 {
		return fmt.Errorf("no residents registered")
	}
	// Readings: one resident, 7 days, hourly mean.
	to := time.Now().UTC().Truncate(time.Second)
	from := to.Add(-*week)
	var readLat []time.Duration
	points := 0
	for i := 0; i < *requests; i++ {
		r := residents[i%len(residents)]
		q := url.Values{"metric": {"heart_rate"}, "from": {from.Format(time.RFC3339)}, "to": {to.Format(time.RFC3339)}, "every": {"1h"}, "fn": {"mean"}}
		start := time.Now()
		var out struct {
			Points []json.RawMessage `json:"points"`
		}
		if err := getJSON(base+"/api/v1/residents/"+r+"/readings?"+q.Encode(), &out); err != nil {
			return err
		}
		readLat = append(readLat, time.Since(start))
		points += len(out.Points)
	}
	// Overview of every resident.
	var ovLat []time.Duration
	for i := 0; i < 20; i++ {
		start := time.Now()
		var out json.RawMessage
		if err := getJSON(base+"/api/v1/overview", &out); err != nil {
			return err
		}
		ovLat = append(ovLat, time.Since(start))
	}
	// SSE fan-out: clients connected, then one SOS.
	sseLat, err := sseFanOut(ctx, base, broker, *sseClients, stdout)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\n== bench-api: %d residents, %s of one-minute data ==\n", len(residents), *week)
	fmt.Fprintf(stdout, "readings 7 d hourly mean  p50 %6.1f ms  p95 %6.1f ms  (%d requests, %.0f points each)\n",
		ms(quantile(readLat, 0.5)), ms(quantile(readLat, 0.95)), len(readLat), float64(points)/float64(len(readLat)))
	fmt.Fprintf(stdout, "overview of %d residents p50 %6.1f ms  p95 %6.1f ms  (20 requests)\n", len(residents), ms(quantile(ovLat, 0.5)), ms(quantile(ovLat, 0.95)))
	fmt.Fprintf(stdout, "SSE fan-out to %d clients p50 %6.1f ms  p95 %6.1f ms  max %6.1f ms (SOS publish to event at each client)\n",
		len(sseLat), ms(quantile(sseLat, 0.5)), ms(quantile(sseLat, 0.95)), ms(quantile(sseLat, 1)))
	if *hold {
		fmt.Fprintf(stdout, "\nholding: carehub %s (token %s), InfluxDB %s, data in %s; Ctrl-C ends\n", base, benchToken, influxURL, e.dir)
		<-ctx.Done()
	}
	return nil
}

// seedVars lift each device's telemetry quota (CARE_DEVICE_RATE, 20
// records/s by default) for a carehub that seedWeek fills: a backfill
// sends a device's week as fast as the broker takes it, which the quota
// would reject after the first two catch-up arrays.
var seedVars = map[string]string{"CARE_DEVICE_RATE": "1000000", "CARE_DEVICE_BURST": "1000000"}

// seedWeek registers homes (homesim's, with every device a home has) and
// backfills week of one-minute data through MQTT, waits until carehub has
// stored it all, then until InfluxDB has finished compacting it: the week
// is history, timed as a coordinator meets it, not in the minute after a
// million points arrived.
func (e *env) seedWeek(ctx context.Context, base, broker string, homes int, week time.Duration, stdout io.Writer) error {
	fmt.Fprintf(stdout, "registering %d homes and backfilling %s of one-minute data ...\n", homes, week)
	state := filepath.Join(e.dir, "homesim-state.json")
	t0 := time.Now()
	if _, err := e.homesim(ctx, "-backfill", week.String(), "-interval", "1m", "-homes", fmt.Sprint(homes), "-api", base,
		"-token", benchToken, "-mqtt", broker, "-state", state, "-id-prefix", "bapi", "-log-level", "warn"); err != nil {
		return err
	}
	var last float64
	stableSince := time.Now()
	if err := waitFor(ctx, 15*time.Minute, "the backfill stored", func() bool {
		m, err := scrape(base)
		if err != nil {
			return false
		}
		n := m[`carehub_influx_points_written_total{measurement="readings"}`]
		if n != last {
			last, stableSince = n, time.Now()
		}
		// The writer may pause for seconds behind a backlog on a busy
		// machine: stored is when nothing is left for it in the stream.
		return n > 0 && m[`carehub_jetstream_pending{stream="CARE_READINGS"}`] == 0 && time.Since(stableSince) > 3*time.Second
	}); err != nil {
		return err
	}
	m, err := scrape(base)
	if err != nil {
		return err
	}
	if rej := m[`carehub_ingest_messages_total{kind="telemetry",outcome="rejected"}`]; rej > 0 {
		return fmt.Errorf("carehub rejected %.0f of the backfill's messages (stored %.0f points): see %s", rej, last, filepath.Join(e.dir, "carehub.log"))
	}
	fmt.Fprintf(stdout, "stored %.0f readings points in %.0f s\n", last, time.Since(t0).Seconds())
	waited, err := e.settle(ctx, "influxd", 3*time.Minute)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "InfluxDB settled (compactions done) after %.0f s\n", waited.Seconds())

	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(q*float64(len(s)-1))]
}

func getJSON(u string, out any) error {
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("Authorization", "Bearer "+benchToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %s: %s", u, resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func listResidents(base string) ([]string, error) {
	var ids []string
	cursor := ""
	for {
		var out struct {
			Residents []struct {
				ID string `json:"id"`
			} `json:"residents"`
			NextCursor string `json:"next_cursor"`
		}
		u := base + "/api/v1/residents?limit=500"
		if cursor != "" {
			u += "&cursor=" + url.QueryEscape(cursor)
		}
		if err := getJSON(u, &out); err != nil {
			return nil, err
		}
		for _, r := range out.Residents {
			ids = append(ids, r.ID)
		}
		if out.NextCursor == "" || len(out.Residents) == 0 {
			return ids, nil
		}
		cursor = out.NextCursor
	}
}

// sseFanOut connects n SSE clients, presses one SOS button and returns, per
// client, the time from the press to the raised event.
func sseFanOut(ctx context.Context, base, broker string, n int, stdout io.Writer) ([]time.Duration, error) {
	rid, did := "bench-sse-res", "bench-sse-sos"
	if err := post(base, "/api/v1/residents", map[string]any{"id": rid, "name": "Bench Resident", "home_id": "bench-sse-home"}); err != nil {
		return nil, err
	}
	if err := post(base, "/api/v1/devices", map[string]any{"id": did, "kind": "sos", "resident_id": rid}); err != nil {
		return nil, err
	}
	var mu sync.Mutex
	var pressed time.Time
	var lat []time.Duration
	var connected, done sync.WaitGroup
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i := 0; i < n; i++ {
		connected.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			req, _ := http.NewRequestWithContext(cctx, "GET", base+"/api/v1/alerts/stream", nil)
			req.Header.Set("Authorization", "Bearer "+benchToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				connected.Done()
				return
			}
			defer resp.Body.Close()
			connected.Done()
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				line := sc.Text()
				if strings.HasPrefix(line, "data:") && strings.Contains(line, `"`+rid+`"`) && strings.Contains(line, `"raised"`) {
					mu.Lock()
					lat = append(lat, time.Since(pressed))
					mu.Unlock()
					return
				}
			}
		}()
	}
	connected.Wait()
	fmt.Fprintf(stdout, "%d SSE clients connected; pressing SOS ...\n", n)
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID("carebench-sse"))
	if tok := pub.Connect(); tok.Wait() && tok.Error() != nil {
		return nil, tok.Error()
	}
	defer pub.Disconnect(100)
	mu.Lock()
	pressed = time.Now()
	mu.Unlock()
	pub.Publish("care/v1/dev/"+did+"/event", 1, false, `{"type":"sos"}`).Wait()
	finished := make(chan struct{})
	go func() { done.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(30 * time.Second):
		cancel()
		<-finished
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lat) < n {
		return lat, fmt.Errorf("only %d of %d SSE clients got the alert", len(lat), n)
	}
	return lat, nil
}
