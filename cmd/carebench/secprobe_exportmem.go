package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// The export-memory probe (issue 9 item 5): as the admin, it enrols a
// resident with export consent, sends a wearable's 10 days of readings
// through the embedded broker, then asks for the FHIR export four times at
// once, two of them read slowly. carehub holds when its resident memory
// (VmRSS) grows by less than exportProbeBound while they stream, the
// exports over the concurrency cap answer 429 export_busy, and the ones let
// through are complete. Before streaming, one such export of 60,000 points
// built some 180 MB of maps, and four at once took the process past 700 MB.
const (
	exportProbeRecords = 20_000 // × 3 metrics = 60,000 points
	exportProbeBound   = 100 << 20
)

func init() { registerProbe("export-memory", probeExportMemory) }

func probeExportMemory(ctx context.Context, t probeTarget) probeResult {
	fail := func(format string, a ...any) probeResult { return probeResult{Detail: fmt.Sprintf(format, a...)} }
	api := func(method, path string, body any, out any) (int, error) {
		var r io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			r = bytes.NewReader(b)
		}
		req, _ := http.NewRequestWithContext(ctx, method, t.HTTP+"/api/v1"+path, r)
		req.Header.Set("Authorization", "Bearer "+t.AdminToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		if out != nil {
			_ = json.NewDecoder(resp.Body).Decode(out)
		}
		return resp.StatusCode, nil
	}
	rid, did := "probe-export", "probe-export-w1"
	if code, err := api("POST", "/residents", map[string]any{"id": rid, "name": "Probe Export", "home_id": "probe-export-home"}, nil); err != nil || code != http.StatusCreated {
		return fail("create resident: %d %v", code, err)
	}
	if code, err := api("PUT", "/residents/"+rid+"/consent", map[string]any{"given": true, "scope": "monitoring+export", "recorded_by": "security probe"}, nil); err != nil || code != http.StatusOK {
		return fail("record consent: %d %v", code, err)
	}
	var dev struct {
		MQTT struct{ Username, Password string }
	}
	if code, err := api("POST", "/devices", map[string]any{"id": did, "kind": "wearable", "resident_id": rid}, &dev); err != nil || code != http.StatusCreated {
		return fail("register device: %d %v", code, err)
	}
	cl := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + t.MQTTAddr).SetClientID(did).
		SetUsername(dev.MQTT.Username).SetPassword(dev.MQTT.Password).SetConnectTimeout(10 * time.Second))
	if tok := cl.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		return fail("device connect: %v", tok.Error())
	}
	defer cl.Disconnect(100)
	end := time.Now().Add(-time.Minute).Truncate(time.Second)
	step := 10 * 24 * time.Hour / exportProbeRecords
	const perMsg = 50
	for i := 0; i < exportProbeRecords; i += perMsg {
		var b strings.Builder
		b.WriteByte('[')
		for j := i; j < i+perMsg && j < exportProbeRecords; j++ {
			if j > i {
				b.WriteByte(',')
			}
			at := end.Add(-time.Duration(exportProbeRecords-j) * step)
			fmt.Fprintf(&b, `{"ts":%d,"values":{"heart_rate":%d,"spo2":%d,"resp_rate":%d}}`, at.UnixMilli(), 60+j%30, 94+j%5, 12+j%6)
		}
		b.WriteByte(']')
		if tok := cl.Publish("care/v1/dev/"+did+"/telemetry", 1, false, b.String()); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			return fail("publish: %v", tok.Error())
		}
	}
	q := "/residents/" + rid + "/export?reason=security+probe&from=" + end.Add(-10*24*time.Hour-time.Hour).UTC().Format(time.RFC3339) +
		"&to=" + end.Add(time.Minute).UTC().Format(time.RFC3339)
	// Wait until the points stop arriving (ingest may also cap a device's
	// rate: the probe exports whatever was stored).
	stored, stable := 0, 0
	for stable < 3 {
		select {
		case <-ctx.Done():
			return fail("waiting for the points: %v (%d stored)", ctx.Err(), stored)
		case <-time.After(time.Second):
		}
		n, err := exportLines(ctx, t, q+"&format=csv")
		if err != nil {
			return fail("counting the stored points: %v", err)
		}
		if n == stored && n > 0 {
			stable++
		} else {
			stored, stable = n, 0
		}
	}
	before := vmRSS(t.PID)
	var peak int64
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		for {
			if r := vmRSS(t.PID); r > 0 {
				mu.Lock()
				peak = max(peak, r)
				mu.Unlock()
			}
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	type outcome struct {
		status int
		code   string
		n      int
		err    error
	}
	results := make(chan outcome, 4)
	started := make(chan struct{}, 2)
	for i := range 4 {
		slow := i < 2
		if !slow {
			// The fast ones come once the slow ones hold their slots.
			select {
			case <-started:
			case <-time.After(30 * time.Second):
				return fail("the slow exports did not start")
			}
		}
		go func() {
			req, _ := http.NewRequestWithContext(ctx, "GET", t.HTTP+"/api/v1"+q, nil)
			req.Header.Set("Authorization", "Bearer "+t.AdminToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				results <- outcome{err: err}
				return
			}
			defer resp.Body.Close()
			if slow {
				started <- struct{}{} // buffered: never blocks
			}
			if resp.StatusCode != http.StatusOK {
				var e struct{ Error struct{ Code string } }
				_ = json.NewDecoder(resp.Body).Decode(&e)
				results <- outcome{status: resp.StatusCode, code: e.Error.Code}
				return
			}
			n, err := countObservations(resp.Body, slow)
			results <- outcome{status: resp.StatusCode, n: n, err: err}
		}()
	}
	ok, busy := 0, 0
	var problems []string
	for range 4 {
		r := <-results
		switch {
		case r.err != nil:
			problems = append(problems, r.err.Error())
		case r.status == http.StatusOK && r.n == stored:
			ok++
		case r.status == http.StatusOK:
			problems = append(problems, fmt.Sprintf("an export had %d of %d points", r.n, stored))
		case r.status == http.StatusTooManyRequests && r.code == "export_busy":
			busy++
		default:
			problems = append(problems, fmt.Sprintf("status %d %s", r.status, r.code))
		}
	}
	close(done)
	mu.Lock()
	grew := peak - before
	mu.Unlock()
	detail := fmt.Sprintf("%d points; 4 exports at once: %d complete, %d export_busy; RSS %d MiB, +%d MiB while streaming (bound %d MiB)",
		stored, ok, busy, before>>20, grew>>20, exportProbeBound>>20)
	if len(problems) > 0 {
		detail += "; " + strings.Join(problems, "; ")
	}
	return probeResult{Pass: len(problems) == 0 && ok >= 1 && busy >= 1 && grew < exportProbeBound && stored > 0, Detail: detail}
}

// exportLines returns the data lines of a CSV export (without its header
// and end line).
func exportLines(ctx context.Context, t probeTarget, path string) (int, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", t.HTTP+"/api/v1"+path, nil)
	req.Header.Set("Authorization", "Bearer "+t.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return 0, fmt.Errorf("export: %d %s", resp.StatusCode, b)
	}
	n := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		n++
	}
	return max(0, n-2), sc.Err()
}

// countObservations counts a FHIR export's Observations as it reads it,
// slowly (a phone on a poor line) when slow is set.
func countObservations(r io.Reader, slow bool) (int, error) {
	marker := []byte(`"resourceType":"Observation"`)
	buf := make([]byte, 32<<10)
	var carry []byte // the last bytes of the previous read: a marker may span two
	n := 0
	for {
		k, err := r.Read(buf)
		chunk := append(carry, buf[:k]...)
		n += bytes.Count(chunk, marker)
		keep := min(len(chunk), len(marker)-1) // too short to hold a whole marker
		carry = append([]byte(nil), chunk[len(chunk)-keep:]...)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if slow {
			time.Sleep(2 * time.Millisecond)
		}
	}
}

// vmRSS is a process's resident memory in bytes (0 if unreadable).
func vmRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
