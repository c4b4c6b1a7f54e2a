package config

import (
	"strings"
	"testing"

	"github.com/carehub/carehub/internal/testenv"
)

// A listener beyond loopback without TLS is refused unless the operator
// says CARE_ALLOW_PLAINTEXT=true; with a certificate, HTTP and NATS may
// listen on the network, MQTT's plaintext listener still may not.
func TestPlaintextListenersRefused(t *testing.T) {
	certs := testenv.GenerateCerts(t)
	withTLS := map[string]string{"CARE_TLS_CERT_FILE": certs.CertFile, "CARE_TLS_KEY_FILE": certs.KeyFile}
	for _, tc := range []struct {
		name    string
		vars    map[string]string
		wantErr string // "" = valid
	}{
		{"defaults", nil, ""},
		{"http all interfaces", map[string]string{"CARE_HTTP_ADDR": ":8780"}, "CARE_HTTP_ADDR"},
		{"http routable", map[string]string{"CARE_HTTP_ADDR": "10.0.0.5:8780"}, "CARE_HTTP_ADDR"},
		{"nats all interfaces", map[string]string{"CARE_NATS_LISTEN": "0.0.0.0:4222"}, "CARE_NATS_LISTEN"},
		{"mqtt all interfaces", map[string]string{"CARE_MQTT_LISTEN": ":1883"}, "CARE_MQTT_LISTEN"},
		{"localhost", map[string]string{"CARE_HTTP_ADDR": "localhost:8780", "CARE_NATS_LISTEN": "[::1]:4222"}, ""},
		{"allowed explicitly", map[string]string{"CARE_HTTP_ADDR": ":8780", "CARE_NATS_LISTEN": ":4222", "CARE_MQTT_LISTEN": ":1883", "CARE_ALLOW_PLAINTEXT": "true"}, ""},
		{"nats listen ignored with external nats", map[string]string{"CARE_NATS_URL": "nats://10.0.0.9:4222", "CARE_NATS_LISTEN": ":4222"}, ""},
		{"tls http and nats", merge(withTLS, map[string]string{"CARE_HTTP_ADDR": ":8443", "CARE_NATS_LISTEN": ":4222"}), ""},
		{"tls does not cover mqtt plaintext", merge(withTLS, map[string]string{"CARE_MQTT_LISTEN": ":1883"}), "CARE_MQTT_LISTEN"},
		{"mqtt tls listener", merge(withTLS, map[string]string{"CARE_MQTT_TLS_LISTEN": ":8883"}), ""},
		{"mqtt tls listener needs cert", map[string]string{"CARE_MQTT_TLS_LISTEN": ":8883"}, "CARE_MQTT_TLS_LISTEN needs a certificate"},
		{"cert without key", map[string]string{"CARE_TLS_CERT_FILE": certs.CertFile}, "go together"},
		{"key does not match", map[string]string{"CARE_TLS_CERT_FILE": certs.CertFile, "CARE_TLS_KEY_FILE": certs.CAFile}, "CARE_TLS_CERT_FILE/CARE_TLS_KEY_FILE"},
		{"ca file", map[string]string{"CARE_TLS_CA_FILE": certs.CAFile}, ""},
		{"ca not pem", map[string]string{"CARE_TLS_CA_FILE": certs.KeyFile}, "CARE_TLS_CA_FILE"},
		{"pprof routable", map[string]string{"CARE_PPROF_ADDR": ":6060"}, "CARE_PPROF_ADDR"},
		{"pprof loopback", map[string]string{"CARE_PPROF_ADDR": "127.0.0.1:6060"}, ""},
		{"plaintext flag typo", map[string]string{"CARE_ALLOW_PLAINTEXT": "ja"}, "CARE_ALLOW_PLAINTEXT"},
		{"nats password without user", map[string]string{"CARE_NATS_URL": "nats://10.0.0.9:4222", "CARE_NATS_PASSWORD": "pw"}, "without CARE_NATS_USERNAME"},
		{"nats creds and password", map[string]string{"CARE_NATS_URL": "nats://10.0.0.9:4222", "CARE_NATS_USERNAME": "u", "CARE_NATS_PASSWORD": "pw", "CARE_NATS_CREDS_FILE": certs.CAFile}, "keep one"},
		{"nats user for embedded", map[string]string{"CARE_NATS_USERNAME": "u"}, "set CARE_NATS_URL too"},
		{"nats user external", map[string]string{"CARE_NATS_URL": "tls://10.0.0.9:4222", "CARE_NATS_USERNAME": "carehub", "CARE_NATS_PASSWORD": "pw"}, ""},
		{"short encryption key", map[string]string{"CARE_NATS_ENCRYPTION_KEY": "short"}, "CARE_NATS_ENCRYPTION_KEY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(env(tc.vars))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("accepted, want an error naming %s", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("error %v, want it to name %s", err, tc.wantErr)
			}
		})
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:1": true, "127.1.2.3:1": true, "[::1]:1": true, "localhost:1": true,
		":1": false, "0.0.0.0:1": false, "[::]:1": false, "10.0.0.1:1": false, "example.com:1": false, "nonsense": false,
	} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

func merge(a, b map[string]string) map[string]string {
	m := map[string]string{}
	for k, v := range a {
		m[k] = v
	}
	for k, v := range b {
		m[k] = v
	}
	return m
}
