package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Targets of issue 12's Performance section.
const (
	webPageTarget = 300 * time.Millisecond // overview and resident page p95
	webJSTargetKB = 80                     // JavaScript a page loads, gzip
	webSOSTarget  = time.Second            // SOS press to the row in an open inbox, p95
)

// benchWeb times the console: the overview and a resident's page (day,
// week, month) on 100 residents with a week of one-minute data, the
// JavaScript each page loads, and an SOS press to its row appearing in an
// inbox open in chromium while bench-alerts' ingest load runs.
func benchWeb(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("web", flag.ContinueOnError)
	homes := fs.Int("homes", 100, "residents with a week of one-minute data")
	week := fs.Duration("backfill", 7*24*time.Hour, "history to backfill")
	requests := fs.Int("requests", 60, "requests to time per page (overview, and each resident range)")
	probes := fs.Int("probes", 40, "SOS presses to time in the browser (0 skips the browser part)")
	rate := fs.Int("load-rate", 5000, "background readings per second during the SOS presses (bench-alerts' load)")
	devices := fs.Int("load-devices", 2000, "background devices during the SOS presses")
	pages := fs.Bool("pages", true, "seed the week and time the pages (false: only the SOS presses, which need no history)")
	hold := fs.Bool("hold", false, "after measuring, keep carehub and InfluxDB running until interrupted (to profile them)")
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
	if !*pages {
		return e.sosOnly(ctx, base, broker, *probes, *rate, *devices, stdout)
	}
	if err := e.seedWeek(ctx, base, broker, *homes, *week, stdout); err != nil {
		return err
	}
	residents, err := listResidents(base)
	if err != nil {
		return err
	}
	if len(residents) == 0 {
		return errors.New("no residents registered")
	}
	const coordinator, password = "benchcoord", "bench-coordinator-password"
	var user struct {
		Token string `json:"token"`
	}
	if err := postJSON(base, "/api/v1/users", map[string]any{"id": coordinator, "name": "Bench Coordinator", "role": "coordinator", "password": password}, &user); err != nil {
		return err
	}
	page := consoleClient{base: base, session: user.Token}

	// The pages, one request at a time (a coordinator's browser), each
	// page's first request apart: it is the one no cache has seen.
	type timing struct {
		name  string
		first time.Duration
		lat   []time.Duration
		bytes int
	}
	var timings []timing
	ovRows := 0
	t := timing{name: "overview /"}
	for i := 0; i <= *requests; i++ {
		d, body, err := page.get("/")
		if err != nil {
			return err
		}
		if i == 0 {
			t.first, t.bytes = d, len(body)
			ovRows = strings.Count(body, `data-resident="`)
			continue
		}
		t.lat = append(t.lat, d)
	}
	timings = append(timings, t)
	for _, rng := range []string{"day", "week", "month"} {
		t := timing{name: "resident /residents/:id?range=" + rng}
		for i := 0; i <= *requests; i++ {
			d, body, err := page.get("/residents/" + residents[i%len(residents)] + "?range=" + rng)
			if err != nil {
				return err
			}
			if i == 0 {
				t.first, t.bytes = d, len(body)
				continue
			}
			t.lat = append(t.lat, d)
		}
		timings = append(timings, t)
	}
	var js []string
	for _, p := range []string{"/", "/residents/" + residents[0], "/alerts"} {
		kb, files, err := page.scriptKB(p)
		if err != nil {
			return err
		}
		js = append(js, fmt.Sprintf("%-30s %6.1f KB gzip  (target <= %d KB) %s  %s", p, kb, webJSTargetKB, verdict(kb <= webJSTargetKB), strings.Join(files, " ")))
	}
	fmt.Fprintf(stdout, "\n== bench-web: %d residents, %s of one-minute data ==\n", len(residents), *week)
	fmt.Fprintf(stdout, "page time = request time on loopback (sent to last byte read, keep-alive), one request at a time\n")
	for _, t := range timings {
		p95 := quantile(t.lat, 0.95)
		fmt.Fprintf(stdout, "%-36s p50 %6.1f ms  p95 %6.1f ms  (target p95 < %d ms) %s  first %6.1f ms, %d requests, %d KB\n",
			t.name, ms(quantile(t.lat, 0.5)), ms(p95), webPageTarget.Milliseconds(), verdict(p95 < webPageTarget), ms(t.first), len(t.lat), t.bytes/1024)
	}
	fmt.Fprintf(stdout, "(the overview lists %d residents who need attention)\n", ovRows)
	fmt.Fprintf(stdout, "JavaScript each page loads:\n")
	for _, l := range js {
		fmt.Fprintf(stdout, "  %s\n", l)
	}
	var sos []time.Duration
	if *probes > 0 {
		sos, err = e.sosInBrowser(ctx, base, broker, coordinator, password, *probes, *rate, *devices, stdout)
		if err != nil {
			return err
		}
	}

	if *probes > 0 {
		p95 := quantile(sos, 0.95)
		fmt.Fprintf(stdout, "SOS press -> row in an open inbox (chromium) under %d readings/s: p50 %6.1f ms  p95 %6.1f ms  max %6.1f ms  (target p95 < %d ms) %s  (%d presses)\n",
			*rate, ms(quantile(sos, 0.5)), ms(p95), ms(quantile(sos, 1)), webSOSTarget.Milliseconds(), verdict(p95 < webSOSTarget), len(sos))
	}
	if *hold {
		fmt.Fprintf(stdout, "\nholding: carehub %s (session cookie carehub_session=%s), InfluxDB %s; Ctrl-C ends\n", base, user.Token, influxURL)
		<-ctx.Done()
	}
	return nil
}

// sosOnly is bench-web's browser part alone.
func (e *env) sosOnly(ctx context.Context, base, broker string, probes, rate, devices int, stdout io.Writer) error {
	const coordinator, password = "benchcoord", "bench-coordinator-password"
	var user struct{}
	if err := postJSON(base, "/api/v1/users", map[string]any{"id": coordinator, "name": "Bench Coordinator", "role": "coordinator", "password": password}, &user); err != nil {
		return err
	}
	sos, err := e.sosInBrowser(ctx, base, broker, coordinator, password, probes, rate, devices, stdout)
	if err != nil {
		return err
	}
	p95 := quantile(sos, 0.95)
	fmt.Fprintf(stdout, "\n== bench-web ==\nSOS press -> row in an open inbox (chromium) under %d readings/s: p50 %6.1f ms  p95 %6.1f ms  max %6.1f ms  (target p95 < %d ms) %s  (%d presses)\n",
		rate, ms(quantile(sos, 0.5)), ms(p95), ms(quantile(sos, 1)), webSOSTarget.Milliseconds(), verdict(p95 < webSOSTarget), len(sos))
	return nil
}

func verdict(ok bool) string {
	if ok {
		return "ok"
	}
	return "MISSED"
}

// consoleClient asks for the console's pages with a session cookie (the
// user's token, as the login form would set it).
type consoleClient struct {
	base, session string
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// get returns the time from sending the request to having read the whole
// answer, and the answer.
func (c consoleClient) get(path string) (time.Duration, string, error) {
	req, _ := http.NewRequest("GET", c.base+path, nil)
	req.AddCookie(&http.Cookie{Name: "carehub_session", Value: c.session})
	start := time.Now()
	resp, err := noRedirect.Do(req)
	if err != nil {
		return 0, "", err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if err != nil {
		return 0, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, "", fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return d, string(body), nil
}

var scriptSrc = regexp.MustCompile(`<script[^>]*\ssrc="([^"]+)"`)

// scriptKB is the JavaScript a page loads (its script elements' sources),
// gzip-compressed at the default level, in KB, and the files.
func (c consoleClient) scriptKB(path string) (float64, []string, error) {
	_, body, err := c.get(path)
	if err != nil {
		return 0, nil, err
	}
	var files []string
	total := 0
	for _, m := range scriptSrc.FindAllStringSubmatch(body, -1) {
		_, src, err := c.get(m[1])
		if err != nil {
			return 0, nil, err
		}
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write([]byte(src))
		_ = zw.Close()
		total += buf.Len()
		files = append(files, fmt.Sprintf("%s=%.1f", filepath.Base(strings.SplitN(m[1], "?", 2)[0]), float64(buf.Len())/1024))
	}
	return float64(total) / 1024, files, nil
}

func postJSON(base, path string, body, out any) error {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", base+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+benchToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s: %s", path, resp.Status, msg)
	}
	return json.Unmarshal(msg, out)
}

// sosInBrowser opens the inbox in chromium as the coordinator, starts
// bench-alerts' ingest load, then presses the SOS button of a new resident
// each time (MQTT publish, QoS 1) and times the press to the moment the
// resident's row is in the inbox's table, as the page itself records it
// (a MutationObserver noting Date.now(): the Go side polls only to learn
// it happened, its polling adds nothing to the figure).
func (e *env) sosInBrowser(ctx context.Context, base, broker, user, password string, probes, rate, devices int, stdout io.Writer) ([]time.Duration, error) {
	fmt.Fprintf(stdout, "registering %d residents with SOS buttons and %d load devices ...\n", probes, devices)
	sos := make([]string, probes)
	res := make([]string, probes)
	for i := range sos {
		res[i], sos[i] = fmt.Sprintf("bweb-res-%03d", i), fmt.Sprintf("bweb-sos-%03d", i)
		if err := post(base, "/api/v1/residents", map[string]any{"id": res[i], "name": "Bench Resident", "home_id": fmt.Sprintf("bweb-home-%03d", i)}); err != nil {
			return nil, err
		}
		if err := post(base, "/api/v1/devices", map[string]any{"id": sos[i], "kind": "sos", "resident_id": res[i]}); err != nil {
			return nil, err
		}
	}
	state := filepath.Join(e.dir, "homesim-load-state.json")
	if _, err := e.homesim(ctx, "-load", "-register-only", "-devices", fmt.Sprint(devices), "-api", base, "-token", benchToken,
		"-state", state, "-id-prefix", "bload", "-log-level", "warn"); err != nil {
		return nil, err
	}

	chromium, err := exec.LookPath("chromium")
	if err != nil {
		return nil, errors.New("chromium is not installed: run deploy/dev/setup.sh")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.Flag("no-sandbox", true),
		chromedp.Flag("lang", "ko-KR"), chromedp.WindowSize(1280, 900))
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	tab, cancelTab := chromedp.NewContext(alloc)
	defer cancelTab()
	// The browser starts with the tab's own context: a step's timeout
	// context ending would otherwise end the browser with it.
	if err := chromedp.Do(tab); err != nil {
		return nil, fmt.Errorf("browser: start chromium: %w", err)
	}
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) error {
		c, cancel := context.WithTimeout(tab, 60*time.Second)
		defer cancel()
		if err := chromedp.Do(c, actions...); err != nil {
			return fmt.Errorf("browser: %s: %w", what, err)
		}
		return nil
	}
	if err := step("log in and open the inbox",
		chromedp.Navigate(base+"/login"), chromedp.WaitVisible("#user"),
		chromedp.SendKeys("#user", user), chromedp.SendKeys("#password", password),
		chromedp.Click(`button[type="submit"]`), chromedp.WaitVisible(`main h1`),
		chromedp.Navigate(base+"/alerts"), chromedp.WaitVisible(`.live.on`)); err != nil {
		return nil, err
	}
	// Runtime.evaluate is not subject to the page's CSP.
	if _, err := chromedp.Run(tab, chromedp.Evaluate[int](`(function () {
  window.__seen = {};
  var rows = document.getElementById("rows");
  function note() {
    var now = Date.now();
    rows.querySelectorAll('a[href^="/residents/bweb-res-"]').forEach(function (a) {
      var id = a.getAttribute("href").slice("/residents/".length);
      if (!window.__seen[id]) { window.__seen[id] = now; }
    });
  }
  new MutationObserver(note).observe(rows, {childList: true, subtree: true});
  note();
  return 0;
})()`)); err != nil {
		return nil, fmt.Errorf("browser: install the row observer: %w", err)
	}

	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	loadDone := make(chan error, 1)
	go func() {
		_, err := e.homesim(loadCtx, "-load", "-mqtt", broker, "-devices", fmt.Sprint(devices), "-conns", "4",
			"-rate", fmt.Sprint(rate), "-count", "0", "-duration", "10m", "-values", "3", "-per-device-conns=false",
			"-api", base, "-token", benchToken, "-state", state, "-id-prefix", "bload", "-log-level", "warn")
		loadDone <- err
	}()
	m0, err := scrapeAccepted(ctx, base, rate)
	if err != nil {
		return nil, err
	}
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID("carebench-web-sos"))
	if tok := pub.Connect(); tok.Wait() && tok.Error() != nil {
		return nil, tok.Error()
	}
	defer pub.Disconnect(100)
	fmt.Fprintf(stdout, "timing %d SOS presses to the inbox row under %d readings/s ...\n", probes, rate)
	var lat []time.Duration
	for i := range probes {
		pressed := time.Now()
		pub.Publish("care/v1/dev/"+sos[i]+"/event", 1, false, fmt.Sprintf(`{"ts":%d,"type":"sos"}`, pressed.UnixMilli())).Wait()
		var seen int64
		deadline := time.Now().Add(10 * time.Second)
		for seen == 0 && time.Now().Before(deadline) {
			v, err := chromedp.Run(tab, chromedp.Evaluate[int64](`window.__seen[`+jsString(res[i])+`] || 0`))
			if err != nil {
				return nil, fmt.Errorf("browser: read the row observer: %w", err)
			}
			if seen = v; seen == 0 {
				time.Sleep(20 * time.Millisecond) // polling the page's own record, not the measured time
			}
		}
		if seen == 0 {
			return nil, fmt.Errorf("the SOS of %s did not reach the inbox in 10 s", res[i])
		}
		lat = append(lat, time.UnixMilli(seen).Sub(pressed))
		time.Sleep(200 * time.Millisecond) // pacing between presses
	}
	m1, _ := scrape(base)
	stopLoad()
	if err := <-loadDone; err != nil && ctx.Err() == nil && loadCtx.Err() == nil { // stopLoad kills it
		return nil, fmt.Errorf("ingest load: %w", err)
	}
	const accepted = `carehub_ingest_messages_total{kind="telemetry",outcome="accepted"}`
	fmt.Fprintf(stdout, "background readings accepted during the presses: %.0f\n", m1[accepted]-m0)
	return lat, nil
}

// scrapeAccepted waits until the background load reaches carehub and
// returns the accepted readings so far.
func scrapeAccepted(ctx context.Context, base string, rate int) (float64, error) {
	const accepted = `carehub_ingest_messages_total{kind="telemetry",outcome="accepted"}`
	var n float64
	err := waitFor(ctx, 60*time.Second, "the background load to reach carehub", func() bool {
		m, err := scrape(base)
		n = m[accepted]
		return err == nil && n > float64(rate)
	})
	return n, err
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
