package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/natsx"
)

// The nats-token-forgery probe attacks carehub's embedded NATS server as
// anyone on the network could: without credentials, and with guessed ones,
// it tries to write a token record into the token KV bucket (a login as
// admin) and to publish a forged SOS event (an escalation to 119). It holds
// when every login is refused, or every write is; it also checks that
// carehub's generated secret is not readable by other local users.
func init() {
	registerProbe("nats-token-forgery", func(ctx context.Context, t probeTarget) probeResult {
		logins := []struct {
			name string
			opts []nats.Option
		}{
			{"no credentials", nil},
			{"user carehub, password carehub", []nats.Option{nats.UserInfo(natsx.OwnUser, "carehub")}},
			{"token carehub", []nats.Option{nats.Token("carehub")}},
		}
		for _, l := range logins {
			if hole := forgeOverNATS(ctx, "nats://"+t.NATSAddr, l.opts); hole != "" {
				return probeResult{Pass: false, Detail: l.name + ": " + hole}
			}
		}
		fi, err := os.Stat(filepath.Join(t.DataDir, natsx.SecretFile))
		if err != nil {
			return probeResult{Pass: false, Detail: "carehub's NATS secret file: " + err.Error()}
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return probeResult{Pass: false, Detail: fmt.Sprintf("carehub's NATS secret is readable by others (mode %04o)", fi.Mode().Perm())}
		}
		return probeResult{Pass: true, Detail: fmt.Sprintf("%d logins refused; secret file mode %04o", len(logins), fi.Mode().Perm())}
	})
}

// forgeOverNATS logs in with opts and tries the two forgeries; it returns
// what got through, or "" when carehub held.
func forgeOverNATS(ctx context.Context, url string, opts []nats.Option) string {
	nc, err := nats.Connect(url, append([]nats.Option{nats.NoReconnect(), nats.Timeout(3 * time.Second)}, opts...)...)
	if err != nil {
		return "" // refused at login: held
	}
	defer nc.Close()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		return ""
	}
	holes := ""
	if kv, err := js.KeyValue(wctx, model.BucketTokens); err == nil {
		if _, err := kv.Put(wctx, "probe-forged-token", []byte(`{"user":"admin","role":"admin"}`)); err == nil {
			holes += "wrote a token record into " + model.BucketTokens + "; "
			_ = kv.Delete(wctx, "probe-forged-token")
		}
	}
	if _, err := js.Publish(wctx, model.EventSubject("probe-resident", "probe-device"), []byte(`{"type":"sos"}`)); err == nil {
		holes += "stored a forged SOS event; "
	}
	if holes == "" {
		return ""
	}
	return "logged in and " + holes
}
