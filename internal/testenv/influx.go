package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// InfluxdPath returns the influxd binary built by deploy/dev/influxdb.sh. The
// Makefile builds it before the tests run; CAREHUB_INFLUXD overrides it.
func InfluxdPath(t testing.TB) string {
	t.Helper()
	p, err := influxdPath()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func influxdPath() (string, error) {
	if p := os.Getenv("CAREHUB_INFLUXD"); p != "" {
		return p, nil
	}
	cache := os.Getenv("CAREHUB_CACHE")
	if cache == "" {
		if x := os.Getenv("XDG_CACHE_HOME"); x != "" {
			cache = filepath.Join(x, "carehub")
		} else {
			home, _ := os.UserHomeDir()
			cache = filepath.Join(home, ".cache", "carehub")
		}
	}
	p := filepath.Join(cache, "influxd-v1.8.10", "influxd")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("influxd not found at %s: run `deploy/dev/influxdb.sh install` (make test does)", p)
	}
	return p, nil
}

// Influx is a running InfluxDB 1.8 with Flux enabled.
type Influx struct {
	URL     string // http://127.0.0.1:port
	Dir     string
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has exited
	port    int
	started bool // answered once: a restart keeps its port
	shared  bool // the package's (SharedInflux): no test stops or restarts it
	t       testing.TB
}

// StartInflux starts a private influxd on a random loopback port, stopped
// with the test. Use it for tests that stop or restart InfluxDB; the others
// share one with SharedInflux.
func StartInflux(t testing.TB) *Influx {
	t.Helper()
	in := &Influx{Dir: t.TempDir(), port: FreePort(t), t: t}
	in.URL = fmt.Sprintf("http://127.0.0.1:%d", in.port)
	in.Start()
	t.Cleanup(in.Stop)
	return in
}

// shared is the influxd that a test binary's tests share: started by the
// first test that asks, stopped by Main once they have all run.
var shared struct {
	mu   sync.Mutex
	main bool // Main runs the tests, so the influxd will be stopped
	in   *Influx
	err  error // its start failed: every test that asks fails with this
}

// SharedInflux returns the InfluxDB that a package's tests share, each in
// databases of its own (CreateDB, or a bucket named with ID):
// CAREHUB_TEST_INFLUX_URL's (a developer's running influxd), or else one
// influxd for the whole test binary, which its TestMain stops (Main). One
// influxd a package instead of one a test spares a full test run dozens of
// start-ups, which under the race detector on 2 cores took up to a minute
// each.
func SharedInflux(t testing.TB) *Influx {
	t.Helper()
	if u := os.Getenv("CAREHUB_TEST_INFLUX_URL"); u != "" {
		return &Influx{URL: u, shared: true}
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.main {
		t.Fatal("testenv.SharedInflux needs the package's TestMain to run the tests through testenv.Main, which stops the shared influxd")
	}
	if shared.in == nil && shared.err == nil {
		shared.in, shared.err = startShared()
	}
	if shared.err != nil {
		t.Fatalf("the shared influxd: %v", shared.err)
	}
	return shared.in
}

// startShared starts the shared influxd from a goroutine locked to its
// thread, which stays until influxd exits: influxd is asked to die with that
// thread (Pdeathsig), so a test binary that panics or times out before Main
// stops it leaves no influxd behind.
func startShared() (*Influx, error) {
	removeStaleShared()
	dir, err := os.MkdirTemp("", fmt.Sprintf("carehub-influxd-%d-", os.Getpid()))
	if err != nil {
		return nil, err
	}
	in := &Influx{Dir: dir, shared: true}
	launched := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		err := in.launch(true)
		launched <- err
		if err == nil {
			<-in.exited
		}
	}()
	if err := <-launched; err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return in, nil
}

// removeStaleShared removes the data of shared influxds whose test binary
// died before its Main could (a panic, a timeout): their names carry its pid.
func removeStaleShared() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "carehub-influxd-*-*"))
	for _, dir := range dirs {
		var pid int
		if _, err := fmt.Sscanf(filepath.Base(dir), "carehub-influxd-%d-", &pid); err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(dir)
		}
	}
}

// Main runs a test binary's tests (call it from TestMain), then stops the
// shared influxd, if one was started, and removes its data.
func Main(m *testing.M) {
	shared.mu.Lock()
	shared.main = true
	shared.mu.Unlock()
	code := m.Run()
	shared.mu.Lock()
	if in := shared.in; in != nil {
		in.kill()
		_ = os.RemoveAll(in.Dir)
	}
	shared.mu.Unlock()
	os.Exit(code)
}

// influxdStartup bounds one start of influxd: it takes seconds, but under a
// full test run on 2 cores (every package at once, with the race detector)
// it has taken most of a minute.
const influxdStartup = 2 * time.Minute

// Start (re)starts a private influxd on the same port and data directory.
func (in *Influx) Start() {
	if in.shared {
		panic("testenv: a shared InfluxDB cannot be restarted: use StartInflux")
	}
	in.t.Helper()
	if err := in.launch(false); err != nil {
		in.t.Fatal(err)
	}
}

// launch starts influxd. A first start whose influxd exits before it answers
// (a port freePort gave was taken meanwhile by another test's process) is
// tried again on other ports; a failure says what influxd logged.
func (in *Influx) launch(dieWithThread bool) error {
	for attempt := 1; ; attempt++ {
		if in.port == 0 || (!in.started && attempt > 1) {
			port, err := freePort()
			if err != nil {
				return err
			}
			in.port = port
			in.URL = fmt.Sprintf("http://127.0.0.1:%d", in.port)
		}
		err := in.start(dieWithThread)
		if err == nil {
			in.started = true
			return nil
		}
		if in.started || attempt == 3 {
			log, _ := os.ReadFile(filepath.Join(in.Dir, "influxd.log"))
			if len(log) > 4000 {
				log = log[len(log)-4000:]
			}
			return fmt.Errorf("influxd: %w; its log ends:\n%s", err, log)
		}
	}
}

func (in *Influx) start(dieWithThread bool) error {
	path, err := influxdPath()
	if err != nil {
		return err
	}
	rpcPort, err := freePort()
	if err != nil {
		return err
	}
	cmd := exec.Command(path)
	if dieWithThread {
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}
	cmd.Env = append(os.Environ(),
		"INFLUXDB_REPORTING_DISABLED=true",
		fmt.Sprintf("INFLUXDB_BIND_ADDRESS=127.0.0.1:%d", rpcPort),
		fmt.Sprintf("INFLUXDB_HTTP_BIND_ADDRESS=127.0.0.1:%d", in.port),
		"INFLUXDB_HTTP_FLUX_ENABLED=true",
		"INFLUXDB_HTTP_LOG_ENABLED=false",
		"INFLUXDB_LOGGING_LEVEL=warn",
		"INFLUXDB_DATA_QUERY_LOG_ENABLED=false",
		"INFLUXDB_META_DIR="+filepath.Join(in.Dir, "meta"),
		"INFLUXDB_DATA_DIR="+filepath.Join(in.Dir, "data"),
		"INFLUXDB_DATA_WAL_DIR="+filepath.Join(in.Dir, "wal"),
	)
	logf, err := os.OpenFile(filepath.Join(in.Dir, "influxd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own descriptor
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	in.cmd, in.exited = cmd, exited
	deadline := time.Now().Add(influxdStartup)
	for {
		if resp, err := http.Get(in.URL + "/ping"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusNoContent {
				return nil
			}
		}
		select {
		case <-exited:
			in.cmd = nil
			return fmt.Errorf("exited before it answered /ping on %s (%v)", in.URL, cmd.ProcessState)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			in.kill()
			return fmt.Errorf("no answer to /ping on %s within %s", in.URL, influxdStartup)
		}
	}
}

// Stop kills a private influxd (SIGKILL: the harshest stop, which InfluxDB's
// WAL must survive) and waits for it to exit.
func (in *Influx) Stop() {
	if in.shared {
		panic("testenv: a shared InfluxDB cannot be stopped: use StartInflux")
	}
	in.kill()
}

func (in *Influx) kill() {
	if in.cmd == nil || in.cmd.Process == nil {
		return
	}
	_ = in.cmd.Process.Signal(syscall.SIGKILL)
	<-in.exited
	in.cmd = nil
}

// CreateDB creates a fresh database and returns its name; the bucket for
// the v2 API is name + "/autogen".
func (in *Influx) CreateDB(t testing.TB) string {
	t.Helper()
	name := ID("t")
	in.Query(t, "CREATE DATABASE "+name)
	return name
}

// Query runs an InfluxQL statement through the 1.x /query endpoint and
// returns the raw JSON answer.
func (in *Influx) Query(t testing.TB, q string) string {
	t.Helper()
	return in.query(t, q, url.Values{"q": {q}})
}

// QueryDB runs an InfluxQL statement against database db.
func (in *Influx) QueryDB(t testing.TB, db, q string) string {
	t.Helper()
	return in.query(t, q, url.Values{"q": {q}, "db": {db}, "epoch": {"ms"}})
}

func (in *Influx) query(t testing.TB, q string, form url.Values) string {
	t.Helper()
	resp, err := http.PostForm(in.URL+"/query", form)
	if err != nil {
		t.Fatalf("influx query %q: %v", q, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("influx query %q: %s: %s", q, resp.Status, b.String())
	}
	return b.String()
}
