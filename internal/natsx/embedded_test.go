package natsx_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/natsx"
	"github.com/carehub/carehub/internal/testenv"
	"github.com/carehub/carehub/internal/tlsx"
)

func startEmbedded(t *testing.T, o natsx.EmbeddedOptions) *natsx.Embedded {
	t.Helper()
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	o.Listen, o.Log = "127.0.0.1:0", zerolog.Nop()
	e, err := natsx.StartEmbedded(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Shutdown(); e.WaitForShutdown() })
	return e
}

// Without credentials nobody reaches the embedded server: not its streams,
// not the token KV bucket an attacker would write a login into. carehub's
// own secret works, is kept with mode 0600 and survives a restart.
func TestEmbeddedRequiresLogin(t *testing.T) {
	dir := t.TempDir()
	e := startEmbedded(t, natsx.EmbeddedOptions{DataDir: dir})
	if nc, err := nats.Connect(e.ClientURL(), nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("connected to the embedded NATS without credentials")
	} else if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("unauthenticated connect: %v, want an authorization error", err)
	}
	if nc, err := nats.Connect(e.ClientURL(), nats.NoReconnect(), nats.UserInfo(natsx.OwnUser, "guessed-password")); err == nil {
		nc.Close()
		t.Fatal("connected with a wrong password")
	}
	nc, err := natsx.Connect(e.ClientURL(), "test", zerolog.Nop(), e.ConnectOptions()...)
	if err != nil {
		t.Fatalf("carehub's own login: %v", err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: model.BucketTokens}); err != nil {
		t.Fatalf("carehub creates KV: %v", err)
	}

	fi, err := os.Stat(filepath.Join(dir, natsx.SecretFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file mode %04o, want 0600", fi.Mode().Perm())
	}
	again, err := natsx.OwnSecret(dir)
	if err != nil || again != e.Password {
		t.Fatalf("secret not reused across restarts: %v", err)
	}
	if err := os.Chmod(filepath.Join(dir, natsx.SecretFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := natsx.OwnSecret(dir); err == nil {
		t.Fatal("a world-readable secret file was accepted")
	}
}

// The phones user of deploy/nats/embedded-users.conf may read alerts and
// manage its own consumer, and nothing else: no events, no KV, no other
// consumer.
func TestEmbeddedPhonesPermissions(t *testing.T) {
	t.Setenv("PHONES_NATS_PASSWORD", "phones-password-0123456789")
	t.Setenv("BRIDGE119_NATS_PASSWORD", "bridge-password-0123456789")
	e := startEmbedded(t, natsx.EmbeddedOptions{UsersFile: "../../deploy/nats/embedded-users.conf"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	own, err := natsx.Connect(e.ClientURL(), "carehub", zerolog.Nop(), e.ConnectOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	ownJS, _ := jetstream.New(own)
	if err := natsx.EnsureStreams(ctx, ownJS, natsx.DefaultStreamOptions); err != nil {
		t.Fatal(err)
	}
	kv, err := ownJS.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: model.BucketTokens})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "t1", []byte("token-record")); err != nil {
		t.Fatal(err)
	}
	if _, err := ownJS.CreateOrUpdateConsumer(ctx, model.StreamAlerts, jetstream.ConsumerConfig{Durable: "carehub-stream"}); err != nil {
		t.Fatal(err)
	}
	events, err := own.SubscribeSync(model.SubjectEventsAll)
	if err != nil {
		t.Fatal(err)
	}
	own.Flush()

	violations := make(chan error, 16)
	ph, err := nats.Connect(e.ClientURL(), nats.UserInfo("phones", "phones-password-0123456789"),
		nats.CustomInboxPrefix("_INBOX_phones"), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err }))
	if err != nil {
		t.Fatalf("phones login: %v", err)
	}
	defer ph.Close()
	alerts, err := ph.SubscribeSync(model.SubjectAlertsAll)
	if err != nil {
		t.Fatal(err)
	}
	ph.Flush()
	if err := own.Publish(model.AlertSubject("r1", "a1"), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := alerts.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("phones did not receive an alert: %v", err)
	}

	// A forged SOS event is refused and never delivered.
	if err := ph.Publish(model.EventSubject("r1", "d1")+".sos", []byte(`{"type":"sos"}`)); err != nil {
		t.Fatal(err)
	}
	ph.Flush()
	select {
	case err := <-violations:
		if !errors.Is(err, nats.ErrPermissionViolation) && !strings.Contains(err.Error(), "Permissions Violation") {
			t.Fatalf("publish error %v, want a permissions violation", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("publishing an event as phones raised no permissions violation")
	}
	if m, err := events.NextMsg(300 * time.Millisecond); err == nil {
		t.Fatalf("forged event delivered: %s", m.Subject)
	}

	phJS, _ := jetstream.New(ph)
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	defer cancelShort()
	if k, err := phJS.KeyValue(short, model.BucketTokens); err == nil {
		if e, err := k.Get(short, "t1"); err == nil {
			t.Fatalf("phones read a token record: %q", e.Value())
		}
	}
	// Its own consumer works; carehub's may be neither read nor deleted.
	if _, err := phJS.CreateOrUpdateConsumer(ctx, model.StreamAlerts, jetstream.ConsumerConfig{Durable: "phones"}); err != nil {
		t.Fatalf("phones creates its own consumer: %v", err)
	}
	short2, cancel2 := context.WithTimeout(ctx, 2*time.Second)
	defer cancel2()
	if err := phJS.DeleteConsumer(short2, model.StreamAlerts, "carehub-stream"); err == nil {
		t.Fatal("phones deleted carehub's consumer")
	}
	if _, err := ownJS.Consumer(ctx, model.StreamAlerts, "carehub-stream"); err != nil {
		t.Fatalf("carehub's consumer is gone: %v", err)
	}
	short3, cancel3 := context.WithTimeout(ctx, 2*time.Second)
	defer cancel3()
	if _, err := phJS.CreateOrUpdateConsumer(short3, model.StreamAlerts, jetstream.ConsumerConfig{Durable: "someone-else"}); err == nil {
		t.Fatal("phones created a consumer under another name")
	}
}

// The users file may not redefine carehub's own user or grant access by
// other means than users.
func TestLoadUsersRefuses(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"own user": `authorization { users: [ { user: carehub, password: x0123456789 } ] }`,
		"token":    `authorization { token: abcdefabcdef }`,
		"no pass":  `authorization { users: [ { user: phones } ] }`,
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".conf")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := natsx.LoadUsers(p); err == nil {
			t.Errorf("%s: users file accepted", name)
		}
	}
}

// With CARE_TLS_* the embedded server is TLS-only: a plaintext client is
// refused, a client trusting the CA gets in, and carehub's own connection
// (pinned to the certificate) works.
func TestEmbeddedTLS(t *testing.T) {
	certs := testenv.GenerateCerts(t)
	st, err := tlsx.Server(certs.CertFile, certs.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	e := startEmbedded(t, natsx.EmbeddedOptions{TLS: st})
	if !strings.HasPrefix(e.ClientURL(), "tls://") {
		t.Fatalf("client URL %s, want tls://", e.ClientURL())
	}
	plain := "nats://" + strings.TrimPrefix(e.ClientURL(), "tls://")
	if nc, err := nats.Connect(plain, nats.NoReconnect(), nats.UserInfo(natsx.OwnUser, e.Password), nats.Timeout(3*time.Second),
		nats.SetCustomDialer(plainOnly{})); err == nil {
		nc.Close()
		t.Fatal("plaintext client connected to the TLS-only server")
	}
	nc, err := natsx.Connect(e.ClientURL(), "carehub", zerolog.Nop(), e.ConnectOptions()...)
	if err != nil {
		t.Fatalf("carehub over TLS: %v", err)
	}
	nc.Close()
	pool := x509.NewCertPool()
	pool.AddCert(certs.CA)
	nc, err = nats.Connect(e.ClientURL(), nats.UserInfo(natsx.OwnUser, e.Password), nats.Secure(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatalf("client trusting the CA: %v", err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if !nc.TLSRequired() {
		t.Fatal("server does not require TLS")
	}
	nc.Close()
}

// With an encryption key, JetStream's files never hold a message in the
// clear.
func TestEmbeddedEncryptedStore(t *testing.T) {
	const marker = "RESIDENT-HEART-RATE-PLAINTEXT-MARKER"
	for _, tc := range []struct {
		name      string
		key       string
		wantFound bool
	}{{"plain", "", true}, {"encrypted", strings.Repeat("k", 16) + "0123456789abcdef", false}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			e := startEmbedded(t, natsx.EmbeddedOptions{DataDir: dir, EncryptionKey: tc.key})
			nc, err := natsx.Connect(e.ClientURL(), "test", zerolog.Nop(), e.ConnectOptions()...)
			if err != nil {
				t.Fatal(err)
			}
			js, _ := jetstream.New(nc)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := natsx.EnsureStreams(ctx, js, natsx.DefaultStreamOptions); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 20; i++ {
				if _, err := js.Publish(ctx, model.ReadingSubject("r1", "d1")+".heart_rate", []byte(marker)); err != nil {
					t.Fatal(err)
				}
			}
			nc.Close()
			e.Shutdown()
			e.WaitForShutdown()
			found := false
			files := 0
			_ = filepath.WalkDir(filepath.Join(dir, "nats"), func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				files++
				b, err := os.ReadFile(p)
				if err == nil && bytes.Contains(b, []byte(marker)) {
					found = true
				}
				return nil
			})
			if files == 0 {
				t.Fatal("no store files written")
			}
			if found != tc.wantFound {
				t.Fatalf("plaintext marker found in the store: %v, want %v", found, tc.wantFound)
			}
		})
	}
}

// A connect error never quotes the password of the URL it failed to reach.
func TestConnectErrorRedacted(t *testing.T) {
	_, err := natsx.Connect("nats://user:secret@127.0.0.1:1", "test", zerolog.Nop(), nats.NoReconnect(), nats.Timeout(time.Second))
	if err == nil {
		t.Fatal("connected to port 1")
	}
	if strings.Contains(err.Error(), "secret") {
		t.Fatalf("connect error quotes the password: %v", err)
	}
}

// plainOnly dials TCP without TLS, so the client cannot upgrade.
type plainOnly struct{}

func (plainOnly) Dial(network, address string) (net.Conn, error) { return net.Dial(network, address) }
