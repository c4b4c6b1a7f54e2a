package app_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/app"
	"github.com/carehub/carehub/internal/config"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/natsx"
	"github.com/carehub/carehub/internal/testenv"
	"github.com/carehub/carehub/internal/tlsx"
)

// The embedded NATS server of a running carehub refuses a client without
// credentials, so nobody can write a token record into KV or forge an SOS
// event; carehub's own credentials (App.NATSOptions) work.
func TestEmbeddedNATSRequiresLogin(t *testing.T) {
	in := testenv.SharedInflux(t)
	a := startApp(t, env(t, in.URL, in.CreateDB(t), nil))
	if nc, err := nats.Connect(a.NATSURL(), nats.NoReconnect()); err == nil {
		defer nc.Close()
		js, _ := jetstream.New(nc)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if kv, err := js.KeyValue(ctx, model.BucketTokens); err == nil {
			_, err = kv.Put(ctx, "forged", []byte(`{"user":"admin"}`))
			t.Errorf("token KV write without credentials: err=%v", err)
		}
		t.Fatal("connected to the embedded NATS without credentials")
	}
	if strings.Contains(a.NATSURL(), "@") {
		t.Fatalf("NATSURL carries credentials: %s", a.NATSURL())
	}
	nc, err := nats.Connect(a.NATSURL(), a.NATSOptions()...)
	if err != nil {
		t.Fatalf("carehub's credentials: %v", err)
	}
	defer nc.Close()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// A separate command (carehub audit verify) finds the same login from
	// the configuration alone: the secret in CARE_DATA_DIR.
	cfg := a.Config
	cfg.NATSListen = strings.TrimPrefix(a.NATSURL(), "nats://") // the test listens on port 0
	url, opts, err := app.NATSClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := nats.Connect(url, append(opts, nats.NoReconnect())...)
	if err != nil {
		t.Fatalf("login from the configuration (%s): %v", url, err)
	}
	defer cli.Close()
	if err := cli.Flush(); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is a log sink the test reads while carehub may still write.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// Failing to reach an external NATS neither returns nor logs the password
// in its URL.
func TestNATSConnectErrorHidesPassword(t *testing.T) {
	vars := env(t, "http://127.0.0.1:1", "care", map[string]string{"CARE_NATS_URL": "nats://user:secret@127.0.0.1:1"})
	cfg, err := config.Load(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := app.Start(ctx, cfg, zerolog.New(&logs).Level(zerolog.DebugLevel), io.Discard)
	if err == nil {
		a.Close()
		t.Fatal("started without NATS")
	}
	if strings.Contains(err.Error(), "secret") {
		t.Fatalf("start error quotes the password: %v", err)
	}
	if !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("start error lost the address: %v", err)
	}
	if strings.Contains(logs.String(), "secret") {
		t.Fatalf("log quotes the password: %s", logs.String())
	}
}

// With CARE_TLS_CERT_FILE/_KEY_FILE the API answers over HTTPS only, the
// embedded NATS server is TLS-only, and carehub runs on both.
func TestTLSForAPIAndNATS(t *testing.T) {
	in := testenv.SharedInflux(t)
	certs := testenv.GenerateCerts(t)
	vars := env(t, in.URL, in.CreateDB(t), map[string]string{
		"CARE_TLS_CERT_FILE": certs.CertFile, "CARE_TLS_KEY_FILE": certs.KeyFile,
	})
	cfg, err := config.Load(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, err := app.Start(ctx, cfg, zerolog.Nop(), io.Discard)
	if err != nil {
		t.Fatalf("start carehub: %v", err)
	}
	t.Cleanup(a.Close)

	pool := x509.NewCertPool()
	pool.AddCert(certs.CA)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	testenv.WaitFor(t, 30*time.Second, "carehub /readyz over HTTPS to answer 200", func() bool {
		resp, err := client.Get("https://" + a.HTTPAddr() + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	req, _ := http.NewRequest("GET", "https://"+a.HTTPAddr()+"/api/v1/residents", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET residents over HTTPS: %d %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	if resp, err := (&http.Client{Timeout: 3 * time.Second}).Get("http://" + a.HTTPAddr() + "/readyz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("the API answered plaintext HTTP")
		}
	}

	if !strings.HasPrefix(a.NATSURL(), "tls://") {
		t.Fatalf("NATS URL %s, want tls://", a.NATSURL())
	}
	nc, err := nats.Connect(a.NATSURL(), append(a.NATSOptions()[:1:1], nats.Secure(&tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}))...)
	if err != nil {
		t.Fatalf("NATS over TLS with the CA: %v", err)
	}
	nc.Close()
}

// carehub logs in to an external NATS server over tls:// with
// CARE_NATS_USERNAME/_PASSWORD, trusting CARE_TLS_CA_FILE; without the
// password it is refused.
func TestExternalNATSCredentialsAndCA(t *testing.T) {
	in := testenv.SharedInflux(t)
	certs := testenv.GenerateCerts(t)
	st, err := tlsx.Server(certs.CertFile, certs.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := natsx.StartEmbedded(natsx.EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0", TLS: st, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	pwFile := filepath.Join(t.TempDir(), "nats-password")
	if err := os.WriteFile(pwFile, []byte(ns.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	db := in.CreateDB(t)

	wrong := env(t, in.URL, db, map[string]string{"CARE_NATS_URL": ns.ClientURL(), "CARE_TLS_CA_FILE": certs.CAFile,
		"CARE_NATS_USERNAME": natsx.OwnUser, "CARE_NATS_PASSWORD": "not-the-password"})
	cfg, err := config.Load(func(k string) string { return wrong[k] })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if a, err := app.Start(ctx, cfg, zerolog.Nop(), io.Discard); err == nil {
		a.Close()
		t.Fatal("started with a wrong NATS password")
	} else if strings.Contains(err.Error(), "not-the-password") {
		t.Fatalf("error quotes the password: %v", err)
	}

	a := startApp(t, env(t, in.URL, db, map[string]string{"CARE_NATS_URL": ns.ClientURL(), "CARE_TLS_CA_FILE": certs.CAFile,
		"CARE_NATS_USERNAME": natsx.OwnUser, "CARE_NATS_PASSWORD_FILE": pwFile}))
	if !a.NC.IsConnected() || a.NC.ConnectedUrl() == "" || !strings.HasPrefix(a.NC.ConnectedUrl(), "tls://") {
		t.Fatalf("carehub's NATS connection: connected=%v url=%s", a.NC.IsConnected(), a.NC.ConnectedUrlRedacted())
	}
}

// Failing to reach InfluxDB neither returns nor logs the password of
// CARE_INFLUX_URL.
func TestInfluxConnectErrorHidesPassword(t *testing.T) {
	vars := env(t, "http://admin:hunter2pw@127.0.0.1:1", "care", map[string]string{"CARE_INFLUX_VERSION": "auto"})
	cfg, err := config.Load(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, err := app.Start(ctx, cfg, zerolog.New(&logs).Level(zerolog.DebugLevel), io.Discard)
	if err == nil {
		a.Close()
		t.Fatal("started without InfluxDB")
	}
	if strings.Contains(err.Error(), "hunter2pw") || strings.Contains(logs.String(), "hunter2pw") {
		t.Fatalf("InfluxDB password in the error or log: %v\n%s", err, logs.String())
	}
}
