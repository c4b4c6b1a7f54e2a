package app_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/app"
	"github.com/carehub/carehub/internal/config"
	"github.com/carehub/carehub/internal/testenv"
)

const adminToken = "test-admin-token-0123456789"

// env is a test configuration: embedded broker and NATS on random loopback
// ports, the given InfluxDB and database.
func env(t *testing.T, influxURL, db string, extra map[string]string) map[string]string {
	t.Helper()
	m := map[string]string{
		"CARE_HTTP_ADDR":        "127.0.0.1:0",
		"CARE_MQTT_LISTEN":      "127.0.0.1:0",
		"CARE_NATS_LISTEN":      "127.0.0.1:0",
		"CARE_DATA_DIR":         t.TempDir(),
		"CARE_INFLUX_URL":       influxURL,
		"CARE_INFLUX_BUCKET":    db,
		"CARE_ADMIN_TOKEN":      adminToken,
		"CARE_INSTANCE_ID":      testenv.ID("i"),
		"CARE_MQTT_SHARE_GROUP": testenv.ID("g"),
		"CARE_BATCH_INTERVAL":   "50ms",
		"CARE_LOG_LEVEL":        "warn",
	}
	// CARE_INGEST_BATCH in the tests' environment runs them with
	// cross-device batching (issue 14 item 2).
	if v := os.Getenv("CARE_INGEST_BATCH"); v != "" {
		m["CARE_INGEST_BATCH"] = v
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func startApp(t *testing.T, vars map[string]string, opts ...app.Option) *app.App {
	t.Helper()
	cfg, err := config.Load(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	log := zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).Level(zerolog.WarnLevel).With().Timestamp().Logger()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, err := app.Start(ctx, cfg, log, io.Discard, opts...)
	if err != nil {
		t.Fatalf("start carehub: %v", err)
	}
	t.Cleanup(a.Close)
	scheme := "http://"
	if cfg.TLS() {
		scheme = "https://" // the API serves HTTPS only once a certificate is set
	}
	waitReady(t, scheme+a.HTTPAddr())
	return a
}

// testCAs are the certificate authorities the tests' HTTP client trusts:
// a test that gives carehub a certificate registers its CA (trustCA) and
// then talks to https://… with the same helpers as to http://….
var (
	testCAsMu sync.Mutex
	testCAs   = x509.NewCertPool()
)

func trustCA(ca *x509.Certificate) {
	testCAsMu.Lock()
	defer testCAsMu.Unlock()
	testCAs.AddCert(ca)
}

func testClient() *http.Client {
	testCAsMu.Lock()
	defer testCAsMu.Unlock()
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: testCAs.Clone(), MinVersion: tls.VersionTLS12}}}
}

func waitReady(t *testing.T, base string) {
	t.Helper()
	testenv.WaitFor(t, 30*time.Second, "carehub /readyz to answer 200", func() bool {
		resp, err := testClient().Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// apiCall sends a JSON request with the admin token and decodes the answer.
func apiCall(t *testing.T, base, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, base+path, rd)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := testClient().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, path, b, err)
		}
	}
	return resp.StatusCode
}

type deviceCreds struct {
	ID         string `json:"id"`
	ResidentID string `json:"resident_id"`
	HomeID     string `json:"home_id"`
	MQTT       struct {
		Username    string `json:"username"`
		Password    string `json:"password"`
		TopicPrefix string `json:"topic_prefix"`
	} `json:"mqtt"`
}

// register creates a resident and a device of kind through the API.
func register(t *testing.T, base, kind string) deviceCreds {
	t.Helper()
	res := testenv.ID("r")
	if code := apiCall(t, base, "POST", "/api/v1/residents", map[string]any{"id": res, "name": "Test Resident", "home_id": testenv.ID("h")}, nil); code != http.StatusCreated {
		t.Fatalf("create resident: HTTP %d", code)
	}
	var d deviceCreds
	if code := apiCall(t, base, "POST", "/api/v1/devices", map[string]any{"id": testenv.ID("d"), "kind": kind, "resident_id": res}, &d); code != http.StatusCreated {
		t.Fatalf("create device: HTTP %d", code)
	}
	if d.MQTT.Password == "" || d.MQTT.Username != d.ID {
		t.Fatalf("device credentials incomplete: %+v", d)
	}
	return d
}

// deviceClient connects as a device with its Last Will, as firmware would.
func deviceClient(t *testing.T, brokerURL string, d deviceCreds) mqtt.Client {
	t.Helper()
	opts := mqtt.NewClientOptions().AddBroker(brokerURL).SetClientID(d.ID).SetUsername(d.ID).SetPassword(d.MQTT.Password).
		SetCleanSession(false).SetAutoReconnect(true).SetConnectRetry(false).
		SetWill("care/v1/dev/"+d.ID+"/status", `{"online":false}`, 1, true)
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("device %s connect: %v", d.ID, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func publish(t *testing.T, c mqtt.Client, topic string, payload []byte) {
	t.Helper()
	tok := c.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatalf("publish to %s: no PUBACK within 10 s", topic)
	}
	if tok.Error() != nil {
		t.Fatalf("publish to %s: %v", topic, tok.Error())
	}
}

// countPoints counts the points of a measurement for one device (InfluxQL
// count over one field).
func countPoints(t *testing.T, in *testenv.Influx, db, measurement, field, deviceID string) int {
	t.Helper()
	q := fmt.Sprintf(`SELECT count(%q) FROM %q WHERE device_id='%s'`, field, measurement, deviceID)
	out := in.QueryDB(t, db, q)
	var r struct {
		Results []struct {
			Series []struct {
				Values [][]json.Number `json:"values"`
			} `json:"series"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("decode %s: %v", out, err)
	}
	if len(r.Results) == 0 || len(r.Results[0].Series) == 0 || len(r.Results[0].Series[0].Values) == 0 {
		return 0
	}
	n, _ := r.Results[0].Series[0].Values[0][1].Int64()
	return int(n)
}

// metricValue reads one series from /metrics, e.g.
// carehub_ingest_rejected_total{reason="out_of_range"}. The labels may be
// given in any order: /metrics writes them in name order.
func metricValue(t *testing.T, base, series string) float64 {
	t.Helper()
	resp, err := testClient().Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	want := seriesKey(series)
	for _, line := range strings.Split(string(b), "\n") {
		i := strings.LastIndexByte(line, ' ')
		if i < 0 || line[0] == '#' || seriesKey(line[:i]) != want {
			continue
		}
		var f float64
		_, _ = fmt.Sscan(line[i+1:], &f)
		return f
	}
	return 0
}

// seriesKey writes a series' labels in name order, so that two spellings of
// one series compare equal; a series it cannot parse is returned as is.
func seriesKey(s string) string {
	name, rest, ok := strings.Cut(s, "{")
	if !ok {
		return s
	}
	rest = strings.TrimSuffix(rest, "}")
	type pair struct{ name, text string }
	var pairs []pair
	for rest != "" {
		eq := strings.Index(rest, `="`)
		if eq < 0 {
			return s
		}
		i := eq + 2
		for i < len(rest) && rest[i] != '"' {
			if rest[i] == '\\' {
				i++
			}
			i++
		}
		if i >= len(rest) {
			return s
		}
		pairs = append(pairs, pair{rest[:eq], rest[:i+1]})
		rest = strings.TrimPrefix(rest[i+1:], ",")
	}
	slices.SortFunc(pairs, func(a, b pair) int { return strings.Compare(a.name, b.name) })
	var b strings.Builder
	b.WriteString(name + "{")
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(p.text)
	}
	b.WriteByte('}')
	return b.String()
}
