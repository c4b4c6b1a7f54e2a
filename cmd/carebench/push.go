package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"

	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/natsx"
	"github.com/carehub/carehub/internal/notify"
	"github.com/carehub/carehub/internal/webpush/webpushtest"
)

// benchPush is issue 13's performance check on the real binary: a device's
// SOS press over MQTT to the encrypted, VAPID-signed push arriving at a
// fake push service (webpushtest, in this process), while bench-alerts'
// ingest load runs; a fan-out to 500 phones under the same load; and
// carehub's memory (live heap after a forced GC, RSS, goroutines) sampled
// over the whole run, so a dispatcher that leaks shows as a slope.
func benchPush(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("push", flag.ContinueOnError)
	duration := fs.Duration("duration", 90*time.Second, "how long to press SOS buttons under load")
	residents := fs.Int("residents", 50, "residents with an SOS button and a care worker with one phone each")
	fanPhones := fs.Int("fanout-phones", 500, "phones of the fan-out resident's first tier")
	fanouts := fs.Int("fanouts", 3, "fan-out presses, spread over the run")
	pace := fs.Duration("pace", 50*time.Millisecond, "pause between presses")
	sample := fs.Duration("sample", 5*time.Second, "memory sampling interval")
	rate := fs.Int("load-rate", 5000, "background readings per second (bench-alerts' load)")
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
	fake := webpushtest.Start()
	defer fake.Close()
	pprofAddr := fmt.Sprintf("127.0.0.1:%d", freePort())
	st, err := e.startCarehub(ctx, broker, influxURL, map[string]string{
		"CARE_WEBPUSH": "on", "CARE_PUBLIC_URL": "http://127.0.0.1:8780", "CARE_WEBPUSH_SUBJECT": "mailto:bench@example.org",
		"CARE_WEBPUSH_ALLOWED_ENDPOINTS": fake.URL, "CARE_PPROF_ADDR": pprofAddr,
		// A heap sample every 16 kB (default 512 kB), so the phones
		// backend's few hundred kB are seen, not rounded to zero.
		"GODEBUG": "memprofilerate=16384",
	})
	if err != nil {
		return err
	}
	base := st.base

	// Probe residents, each with one care worker and one phone; the
	// fan-out resident's first tier names fanPhones care workers.
	fmt.Fprintf(stdout, "registering %d residents with a care worker's phone each, %d phones on the fan-out resident, %d load devices ...\n",
		*residents, *fanPhones, *devices)
	r := &pushRig{base: base, fake: fake, owner: map[*webpushtest.Subscriber]int{}, pending: map[int]time.Time{}, natsAt: map[int]time.Time{},
		fanSeen: map[uint64]map[*webpushtest.Subscriber]int{}, fanLast: map[uint64]time.Time{}, got: make(chan struct{}, 1)}
	sos := make([]string, *residents)
	for i := range sos {
		rid, did, uid := fmt.Sprintf("bpush-res-%03d", i), fmt.Sprintf("bpush-sos-%03d", i), fmt.Sprintf("bpush-cw-%03d", i)
		if err := r.resident(rid, did, []string{uid}); err != nil {
			return err
		}
		sub, err := r.phone(uid)
		if err != nil {
			return err
		}
		r.owner[sub] = i
		sos[i] = did
	}
	fanUsers := make([]string, *fanPhones)
	for i := range fanUsers {
		fanUsers[i] = fmt.Sprintf("bpush-fan-%03d", i)
	}
	if err := r.resident("bpush-res-fan", "bpush-sos-fan", fanUsers); err != nil {
		return err
	}
	if err := parallel(8, fanUsers, func(uid string) error {
		sub, err := r.phone(uid)
		if err == nil {
			r.mu.Lock()
			r.owner[sub] = -1
			r.mu.Unlock()
		}
		return err
	}); err != nil {
		return err
	}
	fake.Observe = r.observe
	// Where the time goes: the alert's arrival on NATS (what bench-alerts
	// times) splits press -> push into the alert pipeline and the push path.
	secret, err := natsx.OwnSecret(st.dataDir)
	if err != nil {
		return err
	}
	nc, err := nats.Connect("nats://"+st.natsAddr, nats.UserInfo(natsx.OwnUser, secret))
	if err != nil {
		return err
	}
	defer nc.Close()
	resOf := map[string]int{}
	for i := range sos {
		resOf[fmt.Sprintf("bpush-res-%03d", i)] = i
	}
	if _, err := nc.Subscribe(model.SubjectAlertsAll, func(m *nats.Msg) {
		var a struct {
			ResidentID string `json:"resident_id"`
			Transition string `json:"transition"`
		}
		if json.Unmarshal(m.Data, &a) != nil || (a.Transition != "raised" && a.Transition != "repeated") {
			return
		}
		if i, ok := resOf[a.ResidentID]; ok {
			r.alerted(i, time.Now())
		}
	}); err != nil {
		return err
	}
	state := filepath.Join(e.dir, "homesim-state.json")
	if _, err := e.homesim(ctx, "-load", "-register-only", "-devices", fmt.Sprint(*devices), "-api", base, "-token", benchToken,
		"-state", state, "-id-prefix", "bload", "-log-level", "warn"); err != nil {
		return err
	}

	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	loadDone := make(chan error, 1)
	go func() {
		_, err := e.homesim(loadCtx, "-load", "-mqtt", broker, "-devices", fmt.Sprint(*devices), "-conns", "4",
			"-rate", fmt.Sprint(*rate), "-count", "0", "-duration", (*duration + 5*time.Minute).String(), "-values", "3",
			"-per-device-conns=false", "-api", base, "-token", benchToken, "-state", state, "-id-prefix", "bload", "-log-level", "warn")
		loadDone <- err
	}()
	accepted := `carehub_ingest_messages_total{kind="telemetry",outcome="accepted"}`
	if err := waitFor(ctx, 60*time.Second, "the background load to reach carehub", func() bool {
		m, err := scrape(base)
		return err == nil && m[accepted] > float64(*rate)
	}); err != nil {
		return err
	}

	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID("carebench-push"))
	if tok := pub.Connect(); tok.Wait() && tok.Error() != nil {
		return tok.Error()
	}
	defer pub.Disconnect(100)
	press := func(device string, at time.Time) {
		// A new millisecond each time: the same one would be the same event.
		pub.Publish("care/v1/dev/"+device+"/event", 1, false, fmt.Sprintf(`{"ts":%d,"type":"sos"}`, at.UnixMilli())).Wait()
	}

	mem := &memSampler{pid: st.proc.Process.Pid, pprof: "http://" + pprofAddr}
	sampCtx, stopSamp := context.WithCancel(ctx)
	sampDone := make(chan struct{})
	go func() { defer close(sampDone); mem.run(sampCtx, *sample) }()

	fmt.Fprintf(stdout, "pressing SOS buttons for %v under %d readings/s, %d fan-outs to %d phones ...\n", *duration, *rate, *fanouts, *fanPhones)
	m0, _ := scrape(base)
	start := time.Now()
	var fanTimes []time.Duration
	var fanIncomplete int
	probes := 0
	for p := 0; time.Since(start) < *duration && ctx.Err() == nil; p++ {
		if len(fanTimes)+fanIncomplete < *fanouts && time.Since(start) > time.Duration(len(fanTimes)+fanIncomplete+1)**duration/time.Duration(*fanouts+1) {
			d, ok := r.fanOut(ctx, press, "bpush-sos-fan", *fanPhones)
			if ok {
				fanTimes = append(fanTimes, d)
			} else {
				fanIncomplete++
			}
		}
		i := p % *residents
		t := time.Now()
		r.mu.Lock()
		r.pending[i] = t
		delete(r.natsAt, i)
		r.mu.Unlock()
		press(sos[i], t)
		probes++
		select {
		case <-r.got:
		case <-time.After(5 * time.Second):
		}
		time.Sleep(*pace) // pacing between presses, not a wait for a result
	}
	m1, _ := scrape(base)
	// The tail of the run: the load keeps going for two more samples, so a
	// heap that only grew during the presses is seen not to come back.
	time.Sleep(2 * *sample)
	stopSamp()
	<-sampDone
	stopLoad()
	if err := <-loadDone; err != nil && ctx.Err() == nil && !strings.Contains(err.Error(), "signal: killed") {
		fmt.Fprintf(stderr, "background load: %v\n", err)
	}

	r.mu.Lock()
	lat := slices.Clone(r.lat)
	dup := r.fanDuplicates()
	r.mu.Unlock()
	if len(lat) < probes*9/10 {
		return fmt.Errorf("only %d of %d SOS presses reached a phone\n%s", len(lat), probes, e.logTail("carehub"))
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	readings := m1[accepted] - m0[accepted]
	secs := time.Since(start).Seconds()
	var fails []string
	verdict := func(ok bool, what string) string {
		if ok {
			return "ok"
		}
		fails = append(fails, what)
		return "MISSED"
	}
	fmt.Fprintf(stdout, "\n== bench-push: SOS press over MQTT -> encrypted push at the push service, under ingest load ==\n")
	fmt.Fprintf(stdout, "presses timed        %d of %d (residents %d, one phone each)\n", len(lat), probes, *residents)
	fmt.Fprintf(stdout, "latency              p50 %.1f ms   p90 %.1f ms   p99 %.1f ms   max %.1f ms\n", q(0.5), q(0.9), q(0.99), q(1))
	fmt.Fprintf(stdout, "  target p99 < 1000 ms: %s\n", verdict(q(0.99) < 1000, "p99 latency"))
	for _, part := range []struct {
		name string
		d    []time.Duration
	}{{"  press -> alert on NATS", r.toNATS}, {"  alert on NATS -> push", r.toPush}} {
		slices.Sort(part.d)
		if n := len(part.d); n > 0 {
			fmt.Fprintf(stdout, "%-26s p50 %.1f ms   p99 %.1f ms (%d)\n", part.name, ms(part.d[n/2]), ms(part.d[int(0.99*float64(n-1))]), n)
		}
	}
	worst := time.Duration(0)
	var fs2 []string
	for _, d := range fanTimes {
		worst = max(worst, d)
		fs2 = append(fs2, fmt.Sprintf("%.2f s", d.Seconds()))
	}
	fmt.Fprintf(stdout, "fan-out              %d phones: %s (incomplete %d, phones pushed twice %d)\n", *fanPhones, strings.Join(fs2, ", "), fanIncomplete, dup)
	fmt.Fprintf(stdout, "  target < 2 s, each phone once: %s\n", verdict(len(fanTimes) == *fanouts && worst < 2*time.Second && dup == 0, "fan-out"))
	fmt.Fprintf(stdout, "background readings  %.0f accepted during the presses (%.0f/s)\n", readings, readings/secs)
	fmt.Fprintf(stdout, "push protocol errors %d (VAPID or decryption refused by the fake push service)\n", len(fake.Errors()))
	fmt.Fprintf(stdout, "push transitions     %s\n", series(m1, "carehub_push_transitions_total"))
	fmt.Fprintf(stdout, "push sends           %s\n", series(m1, "carehub_push_sends_total"))
	flat := mem.report(stdout)
	fmt.Fprintf(stdout, "  target flat (push heap and goroutines: second half within 20%% of the first, after warm-up): %s\n", verdict(flat, "memory"))
	if len(fake.Errors()) > 0 {
		fails = append(fails, "push protocol")
	}
	if len(fails) > 0 {
		return fmt.Errorf("targets missed: %s", strings.Join(fails, ", "))
	}
	return nil
}

// pushRig registers residents, care workers and phones through the API,
// and matches the pushes the fake service receives to the presses.
type pushRig struct {
	base string
	fake *webpushtest.Service

	mu      sync.Mutex
	owner   map[*webpushtest.Subscriber]int // probe resident index, -1 for fan-out phones
	pending map[int]time.Time               // probe index → press time, until its push arrives
	lat     []time.Duration
	natsAt  map[int]time.Time // probe index → the alert's arrival on NATS
	toNATS  []time.Duration
	toPush  []time.Duration
	got     chan struct{}
	fanSeq  uint64 // the fan-out alert's transition being timed
	fanSeen map[uint64]map[*webpushtest.Subscriber]int
	fanLast map[uint64]time.Time
}

func (r *pushRig) observe(p webpushtest.Push) {
	var pl notify.Payload
	if json.Unmarshal(p.Payload, &pl) != nil || pl.Rule != "sos" || (pl.Transition != "raised" && pl.Transition != "repeated") {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	i, ok := r.owner[p.Subscriber]
	switch {
	case !ok:
	case i < 0:
		if r.fanSeen[pl.Seq] == nil {
			r.fanSeen[pl.Seq] = map[*webpushtest.Subscriber]int{}
		}
		r.fanSeen[pl.Seq][p.Subscriber]++
		r.fanLast[pl.Seq] = p.At
		if pl.Seq > r.fanSeq {
			r.fanSeq = pl.Seq
		}
	default:
		if t, ok := r.pending[i]; ok {
			r.lat = append(r.lat, p.At.Sub(t))
			if n, ok := r.natsAt[i]; ok {
				r.toNATS, r.toPush = append(r.toNATS, n.Sub(t)), append(r.toPush, p.At.Sub(n))
			}
			delete(r.pending, i)
			delete(r.natsAt, i)
			select {
			case r.got <- struct{}{}:
			default:
			}
		}
	}
}

// alerted notes the alert of a pending press on NATS.
func (r *pushRig) alerted(i int, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.pending[i]; ok {
		r.natsAt[i] = at
	}
}

// fanOut presses the fan-out resident's button and returns how long until
// the last of n phones had the push (false when not all did in 30 s).
func (r *pushRig) fanOut(ctx context.Context, press func(string, time.Time), device string, n int) (time.Duration, bool) {
	r.mu.Lock()
	before := r.fanSeq
	r.mu.Unlock()
	t := time.Now()
	press(device, t)
	var seq uint64
	err := waitFor(ctx, 30*time.Second, "fan-out", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		seq = r.fanSeq
		return seq > before && len(r.fanSeen[seq]) >= n
	})
	if err != nil {
		return 0, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fanLast[seq].Sub(t), true
}

// fanDuplicates counts phones that got one fan-out transition twice.
func (r *pushRig) fanDuplicates() int {
	n := 0
	for _, seen := range r.fanSeen {
		for _, c := range seen {
			if c > 1 {
				n++
			}
		}
	}
	return n
}

// resident registers a resident with an SOS button and a chain whose first
// tier is users.
func (r *pushRig) resident(rid, did string, users []string) error {
	if err := post(r.base, "/api/v1/residents", map[string]any{"id": rid, "name": "Bench Resident", "home_id": "bpush-home-" + rid}); err != nil {
		return err
	}
	if err := post(r.base, "/api/v1/devices", map[string]any{"id": did, "kind": "sos", "resident_id": rid}); err != nil {
		return err
	}
	_, err := call(r.base, "PUT", "/api/v1/residents/"+rid+"/escalation", benchToken, map[string]any{"tiers": []map[string]any{
		{"role": "caregiver", "user_ids": users}, {"role": "emergency"}}}, http.StatusOK)
	return err
}

// phone creates a care worker (no password: a token is enough) and
// subscribes one phone of the fake push service for them, as the phone
// page does.
func (r *pushRig) phone(uid string) (*webpushtest.Subscriber, error) {
	b, err := call(r.base, "POST", "/api/v1/users", benchToken, map[string]any{"id": uid, "name": "Bench Worker", "role": "caregiver"}, http.StatusCreated)
	if err != nil {
		return nil, err
	}
	var u struct{ Token string }
	if err := json.Unmarshal(b, &u); err != nil || u.Token == "" {
		return nil, fmt.Errorf("create user %s: no token in %s", uid, b)
	}
	sub := r.fake.NewSubscriber()
	_, err = call(r.base, "POST", "/api/v1/push/subscriptions", u.Token, map[string]any{"endpoint": sub.Endpoint,
		"keys": map[string]string{"p256dh": sub.P256DH(), "auth": sub.AuthSecret()}, "locale": "ko"}, http.StatusCreated)
	return sub, err
}

func call(base, method, path, token string, body any, want int) ([]byte, error) {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, base+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, out)
	}
	return out, nil
}

// parallel runs f on every item with at most n at once; the first error wins.
func parallel(n int, items []string, f func(string) error) error {
	sem := make(chan struct{}, n)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for _, it := range items {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := f(it); err != nil {
				mu.Lock()
				first = cmp.Or(first, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// series prints every labelled value of a metric: name{a="b"} 3 → a=b 3.
func series(m map[string]float64, name string) string {
	var out []string
	for k, v := range m {
		if rest, ok := strings.CutPrefix(k, name+"{"); ok {
			out = append(out, fmt.Sprintf("%s %.0f", strings.ReplaceAll(strings.TrimSuffix(rest, "}"), `"`, ""), v))
		}
	}
	slices.Sort(out)
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// memSampler reads carehub's memory over time: the live heap after a
// forced GC (pprof's heap?gc=1), the part of it allocated by the phones
// backend (stacks through internal/notify or internal/webpush: the
// dispatcher, its channels, the subscription cache), the resident set and
// the goroutines.
type memSampler struct {
	pid   int
	pprof string
	rows  []memRow
}

type memRow struct {
	at                    time.Duration
	heapMB, pushMB, rssMB float64
	goroutines            int
}

func (s *memSampler) run(ctx context.Context, every time.Duration) {
	start := time.Now()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if row, err := s.read(); err == nil {
			row.at = time.Since(start)
			s.rows = append(s.rows, row)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *memSampler) read() (memRow, error) {
	var row memRow
	row.rssMB, _ = procNow(s.pid)
	b, err := get(s.pprof + "/debug/pprof/heap?gc=1&debug=1")
	if err != nil {
		return row, err
	}
	row.heapMB, row.pushMB = heapProfile(string(b), "/internal/notify", "/internal/webpush")
	b, err = get(s.pprof + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return row, err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	row.goroutines, _ = strconv.Atoi(strings.TrimPrefix(first, "goroutine profile: total "))
	if row.heapMB == 0 {
		return row, errors.New("no HeapAlloc in the heap profile")
	}
	return row, nil
}

// heapProfile reads pprof's text heap profile (debug=1): HeapAlloc from
// its MemStats trailer, and the in-use bytes of the records whose stack
// passes through one of pkgs, scaled for sampling as pprof does.
func heapProfile(text string, pkgs ...string) (heapMB, pkgMB float64) {
	rate := 512 * 1024.0
	var inuse, objs float64
	match := false
	var pkgBytes float64
	flush := func() {
		if match && objs > 0 && inuse > 0 {
			pkgBytes += inuse / (1 - math.Exp(-inuse/objs/rate))
		}
		match, inuse, objs = false, 0, 0
	}
	for _, line := range strings.Split(text, "\n") {
		switch {
		case strings.HasPrefix(line, "heap profile: "):
			if _, r, ok := strings.Cut(line, "@ heap/"); ok {
				if v, err := strconv.ParseFloat(r, 64); err == nil && v > 0 {
					rate = v / 2 // the header holds 2*MemProfileRate
				}
			}
		case strings.HasPrefix(line, "#\t"):
			for _, p := range pkgs {
				match = match || strings.Contains(line, p)
			}
		case strings.HasPrefix(line, "# HeapAlloc = "):
			n, _ := strconv.ParseFloat(strings.TrimPrefix(line, "# HeapAlloc = "), 64)
			heapMB = n / (1 << 20)
		case len(line) > 0 && line[0] >= '0' && line[0] <= '9' && strings.Contains(line, " @ "):
			flush()
			var a, b, c, d int64
			if _, err := fmt.Sscanf(line, "%d: %d [%d: %d]", &a, &b, &c, &d); err == nil {
				objs, inuse = float64(a), float64(b)
			}
		case line == "":
			flush()
		}
	}
	flush()
	return heapMB, pkgBytes / (1 << 20)
}

func get(u string) ([]byte, error) {
	resp, err := http.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// report prints the samples and judges them. The first quarter is
// warm-up (connections, caches, the load's first batches); of the rest,
// the second half's medians must stay within 20 % of the first half's
// (plus 1 MB and 10 goroutines of noise) for the phones backend's heap
// and carehub's goroutines. The whole heap and RSS are shown beside:
// under ingest load they swing with the write batches in flight.
func (s *memSampler) report(w io.Writer) bool {
	fmt.Fprintf(w, "carehub memory over the run (after a forced GC; push = heap allocated through internal/notify and internal/webpush):\n")
	for _, r := range s.rows {
		fmt.Fprintf(w, "  t=%4.0fs  push heap %6.2f MB  heap %6.1f MB  RSS %6.1f MB  goroutines %5d\n", r.at.Seconds(), r.pushMB, r.heapMB, r.rssMB, r.goroutines)
	}
	rows := s.rows[len(s.rows)/4:]
	if len(rows) < 6 {
		fmt.Fprintf(w, "  too few samples (%d after warm-up) to judge: run longer\n", len(rows))
		return false
	}
	med := func(rows []memRow, f func(memRow) float64) float64 {
		v := make([]float64, len(rows))
		for i, r := range rows {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	a, b := rows[:len(rows)/2], rows[len(rows)/2:]
	push := func(r memRow) float64 { return r.pushMB }
	heap := func(r memRow) float64 { return r.heapMB }
	rss := func(r memRow) float64 { return r.rssMB }
	gor := func(r memRow) float64 { return float64(r.goroutines) }
	p0, p1 := med(a, push), med(b, push)
	g0, g1 := med(a, gor), med(b, gor)
	fmt.Fprintf(w, "  medians after warm-up, first half -> second half: push heap %.2f -> %.2f MB, heap %.1f -> %.1f MB, RSS %.1f -> %.1f MB, goroutines %.0f -> %.0f\n",
		p0, p1, med(a, heap), med(b, heap), med(a, rss), med(b, rss), g0, g1)
	return p1 <= p0*1.2+1 && g1 <= g0*1.2+10
}
