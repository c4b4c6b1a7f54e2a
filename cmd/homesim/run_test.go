package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/carehub/carehub/internal/sim"
	"github.com/carehub/carehub/internal/sim/wire"
	"github.com/carehub/carehub/internal/testenv"
)

type allowAll struct{ mochi.HookBase }

func (h *allowAll) ID() string { return "allow-all" }
func (h *allowAll) Provides(b byte) bool {
	return bytes.Contains([]byte{mochi.OnConnectAuthenticate, mochi.OnACLCheck}, []byte{b})
}
func (h *allowAll) OnConnectAuthenticate(*mochi.Client, packets.Packet) bool { return true }
func (h *allowAll) OnACLCheck(*mochi.Client, string, bool) bool              { return true }

// broker runs an in-process open broker and counts messages per topic kind.
func broker(t *testing.T) (string, map[string]*atomic.Int64) {
	t.Helper()
	s := mochi.New(&mochi.Options{InlineClient: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	_ = s.AddHook(new(allowAll), nil)
	l := listeners.NewTCP(listeners.Config{ID: "t", Address: "127.0.0.1:0"})
	if err := s.AddListener(l); err != nil {
		t.Fatal(err)
	}
	counts := map[string]*atomic.Int64{"telemetry": {}, "event": {}, "status": {}}
	_ = s.Subscribe("care/v1/dev/#", 1, func(_ *mochi.Client, _ packets.Subscription, pk packets.Packet) {
		parts := strings.Split(pk.TopicName, "/")
		if c, ok := counts[parts[len(parts)-1]]; ok {
			c.Add(1)
		}
	})
	if err := s.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return "tcp://" + l.Address(), counts
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestRunRejectsBadFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no token", []string{}, nil, "admin token"},
		{"bad scenario", []string{"-register=false", "-scenario", "flood"}, nil, "-scenario"},
		{"two modes", []string{"-register=false", "-load", "-backfill", "1h"}, nil, "pick one"},
		{"load never stops", []string{"-register=false", "-load", "-count", "0"}, nil, "stop by itself"},
		{"qos 2", []string{"-register=false", "-qos", "2"}, nil, "-qos"},
		{"too many values", []string{"-register=false", "-values", "99"}, nil, "-values"},
		{"zero homes", []string{"-register=false", "-homes", "0"}, nil, "at least 1"},
		{"bad speed", []string{"-register=false", "-speed", "0"}, nil, "-speed"},
		{"unknown flag", []string{"-frobnicate"}, nil, "frobnicate"},
		{"stray argument", []string{"-register=false", "extra"}, nil, "unexpected"},
		{"register-only without registering", []string{"-register=false", "-register-only"}, nil, "needs registration"},
		{"bad log level", []string{"-token", "x", "-log-level", "loud"}, nil, "log-level"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(context.Background(), tc.args, env(tc.env), &out, &errb); code != 2 {
				t.Fatalf("exit %d, stderr %s", code, errb.String())
			}
			if !strings.Contains(errb.String(), tc.want) {
				t.Fatalf("stderr %q lacks %q", errb.String(), tc.want)
			}
		})
	}
}

func TestRunHelp(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"-h"}, env(nil), &out, &errb); code != 0 || !strings.Contains(errb.String(), "-scenario") {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}

func TestStartTime(t *testing.T) {
	now := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in    string
		speed float64
		want  time.Time
	}{
		{"", 1, now}, {"", 60, now.Add(-24 * time.Hour)}, {"6h", 60, now.Add(-6 * time.Hour)},
		{"-90m", 1, now.Add(-90 * time.Minute)}, {"2026-03-01T00:00:00Z", 1, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)},
	} {
		got, err := startTime(tc.in, tc.speed, now)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("%q at %vx: %v %v", tc.in, tc.speed, got, err)
		}
	}
	if _, err := startTime("yesterday", 1, now); err == nil {
		t.Error("bad -start accepted")
	}
}

// api is a minimal carehub registration API (contract §4).
func api(t *testing.T, token string) (*httptest.Server, *atomic.Int64) {
	var devices atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.WriteHeader(401)
			_, _ = w.Write([]byte(`{"error":{"code":"unauthorized","message":"no"}}`))
			return
		}
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		w.WriteHeader(201)
		if r.URL.Path == "/api/v1/devices" {
			devices.Add(1)
			id := body["id"].(string)
			_ = json.NewEncoder(w).Encode(map[string]any{"id": id, "mqtt": map[string]string{"username": id, "password": "pw-" + id, "topic_prefix": "care/v1/dev/" + id + "/"}})
			return
		}
		_ = json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(srv.Close)
	return srv, &devices
}

func TestRunRegisterOnlyWritesStateAndReusesIt(t *testing.T) {
	srv, devices := api(t, "secret-token")
	state := filepath.Join(t.TempDir(), "state.json")
	args := []string{"-api", srv.URL, "-state", state, "-homes", "3", "-seed", "9", "-register-only"}
	var out, errb bytes.Buffer
	if code := run(context.Background(), args, env(map[string]string{"CARE_ADMIN_TOKEN": "secret-token"}), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	st, ok, err := wire.LoadState(state)
	if !ok || err != nil || int64(len(st.Devices)) != devices.Load() || devices.Load() < 40 {
		t.Fatalf("state has %d devices, API issued %d: %v", len(st.Devices), devices.Load(), err)
	}
	if strings.Contains(errb.String(), "pw-") || strings.Contains(errb.String(), "secret-token") {
		t.Fatal("a secret reached the log")
	}
	// Restart: nothing registered again.
	before := devices.Load()
	if code := run(context.Background(), args, env(map[string]string{"CARE_ADMIN_TOKEN": "secret-token"}), &out, &errb); code != 0 || devices.Load() != before {
		t.Fatalf("exit %d, %d more devices registered", code, devices.Load()-before)
	}
	// -reset registers fresh ids.
	if code := run(context.Background(), append(args, "-reset"), env(map[string]string{"CARE_ADMIN_TOKEN": "secret-token"}), &out, &errb); code != 0 || devices.Load() != 2*before {
		t.Fatalf("exit %d, %d devices after reset", code, devices.Load())
	}
	st2, _, _ := wire.LoadState(state)
	if st2.Prefix == st.Prefix {
		t.Fatal("reset kept the ids")
	}
	// A wrong token fails with exit 1.
	if code := run(context.Background(), append(args, "-reset", "-token", "nope"), env(nil), &out, &errb); code != 1 {
		t.Fatalf("exit %d with a wrong token", code)
	}
}

func TestRunLoadMode(t *testing.T) {
	url, counts := broker(t)
	var out, errb bytes.Buffer
	args := []string{"-register=false", "-mqtt", url, "-load", "-devices", "30", "-conns", "2",
		"-per-device-conns=false", "-count", "3000", "-values", "3", "-id-prefix", testenv.ID("l")}
	if code := run(context.Background(), args, env(nil), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "sent 3000 messages") || !strings.Contains(out.String(), "0 errors") {
		t.Fatalf("stdout %q", out.String())
	}
	testenv.WaitFor(t, 5*time.Second, "3000 telemetry messages", func() bool { return counts["telemetry"].Load() == 3000 })
}

func TestRunSimulationAllScenarios(t *testing.T) {
	url, counts := broker(t)
	prefix := testenv.ID("s")
	// Two days ago at 06:00 in Seoul: waking up, whatever time the test runs.
	kst := time.FixedZone("KST", 9*3600)
	y, m, d := time.Now().In(kst).AddDate(0, 0, -2).Date()
	start := time.Date(y, m, d, 6, 0, 0, 0, kst).Format(time.RFC3339)
	var out, errb bytes.Buffer
	args := []string{"-register=false", "-mqtt", url, "-homes", "7", "-speed", "7200", "-start", start,
		"-duration", "1500ms", "-tick", "50ms", "-scenario", "all", "-incidents-per-day", "0", "-id-prefix", prefix, "-seed", "4"}
	if code := run(context.Background(), args, env(nil), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "7 scenarios, 0 errors") {
		t.Fatalf("stdout %q\n%s", out.String(), errb.String())
	}
	logs := errb.String()
	for _, s := range sim.Scenarios() {
		if !strings.Contains(logs, `"scenario":"`+s+`"`) {
			t.Errorf("scenario %s not logged", s)
		}
	}
	if !strings.Contains(logs, `"resident_id":"`+prefix+"-4-r0000") {
		t.Error("scenario log without resident id")
	}
	homes, _ := sim.PlanHomes(prefix+"-4", 4, 7)
	for _, h := range homes {
		if strings.Contains(logs, h.Name) {
			t.Fatalf("a resident's name reached the log")
		}
	}
	if counts["telemetry"].Load() < 500 || counts["event"].Load() < 20 || counts["status"].Load() < 100 {
		t.Fatalf("telemetry %d, events %d, status %d", counts["telemetry"].Load(), counts["event"].Load(), counts["status"].Load())
	}
}

func TestRunBackfill(t *testing.T) {
	url, counts := broker(t)
	var out, errb bytes.Buffer
	args := []string{"-register=false", "-mqtt", url, "-homes", "3", "-backfill", "3h", "-interval", "1m", "-id-prefix", testenv.ID("b")}
	if code := run(context.Background(), args, env(nil), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "9 messages, 540 samples") {
		t.Fatalf("stdout %q", out.String())
	}
	testenv.WaitFor(t, 5*time.Second, "9 arrays", func() bool { return counts["telemetry"].Load() == 9 })
}
