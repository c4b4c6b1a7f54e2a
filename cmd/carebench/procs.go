package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// env is one benchmark's working set: a temporary directory and the
// processes it started, stopped in reverse order.
type env struct {
	dir   string
	root  string // the repository
	procs []*exec.Cmd
	named map[string]*exec.Cmd // the processes by the name they were started with
	log   io.Writer
}

func newEnv(log io.Writer) (*env, error) {
	dir, err := os.MkdirTemp("", "carebench-")
	if err != nil {
		return nil, err
	}
	root, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(root, "deploy", "mosquitto", "carehub.conf")); err != nil {
		return nil, errors.New("run carebench from the repository root (make bench-ingest does)")
	}
	return &env{dir: dir, root: root, log: log, named: map[string]*exec.Cmd{}}, nil
}

func (e *env) close() {
	for i := len(e.procs) - 1; i >= 0; i-- {
		p := e.procs[i]
		if p.Process != nil && p.ProcessState == nil {
			_ = p.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = p.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				_ = p.Process.Kill()
			}
		}
	}
	_ = os.RemoveAll(e.dir)
}

func (e *env) start(name string, cmd *exec.Cmd) error {
	f, err := os.Create(filepath.Join(e.dir, name+".log"))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	e.procs = append(e.procs, cmd)
	e.named[name] = cmd
	return nil
}

// settle waits until the named process has used less than a tenth of a
// core for a whole second (InfluxDB compacting what was just written),
// or until timeout, and says how long it took.
func (e *env) settle(ctx context.Context, name string, timeout time.Duration) (time.Duration, error) {
	cmd := e.named[name]
	if cmd == nil || cmd.Process == nil {
		return 0, fmt.Errorf("no process %q", name)
	}
	start := time.Now()
	_, prev := procStats(cmd.Process.Pid)
	for time.Since(start) < timeout {
		select {
		case <-ctx.Done():
			return time.Since(start), ctx.Err()
		case <-time.After(time.Second):
		}
		_, cpu := procStats(cmd.Process.Pid)
		if cpu-prev < 0.1 {
			return time.Since(start), nil
		}
		prev = cpu
	}
	return time.Since(start), nil
}

func (e *env) logTail(name string) string {
	b, _ := os.ReadFile(filepath.Join(e.dir, name+".log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitFor(ctx context.Context, timeout time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// mosquitto starts Mosquitto with the project's production configuration,
// changed only where a benchmark must: a loopback listener on a free port,
// anonymous access (the loader publishes for many devices per connection),
// and persistence in the temporary directory.
func (e *env) mosquitto(ctx context.Context) (string, error) {
	prod, err := os.ReadFile(filepath.Join(e.root, "deploy", "mosquitto", "carehub.conf"))
	if err != nil {
		return "", err
	}
	port := freePort()
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(string(prod)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "listener"), strings.HasPrefix(line, "allow_anonymous"),
			strings.HasPrefix(line, "password_file"), strings.HasPrefix(line, "acl_file"),
			strings.HasPrefix(line, "persistence_location"), strings.HasPrefix(line, "log_dest"),
			strings.HasPrefix(line, "certfile"), strings.HasPrefix(line, "keyfile"), strings.HasPrefix(line, "cafile"),
			strings.HasPrefix(line, "tls_version"),
			// The loader is anonymous, on one listener.
			strings.HasPrefix(line, "use_username_as_clientid"), strings.HasPrefix(line, "per_listener_settings"):
			continue
		}
		b.WriteString(sc.Text() + "\n")
	}
	fmt.Fprintf(&b, "listener %d 127.0.0.1\nallow_anonymous true\npersistence_location %s/\nlog_dest stderr\n", port, e.dir)
	conf := filepath.Join(e.dir, "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		return "", err
	}
	bin := "mosquitto"
	if _, err := exec.LookPath(bin); err != nil {
		bin = "/usr/sbin/mosquitto"
	}
	if err := e.start("mosquitto", exec.CommandContext(ctx, bin, "-c", conf)); err != nil {
		return "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	err = waitFor(ctx, 10*time.Second, "mosquitto", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	if err != nil {
		return "", fmt.Errorf("%w\n%s", err, e.logTail("mosquitto"))
	}
	return "tcp://" + addr, nil
}

// influxd starts InfluxDB 1.8 (built by deploy/dev/influxdb.sh) and creates
// the database.
func (e *env) influxd(ctx context.Context, db string) (string, error) {
	out, err := exec.CommandContext(ctx, filepath.Join(e.root, "deploy", "dev", "influxdb.sh"), "path").Output()
	if err != nil {
		return "", fmt.Errorf("influxd: %w", err)
	}
	bin := strings.TrimSpace(string(out))
	port := freePort()
	cmd := exec.CommandContext(ctx, bin)
	d := filepath.Join(e.dir, "influxdb")
	cmd.Env = append(os.Environ(),
		"INFLUXDB_REPORTING_DISABLED=true",
		fmt.Sprintf("INFLUXDB_BIND_ADDRESS=127.0.0.1:%d", freePort()),
		fmt.Sprintf("INFLUXDB_HTTP_BIND_ADDRESS=127.0.0.1:%d", port),
		"INFLUXDB_HTTP_FLUX_ENABLED=true", "INFLUXDB_HTTP_LOG_ENABLED=false", "INFLUXDB_LOGGING_LEVEL=warn",
		"INFLUXDB_DATA_QUERY_LOG_ENABLED=false", "INFLUXDB_HTTP_MAX_BODY_SIZE=0",
		"INFLUXDB_META_DIR="+d+"/meta", "INFLUXDB_DATA_DIR="+d+"/data", "INFLUXDB_DATA_WAL_DIR="+d+"/wal")
	if err := e.start("influxd", cmd); err != nil {
		return "", err
	}
	u := fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := waitFor(ctx, 60*time.Second, "influxd", func() bool {
		resp, err := http.Get(u + "/ping")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 204
	}); err != nil {
		return "", err
	}
	resp, err := http.PostForm(u+"/query", url.Values{"q": {"CREATE DATABASE " + db}})
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	return u, nil
}

// carehub starts the carehub binary with the given variables.
func (e *env) carehub(ctx context.Context, vars map[string]string) (*exec.Cmd, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(e.root, "bin", "carehub"), "serve")
	cmd.Env = os.Environ()
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if err := e.start("carehub", cmd); err != nil {
		return nil, err
	}
	base := "http://" + vars["CARE_HTTP_ADDR"]
	err := waitFor(ctx, 60*time.Second, "carehub /readyz", func() bool {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	if err != nil {
		return nil, fmt.Errorf("%w\n%s", err, e.logTail("carehub"))
	}
	return cmd, nil
}

// homesim runs homesim to completion and returns its standard output.
func (e *env) homesim(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(e.root, "bin", "homesim"), args...)
	var out strings.Builder
	f, _ := os.Create(filepath.Join(e.dir, "homesim.log"))
	defer f.Close()
	cmd.Stdout = io.MultiWriter(&out, f)
	cmd.Stderr = f
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("homesim %v: %w\n%s", args, err, e.logTail("homesim"))
	}
	return out.String(), nil
}

// cpuByProcess is the CPU seconds used so far by each named process this
// benchmark started (those not running are left out).
func (e *env) cpuByProcess(names ...string) map[string]float64 {
	out := map[string]float64{}
	for _, name := range names {
		if cmd := e.named[name]; cmd != nil && cmd.Process != nil {
			_, out[name] = procStats(cmd.Process.Pid)
		}
	}
	return out
}

// procStats reads a process's peak resident set (VmHWM) and CPU seconds.
func procStats(pid int) (peakRSSMB float64, cpuSec float64) {
	return procMem(pid, "VmHWM:")
}

// procNow reads a process's resident set now (VmRSS) and CPU seconds.
func procNow(pid int) (rssMB float64, cpuSec float64) {
	return procMem(pid, "VmRSS:")
}

// procMem reads the memory figure field of /proc/pid/status, in MB, and
// the process's CPU seconds.
func procMem(pid int, field string) (peakRSSMB float64, cpuSec float64) {
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, field); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
				peakRSSMB = kb / 1024
			}
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i > 0 {
			f := strings.Fields(s[i+2:])
			if len(f) > 13 {
				ut, _ := strconv.ParseFloat(f[11], 64)
				st, _ := strconv.ParseFloat(f[12], 64)
				cpuSec = (ut + st) / 100 // USER_HZ is 100 on Linux
			}
		}
	}
	return peakRSSMB, cpuSec
}

// scrape reads carehub's /metrics into a map of series → value.
func scrape(base string) (map[string]float64, error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			m[line[:i]] = v
		}
	}
	return m, sc.Err()
}

// histogramQuantile estimates a quantile from Prometheus buckets by linear
// interpolation inside the bucket, as Prometheus's histogram_quantile does.
func histogramQuantile(m map[string]float64, name string, q float64) float64 {
	type bucket struct{ le, n float64 }
	var bs []bucket
	for k, v := range m {
		rest, ok := strings.CutPrefix(k, name+`_bucket{le="`)
		if !ok {
			continue
		}
		le := strings.TrimSuffix(rest, `"}`)
		f := 1e308
		if le != "+Inf" {
			f, _ = strconv.ParseFloat(le, 64)
		}
		bs = append(bs, bucket{f, v})
	}
	if len(bs) == 0 {
		return 0
	}
	for i := range bs {
		for j := i + 1; j < len(bs); j++ {
			if bs[j].le < bs[i].le {
				bs[i], bs[j] = bs[j], bs[i]
			}
		}
	}
	total := bs[len(bs)-1].n
	if total == 0 {
		return 0
	}
	rank := q * total
	prevLe, prevN := 0.0, 0.0
	for _, b := range bs {
		if b.n >= rank {
			if b.le == 1e308 {
				return prevLe
			}
			if b.n == prevN {
				return b.le
			}
			return prevLe + (b.le-prevLe)*(rank-prevN)/(b.n-prevN)
		}
		prevLe, prevN = b.le, b.n
	}
	return prevLe
}

// services starts Mosquitto (production configuration) and InfluxDB with
// the database "care", which every benchmark needs.
func (e *env) services(ctx context.Context) (broker, influxURL string, err error) {
	if broker, err = e.mosquitto(ctx); err != nil {
		return "", "", err
	}
	influxURL, err = e.influxd(ctx, "care")
	return broker, influxURL, err
}

// stack is a running carehub: its API base URL, its embedded NATS address
// and its process.
type stack struct {
	base, natsAddr string
	dataDir        string // CARE_DATA_DIR: holds the embedded NATS secret
	proc           *exec.Cmd
}

// startCarehub runs carehub against the external broker and InfluxDB, with
// its own embedded NATS; extra variables override the defaults.
func (e *env) startCarehub(ctx context.Context, broker, influxURL string, extra map[string]string) (*stack, error) {
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort())
	natsAddr := fmt.Sprintf("127.0.0.1:%d", freePort())
	vars := map[string]string{
		"CARE_HTTP_ADDR": httpAddr, "CARE_MQTT_URL": broker, "CARE_NATS_LISTEN": natsAddr,
		"CARE_INFLUX_URL": influxURL, "CARE_INFLUX_BUCKET": "care", "CARE_DATA_DIR": filepath.Join(e.dir, "carehub"),
		"CARE_ADMIN_TOKEN": benchToken, "CARE_LOG_LEVEL": "warn", "CARE_INSTANCE_ID": "bench",
		"CARE_QUERY_RATE": "1000000", "CARE_QUERY_BURST": "1000000", // the benchmarks time queries, not the limit
		// CAREBENCH_PPROF_ADDR=127.0.0.1:6060 serves carehub's profiles
		// during a benchmark.
		"CARE_PPROF_ADDR": os.Getenv("CAREBENCH_PPROF_ADDR"),
	}
	for k, v := range extra {
		vars[k] = v
	}
	proc, err := e.carehub(ctx, vars)
	if err != nil {
		return nil, err
	}
	return &stack{base: "http://" + httpAddr, natsAddr: natsAddr, dataDir: vars["CARE_DATA_DIR"], proc: proc}, nil
}
