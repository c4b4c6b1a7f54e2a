package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaults(t *testing.T) {
	c, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != DefaultHTTPAddr || c.MQTTListen != DefaultMQTTListen || c.NATSListen != DefaultNATSListen {
		t.Errorf("listen defaults %s %s %s", c.HTTPAddr, c.MQTTListen, c.NATSListen)
	}
	if !c.EmbeddedMQTT() || !c.EmbeddedNATS() {
		t.Error("with no URLs carehub must run its embedded broker and NATS")
	}
	if c.Timezone.String() != "Asia/Seoul" || c.InfluxBucket != "care" || c.RawRetention != 90*24*time.Hour {
		t.Errorf("defaults: tz %s bucket %s retention %s", c.Timezone, c.InfluxBucket, c.RawRetention)
	}
}

func TestSecretsFromFiles(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "token")
	if err := os.WriteFile(f, []byte("  s3cret-influx-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(env(map[string]string{"CARE_INFLUX_TOKEN_FILE": f, "CARE_ADMIN_TOKEN": "0123456789abcdef0123"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.InfluxToken != "s3cret-influx-token" {
		t.Errorf("token from file = %q", c.InfluxToken)
	}
	_, err = Load(env(map[string]string{"CARE_MQTT_PASSWORD_FILE": filepath.Join(dir, "missing")}))
	if err == nil || !strings.Contains(err.Error(), "CARE_MQTT_PASSWORD_FILE") {
		t.Errorf("unreadable secret file: err = %v", err)
	}
}

func TestInvalidSettingsSayHowToFix(t *testing.T) {
	tests := map[string]struct {
		env  map[string]string
		want string
	}{
		"retention unit":   {map[string]string{"CARE_RAW_RETENTION": "ninety days"}, "write it like 90d"},
		"retention short":  {map[string]string{"CARE_RAW_RETENTION": "10m"}, "at least 1h"},
		"influx url":       {map[string]string{"CARE_INFLUX_URL": "localhost:8086"}, "http://127.0.0.1:8086"},
		"nats url":         {map[string]string{"CARE_NATS_URL": "127.0.0.1:4222"}, "nats://127.0.0.1:4222"},
		"influx version":   {map[string]string{"CARE_INFLUX_VERSION": "3"}, "use auto, 1"},
		"listen address":   {map[string]string{"CARE_HTTP_ADDR": "8780"}, "host:port"},
		"share group":      {map[string]string{"CARE_MQTT_SHARE_GROUP": "a/b"}, "without / + #"},
		"connections":      {map[string]string{"CARE_MQTT_CONNECTIONS": "0"}, "1 to 64"},
		"read wait":        {map[string]string{"CARE_MQTT_READ_WAIT": "1s"}, "0 (off) to 50ms"},
		"adaptive procs":   {map[string]string{"CARE_ADAPTIVE_PROCS": "maybe"}, "use true or false"},
		"batch size":       {map[string]string{"CARE_BATCH_SIZE": "lots"}, "whole number"},
		"trusted proxy":    {map[string]string{"CARE_TRUSTED_PROXIES": "10.0.0.5,proxy.local"}, "neither an IP address nor a CIDR"},
		"audit too short":  {map[string]string{"CARE_AUDIT_RETENTION": "365d"}, "at least 2 years"},
		"buffer too short": {map[string]string{"CARE_BUFFER_AGE": "10m"}, "at least 1h"},
		"memory unit":      {map[string]string{"CARE_MEMORY_LIMIT": "160MB"}, "write it like 160MiB"},
		"provision kind":   {map[string]string{"CARE_MQTT_PROVISION": "passwd"}, "use none, or dynsec"},
		"dynsec embedded":  {map[string]string{"CARE_MQTT_PROVISION": "dynsec"}, "set CARE_MQTT_URL"},
		"dynsec no control login": {map[string]string{"CARE_MQTT_PROVISION": "dynsec", "CARE_MQTT_URL": "tcp://127.0.0.1:1883",
			"CARE_MQTT_USERNAME": "carehub", "CARE_MQTT_PASSWORD": "pw"}, "set CARE_MQTT_DYNSEC_USERNAME"},
		"dynsec same login": {map[string]string{"CARE_MQTT_PROVISION": "dynsec", "CARE_MQTT_URL": "tcp://127.0.0.1:1883",
			"CARE_MQTT_USERNAME": "carehub", "CARE_MQTT_PASSWORD": "pw", "CARE_MQTT_DYNSEC_USERNAME": "carehub", "CARE_MQTT_DYNSEC_PASSWORD": "pw"}, "must be different users"},
		"dynsec user without dynsec": {map[string]string{"CARE_MQTT_DYNSEC_USERNAME": "admin"}, "CARE_MQTT_PROVISION is not dynsec"},
		"memory too small":           {map[string]string{"CARE_MEMORY_LIMIT": "16MiB"}, "64MiB or more"},
		"every error once":           {map[string]string{"CARE_LOG_LEVEL": "loud", "CARE_LOG_FORMAT": "xml"}, "CARE_LOG_FORMAT"},
		"streams per user":           {map[string]string{"CARE_MAX_STREAMS_PER_USER": "0"}, "1 to 256 alert streams"},
		"replicas count":             {map[string]string{"CARE_NATS_REPLICAS": "2", "CARE_NATS_URL": "nats://a:4222"}, "or 3 on a NATS cluster"},
		"replicas embedded":          {map[string]string{"CARE_NATS_REPLICAS": "3"}, "set CARE_NATS_URL to the cluster's servers"},
		"nats url in a list":         {map[string]string{"CARE_NATS_URL": "nats://a:4222,b:4222"}, "comma-separated list"},
		"mqtt url":                   {map[string]string{"CARE_MQTT_URL": "127.0.0.1:1883"}, "tcp://127.0.0.1:1883"},
		"mqtt url in a list":         {map[string]string{"CARE_MQTT_URL": "tcp://a:1883,b:1883"}, "comma-separated list"},
		"mqtt broker twice":          {map[string]string{"CARE_MQTT_URL": "tcp://a:1883, mqtt://a:1883"}, "names the broker a:1883 twice"},
		"mqtt url only commas":       {map[string]string{"CARE_MQTT_URL": " , "}, "names no broker"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Load(env(tt.env))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	_, err := Load(env(map[string]string{"CARE_LOG_LEVEL": "loud", "CARE_LOG_FORMAT": "xml"}))
	if err == nil || !strings.Contains(err.Error(), "CARE_LOG_LEVEL") {
		t.Errorf("all problems should be listed at once: %v", err)
	}
}

// TestMQTTURLs: CARE_MQTT_URL is one broker or a comma-separated list of
// them, in order; a password in a rejected entry is not repeated.
func TestMQTTURLs(t *testing.T) {
	c, err := Load(env(map[string]string{"CARE_MQTT_URL": "tcp://a:1883, ssl://b:8883 ,"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.MQTTURLs(); len(got) != 2 || got[0] != "tcp://a:1883" || got[1] != "ssl://b:8883" {
		t.Errorf("MQTTURLs = %q", got)
	}
	if c.EmbeddedMQTT() {
		t.Error("a broker list counts as the embedded broker")
	}
	one, err := Load(env(map[string]string{"CARE_MQTT_URL": "tcp://a:1883"}))
	if err != nil || len(one.MQTTURLs()) != 1 {
		t.Errorf("one broker: %q, %v", one.MQTTURLs(), err)
	}
	if d, err := Load(env(nil)); err != nil || d.MQTTURLs() != nil || !d.EmbeddedMQTT() {
		t.Errorf("unset: %q, %v", d.MQTTURLs(), err)
	}
	_, err = Load(env(map[string]string{"CARE_MQTT_URL": "tcp://a:1883,ftp://u:s3cret@b:21"}))
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("err = %v, want a rejection without the password", err)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"90d": 90 * 24 * time.Hour, "2w": 14 * 24 * time.Hour, "250ms": 250 * time.Millisecond, "1h30m": 90 * time.Minute} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseDuration("-3d"); err == nil {
		t.Error("a negative day count parsed")
	}
}

func TestAdaptiveProcs(t *testing.T) {
	for in, want := range map[string]bool{"": false, "true": true, "false": false, "1": true} {
		c, err := Load(env(map[string]string{"CARE_ADAPTIVE_PROCS": in}))
		if err != nil || c.AdaptiveProcs != want {
			t.Errorf("CARE_ADAPTIVE_PROCS=%q: %v, %v; want %v", in, c.AdaptiveProcs, err, want)
		}
	}
}

func TestMemoryLimit(t *testing.T) {
	for in, want := range map[string]int64{"": DefaultMemoryLimit, "off": 0, "0": 0, "256MiB": 256 << 20, "1GiB": 1 << 30, "134217728": 128 << 20, " 96 MiB ": 96 << 20} {
		c, err := Load(env(map[string]string{"CARE_MEMORY_LIMIT": in}))
		if err != nil || c.MemoryLimit != want {
			t.Errorf("CARE_MEMORY_LIMIT=%q: %d, %v; want %d", in, c.MemoryLimit, err, want)
		}
	}
	for _, bad := range []string{"-1MiB", "1.5GiB", "lots", "9999999999GiB"} {
		if n, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", bad, n)
		}
	}
}

// A cluster is given as a list of servers; 3 replicas go with it.
func TestNATSClusterSettings(t *testing.T) {
	c, err := Load(env(map[string]string{"CARE_NATS_URL": "tls://a:4222, tls://b:4222,tls://c:4222", "CARE_NATS_REPLICAS": "3"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.NATSURLs(); len(got) != 3 || got[1] != "tls://b:4222" {
		t.Errorf("NATSURLs = %q", got)
	}
	if got := c.StreamOptions().Replicas; got != 3 {
		t.Errorf("streams get %d replicas, want 3", got)
	}
	d, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if d.NATSReplicas != 1 || d.StreamOptions().Replicas != 1 {
		t.Errorf("default replicas %d/%d, want 1", d.NATSReplicas, d.StreamOptions().Replicas)
	}
}
