package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is one real process of the topology: how to start it, where its log
// goes, and how to tell it is ready. Kill and Restart are the faults the
// tests inject; the same binary, arguments, environment and data directory
// come back on Restart, as a supervisor (systemd) would bring them back.
type Proc struct {
	Name string // n1, mqtt-1, influxd, care-1: also its log file's name
	Dir  string // its data directory
	Log  string // its log file

	bin   string
	args  []string
	env   []string
	ready func(ctx context.Context) error

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been waited for
	exit error         // cmd.Wait's answer, set before done closes
}

// Start starts the process and waits until ready says it is, or timeout
// (0: does not wait).
func (p *Proc) Start(ctx context.Context, timeout time.Duration) error {
	p.mu.Lock()
	if p.cmd != nil {
		p.mu.Unlock()
		return fmt.Errorf("%s is already running", p.Name)
	}
	logf, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.mu.Unlock()
		return err
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	cmd.Dir = p.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// Our children die with us: an interrupted test or demo leaves no
	// NATS node or broker holding a port. Their own process group keeps a
	// terminal's Ctrl-C from reaching them all at once: Close stops them
	// in order, carehub before the NATS it drains to.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		p.mu.Unlock()
		logf.Close()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	go func() {
		err := cmd.Wait()
		logf.Close()
		p.mu.Lock()
		p.exit = err
		p.mu.Unlock()
		close(done)
	}()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	return p.waitReady(ctx, timeout)
}

func (p *Proc) waitReady(ctx context.Context, timeout time.Duration) error {
	if p.ready == nil || timeout == 0 {
		return nil
	}
	var last error
	err := poll(ctx, timeout, func() bool {
		if !p.Running() {
			last = errors.New("it exited")
			return true
		}
		last = p.ready(ctx)
		return last == nil
	})
	if err == nil && last == nil {
		return nil
	}
	if last == nil {
		last = err
	}
	return fmt.Errorf("%s not ready after %s: %v; its log %s ends:\n%s", p.Name, timeout, last, p.Log, Tail(p.Log, 3000))
}

// Running says whether the process is alive.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// PID is the running process's id, or 0.
func (p *Proc) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Wait waits until the process started last exits (a load generator that
// runs to completion) and returns how it ended.
func (p *Proc) Wait(ctx context.Context) error {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return fmt.Errorf("%s was never started", p.Name)
	}
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exit != nil {
		return fmt.Errorf("%s: %w; its log %s ends:\n%s", p.Name, p.exit, p.Log, Tail(p.Log, 2000))
	}
	return nil
}

// Kill sends SIGKILL, the crash the fault tests inject (no shutdown hook
// runs, nothing is flushed), and waits for the process to be gone.
func (p *Proc) Kill() { p.signal(syscall.SIGKILL, 0) }

// Stop sends SIGTERM and waits up to 20 s, then kills.
func (p *Proc) Stop() { p.signal(syscall.SIGTERM, 20*time.Second) }

func (p *Proc) signal(sig syscall.Signal, grace time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	if grace > 0 {
		select {
		case <-done:
			return
		case <-time.After(grace):
			_ = cmd.Process.Kill()
		}
	}
	<-done
}

// Restart starts a stopped or killed process again, with the same data.
func (p *Proc) Restart(ctx context.Context, timeout time.Duration) error {
	p.Kill() // no-op when it is not running
	return p.Start(ctx, timeout)
}

// Tail is the last n bytes of a file, for failure messages.
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// Notable is the last n lines of carehub's JSON log at path that are
// warnings or errors, lease changes or alert transitions, without the
// lines every fault repeats many times (readiness checks, publish retries).
func Notable(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	var keep []string
	for _, line := range strings.Split(string(b), "\n") {
		noisy := strings.Contains(line, "readiness check failed") || strings.Contains(line, "publish failed; retrying") ||
			strings.Contains(line, "fetch from jetstream failed")
		notable := strings.Contains(line, `"level":"warn"`) || strings.Contains(line, `"level":"error"`) ||
			strings.Contains(line, "lease") || strings.Contains(line, "alert transition")
		if notable && !noisy {
			keep = append(keep, line)
		}
	}
	if len(keep) > n {
		keep = keep[len(keep)-n:]
	}
	return strings.Join(keep, "\n")
}

// poll calls cond every 50 ms until it is true, ctx ends or timeout passes.
func poll(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// dialable is a readiness check: something accepts TCP on addr.
func dialable(addr string) func(context.Context) error {
	return func(context.Context) error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// httpOK is a readiness check: GET url answers 2xx.
func httpOK(url string) func(context.Context) error {
	client := &http.Client{Timeout: 3 * time.Second}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}

func mkdirs(dirs ...string) error {
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	return nil
}

func newProc(name, dir, bin string, args, env []string, ready func(context.Context) error) *Proc {
	return &Proc{Name: name, Dir: dir, Log: filepath.Join(filepath.Dir(dir), name+".log"), bin: bin, args: args, env: env, ready: ready}
}
