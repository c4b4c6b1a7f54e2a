// Package testenv starts the real services carehub's integration tests talk
// to: NATS with JetStream in-process, InfluxDB 1.8 as a real influxd process,
// Mosquitto as a real process (or the machine's own on 127.0.0.1:1883), each
// on a random loopback port and torn down with the test (a shared influxd,
// with the test binary).
package testenv

import (
	"context"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsserver "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/internal/natsx"
)

// WaitFor polls cond until it is true or the deadline passes, then fails the
// test with what it was waiting for. Tests poll; they never sleep for luck.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ID returns a fresh identifier with the given prefix, valid under the
// contract's id rule, so parallel tests never see each other's data.
func ID(prefix string) string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// NATS starts an in-process NATS server with JetStream on a random port, its
// store in a temporary directory.
func NATS(t testing.TB) *server.Server {
	t.Helper()
	return NATSAt(t, -1, t.TempDir())
}

// NATSAt starts NATS with JetStream on port (-1 = random) with its store in
// dir; starting it again on the same port and dir is a restart.
func NATSAt(t testing.TB, port int, dir string) *server.Server {
	t.Helper()
	opts := natsserver.DefaultTestOptions
	opts.Host = "127.0.0.1"
	opts.Port = port
	opts.JetStream = true
	opts.StoreDir = dir
	opts.NoLog = true
	opts.NoSigs = true
	s := natsserver.RunServer(&opts)
	t.Cleanup(s.Shutdown)
	return s
}

// Mosquitto is a real mosquitto process.
type Mosquitto struct {
	URL  string // tcp://127.0.0.1:port
	Port int
	conf string
	cmd  *exec.Cmd
	t    testing.TB
}

// StartMosquitto runs a private mosquitto on a random loopback port with the
// given configuration body (listener lines are added; "" = Debian defaults
// with anonymous access).
func StartMosquitto(t testing.TB, confBody string) *Mosquitto {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
			if _, e := os.Stat(p); e == nil {
				bin, err = p, nil
			}
		}
	}
	if err != nil {
		t.Fatal("mosquitto is not installed: run deploy/dev/setup.sh (apt-get install mosquitto)")
	}
	dir := t.TempDir()
	m := &Mosquitto{Port: FreePort(t), t: t}
	m.URL = fmt.Sprintf("tcp://127.0.0.1:%d", m.Port)
	var conf strings.Builder
	fmt.Fprintf(&conf, "listener %d 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\nlog_dest file %s/mosquitto.log\n", m.Port, dir, dir)
	conf.WriteString(confBody)
	m.conf = filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(m.conf, []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	m.cmd = exec.Command(bin, "-c", m.conf)
	m.start()
	t.Cleanup(m.Stop)
	return m
}

// DynsecAdmin is the user of StartDynsecMosquitto's broker with the
// dynamic-security plugin's admin role.
const DynsecAdmin, DynsecAdminPassword = "admin", "dynsec-admin-password"

// StartDynsecMosquitto runs a private mosquitto whose logins and ACLs are
// its dynamic-security plugin's, starting with one client, DynsecAdmin,
// holding the admin role that `mosquitto_ctrl dynsec init` creates.
func StartDynsecMosquitto(t testing.TB) *Mosquitto {
	t.Helper()
	plugins, _ := filepath.Glob("/usr/lib/*/mosquitto_dynamic_security.so")
	if len(plugins) == 0 {
		t.Fatal("mosquitto's dynamic-security plugin is not installed: run deploy/dev/setup.sh (apt-get install mosquitto)")
	}
	salt := make([]byte, 12)
	if _, err := rand.Read(salt); err != nil {
		t.Fatal(err)
	}
	hash, err := pbkdf2.Key(sha512.New, DynsecAdminPassword, salt, 101, 64)
	if err != nil {
		t.Fatal(err)
	}
	acl := func(typ, topic string) map[string]any {
		return map[string]any{"acltype": typ, "topic": topic, "allow": true}
	}
	cfg := map[string]any{
		"defaultACLAccess": map[string]bool{"publishClientSend": false, "publishClientReceive": true, "subscribe": false, "unsubscribe": true},
		"clients": []map[string]any{{"username": DynsecAdmin, "password": base64.StdEncoding.EncodeToString(hash),
			"salt": base64.StdEncoding.EncodeToString(salt), "iterations": 101, "roles": []map[string]any{{"rolename": "admin"}}}},
		"roles": []map[string]any{{"rolename": "admin", "acls": []map[string]any{
			acl("publishClientSend", "$CONTROL/dynamic-security/#"), acl("publishClientReceive", "$CONTROL/dynamic-security/#"),
			acl("subscribePattern", "$CONTROL/dynamic-security/#"), acl("publishClientReceive", "$SYS/#"), acl("subscribePattern", "$SYS/#"),
			acl("publishClientReceive", "#"), acl("subscribePattern", "#"), acl("unsubscribePattern", "#"),
		}}},
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "dynsec.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// Started as root, mosquitto would drop to the mosquitto user, which
	// can neither read this file nor save the plugin's changes beside it.
	return StartMosquitto(t, fmt.Sprintf("user root\nallow_anonymous false\nplugin %s\nplugin_opt_config_file %s\n", plugins[0], file))
}

func (m *Mosquitto) start() {
	m.t.Helper()
	if err := m.cmd.Start(); err != nil {
		m.t.Fatalf("start mosquitto: %v", err)
	}
	WaitFor(m.t, 10*time.Second, "mosquitto to listen", func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", m.Port))
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// Stop stops mosquitto (SIGTERM, so it saves its persistence file).
func (m *Mosquitto) Stop() {
	if m.cmd == nil || m.cmd.Process == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	_, _ = m.cmd.Process.Wait()
}

// Restart starts a stopped mosquitto again on the same port, with its
// configuration and persistence file.
func (m *Mosquitto) Restart() {
	m.t.Helper()
	m.Stop()
	m.cmd = exec.Command(m.cmd.Path, m.cmd.Args[1:]...)
	m.start()
}

// JetStream connects to ns and declares carehub's streams, as carehub does
// at start; the connection closes with the test.
func JetStream(t testing.TB, ns *server.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := natsx.EnsureStreams(ctx, js, natsx.DefaultStreamOptions); err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// ConsumerDone reports whether the durable consumer on stream has acked
// every message of interest to it: nothing pending, nothing unacked, and
// delivered up to the newest message its filter matches. The last check
// matters: the server counts a consumer's pending messages only after a
// publish is acknowledged, so for a moment a consumer that has not seen a
// new message (or is still being created) shows nothing pending.
// The consumer's info comes with the answer, for callers that check more.
func ConsumerDone(ctx context.Context, js jetstream.JetStream, stream, durable string) (*jetstream.ConsumerInfo, bool) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, stream, durable)
	if err != nil {
		return nil, false
	}
	info, err := c.Info(ctx)
	if err != nil || info.NumPending != 0 || info.NumAckPending != 0 {
		return info, false
	}
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, false
	}
	filters := info.Config.FilterSubjects
	if info.Config.FilterSubject != "" {
		filters = append(filters, info.Config.FilterSubject)
	}
	if len(filters) == 0 {
		filters = []string{">"}
	}
	var last uint64
	for _, f := range filters {
		m, err := st.GetLastMsgForSubject(ctx, f)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
		case err != nil:
			return nil, false
		case m.Sequence > last:
			last = m.Sequence
		}
	}
	return info, info.Delivered.Stream >= last
}
