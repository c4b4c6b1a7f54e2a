// Package deploy_test checks the shipped deployment files against carehub
// itself, since no container engine or cluster runs where carehub is
// developed: every file parses, every CARE_* setting named in them is one
// carehub reads, images and ports agree across Dockerfile, compose and
// Kubernetes, probes point at carehub's health endpoints, connections
// between hosts use TLS, and the systemd units carry their hardening.
package deploy_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

var careVar = regexp.MustCompile(`\bCARE_[A-Z0-9_]+\b`)

// streams are JetStream stream names (contract §3), not settings.
var streams = []string{"CARE_READINGS", "CARE_EVENTS", "CARE_STATUS", "CARE_ALERTS", "CARE_DEADLETTER", "CARE_AUDIT"}

// settings returns the CARE_* names internal/config reads, with the _FILE
// variant of every secret.
func settings(t *testing.T) map[string]bool {
	t.Helper()
	src, err := os.ReadFile("../internal/config/config.go")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`p\.(\w+)\("(CARE_[A-Z0-9_]+)"`).FindAllStringSubmatch(string(src), -1) {
		names[m[2]] = true
		if m[1] == "secret" {
			names[m[2]+"_FILE"] = true
		}
	}
	if len(names) < 40 || !names["CARE_HTTP_ADDR"] || !names["CARE_NATS_PASSWORD_FILE"] {
		t.Fatalf("could not read carehub's settings from internal/config (found %d)", len(names))
	}
	return names
}

// docs parses every YAML document of a file.
func docs(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if d != nil {
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s: no YAML documents", path)
	}
	return out
}

// get walks a path of map keys and list indexes ("spec.template.spec").
func get(v any, path string) any {
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func str(v any) string { s, _ := v.(string); return s }

func list(v any) []any { l, _ := v.([]any); return l }

func deployFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, dir := range []string{"systemd", "compose", "kubernetes", "container"} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	return files
}

func TestEveryCareSettingExists(t *testing.T) {
	known := settings(t)
	seen := 0
	for _, f := range deployFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range careVar.FindAllString(string(b), -1) {
			if slices.Contains(streams, name) {
				continue
			}
			seen++
			if !known[name] {
				t.Errorf("%s names %s, which carehub does not read", f, name)
			}
		}
	}
	if seen < 40 {
		t.Fatalf("only %d CARE_* settings found in the deployment files", seen)
	}
}

func TestYAMLParses(t *testing.T) {
	for _, f := range deployFiles(t) {
		if strings.HasSuffix(f, ".yaml") {
			docs(t, f)
		}
	}
}

// image returns the image carehub's Dockerfile says it is published as.
func dockerImage(t *testing.T) (image string, ports []string) {
	t.Helper()
	b, err := os.ReadFile("container/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`-t (\S+) `).FindSubmatch(b)
	if m == nil {
		t.Fatal("Dockerfile does not name its image (docker build -t ...)")
	}
	e := regexp.MustCompile(`(?m)^EXPOSE (.+)$`).FindSubmatch(b)
	if e == nil {
		t.Fatal("Dockerfile exposes no port")
	}
	return string(m[1]), strings.Fields(string(e[1]))
}

func port(t *testing.T, hostport string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatalf("%q: %v", hostport, err)
	}
	return p
}

func TestComposeConsistent(t *testing.T) {
	image, exposed := dockerImage(t)
	c := docs(t, "compose/compose.yaml")[0]
	svc, _ := get(c, "services").(map[string]any)
	carehub := svc["carehub"]
	if got := str(get(carehub, "image")); got != image {
		t.Errorf("compose runs carehub image %q, the Dockerfile builds %q", got, image)
	}
	if got := str(get(carehub, "build.dockerfile")); got != "deploy/container/Dockerfile" {
		t.Errorf("compose builds carehub from %q", got)
	}
	env, _ := get(carehub, "environment").(map[string]any)
	if str(env["CARE_INSTANCE_ID"]) == "" {
		t.Error("compose's carehub needs a fixed CARE_INSTANCE_ID: a recreated container has a new host name, and its persistent MQTT sessions would be orphaned")
	}
	httpPort := port(t, str(env["CARE_HTTP_ADDR"]))
	if !slices.Contains(exposed, httpPort) {
		t.Errorf("CARE_HTTP_ADDR port %s is not exposed by the Dockerfile (%v)", httpPort, exposed)
	}
	// every service shares the namespace of "net", which publishes the ports
	var published []string
	for _, p := range list(get(svc["net"], "ports")) {
		published = append(published, strings.SplitN(str(p), ":", 2)[1])
	}
	if !slices.Contains(published, httpPort) || !slices.Contains(published, "8883") {
		t.Errorf("compose publishes %v; want carehub's %s and Mosquitto's TLS 8883", published, httpPort)
	}
	for name, s := range svc {
		if name != "net" && str(get(s, "network_mode")) != "service:net" {
			t.Errorf("compose service %s is not in the shared namespace", name)
		}
		if name != "net" && get(s, "ports") != nil {
			t.Errorf("compose service %s publishes ports of its own", name)
		}
	}
	// every secret carehub reads from a file is mounted
	secrets := map[string]bool{}
	for _, s := range list(get(carehub, "secrets")) {
		secrets[str(s)] = true
	}
	for k, v := range env {
		if strings.HasSuffix(k, "_FILE") && strings.HasPrefix(str(v), "/run/secrets/") {
			if name := strings.TrimPrefix(str(v), "/run/secrets/"); !secrets[name] {
				t.Errorf("%s=%s but secret %s is not given to carehub", k, v, name)
			}
		}
	}
	if env["CARE_TLS_CERT_FILE"] == nil || env["CARE_ALLOW_PLAINTEXT"] != nil {
		t.Error("compose's carehub must serve TLS and not allow plaintext listeners")
	}
	// the NATS users of deploy/nats/nats.conf get their passwords
	natsConf, err := os.ReadFile("nats/nats.conf")
	if err != nil {
		t.Fatal(err)
	}
	entry := strings.Join(func() []string {
		var s []string
		for _, x := range list(get(svc["nats"], "entrypoint")) {
			s = append(s, str(x))
		}
		return s
	}(), " ")
	for _, m := range regexp.MustCompile(`password: \$([A-Z0-9_]+)`).FindAllStringSubmatch(string(natsConf), -1) {
		if !strings.Contains(entry, m[1]+"=") {
			t.Errorf("nats.conf needs $%s; compose's nats service does not set it", m[1])
		}
	}
}

func k8sObjects(t *testing.T) map[string]map[string]any {
	t.Helper()
	objs := map[string]map[string]any{}
	for _, f := range []string{"kubernetes/carehub.yaml", "kubernetes/mosquitto.yaml"} {
		for _, d := range docs(t, f) {
			kind, name := str(d["kind"]), str(get(d, "metadata.name"))
			if kind == "" || name == "" || str(d["apiVersion"]) == "" {
				t.Fatalf("%s: a document without apiVersion, kind or name", f)
			}
			objs[kind+"/"+name] = d
		}
	}
	return objs
}

func TestKubernetesConsistent(t *testing.T) {
	image, exposed := dockerImage(t)
	objs := k8sObjects(t)
	dep := objs["StatefulSet/carehub"]
	cm := objs["ConfigMap/carehub-config"]
	if dep == nil || cm == nil || objs["Service/carehub"] == nil || objs["StatefulSet/mosquitto"] == nil {
		t.Fatalf("missing objects; have %v", slices.Sorted(func(yield func(string) bool) {
			for k := range objs {
				if !yield(k) {
					return
				}
			}
		}))
	}
	ctr := list(get(dep, "spec.template.spec.containers"))[0]
	if got := str(get(ctr, "image")); got != image {
		t.Errorf("StatefulSet runs %q, the Dockerfile builds %q", got, image)
	}
	// Each pod's instance id is its stable name: its persistent MQTT
	// sessions survive a restart instead of being orphaned on every rollout.
	stable := false
	for _, e := range list(get(ctr, "env")) {
		if str(get(e, "name")) == "CARE_INSTANCE_ID" && str(get(e, "valueFrom.fieldRef.fieldPath")) == "metadata.name" {
			stable = true
		}
	}
	if !stable || str(get(dep, "spec.serviceName")) == "" || objs["Service/"+str(get(dep, "spec.serviceName"))] == nil {
		t.Error("carehub's pods need stable names as CARE_INSTANCE_ID: a StatefulSet with its headless Service and the env from metadata.name")
	}
	data, _ := get(cm, "data").(map[string]any)
	httpPort := port(t, str(data["CARE_HTTP_ADDR"]))
	var cport string
	for _, p := range list(get(ctr, "ports")) {
		if str(get(p, "name")) == "https" {
			cport = strings.TrimSpace(strings.Trim(yamlScalar(get(p, "containerPort")), `"`))
		}
	}
	if cport != httpPort || !slices.Contains(exposed, cport) {
		t.Errorf("containerPort %s, CARE_HTTP_ADDR port %s, Dockerfile exposes %v", cport, httpPort, exposed)
	}
	for probe, path := range map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz"} {
		if got := str(get(ctr, probe+".httpGet.path")); got != path {
			t.Errorf("%s path %q, want %s", probe, got, path)
		}
		if got := str(get(ctr, probe+".httpGet.scheme")); got != "HTTPS" {
			t.Errorf("%s scheme %q: carehub serves TLS", probe, got)
		}
	}
	if get(ctr, "resources.requests.cpu") == nil || get(ctr, "resources.limits.memory") == nil {
		t.Error("carehub's container has no CPU request or memory limit")
	}
	if get(ctr, "securityContext.readOnlyRootFilesystem") != true || get(ctr, "securityContext.allowPrivilegeEscalation") != false {
		t.Error("carehub's container must run read-only without privilege escalation")
	}
	// secrets are files from mounted Secrets, never literal values
	mounts := map[string]bool{}
	for _, m := range list(get(ctr, "volumeMounts")) {
		mounts[str(get(m, "mountPath"))] = true
	}
	for k, v := range data {
		if strings.HasSuffix(k, "_FILE") {
			if !mounts[filepath.Dir(str(v))] {
				t.Errorf("%s=%v is not under a mounted volume", k, v)
			}
		}
		for _, secret := range []string{"CARE_ADMIN_TOKEN", "CARE_MQTT_PASSWORD", "CARE_NATS_PASSWORD", "CARE_INFLUX_TOKEN", "CARE_MQTT_DYNSEC_PASSWORD"} {
			if k == secret {
				t.Errorf("%s is a literal in the ConfigMap; use %s_FILE", k, k)
			}
		}
	}
	// TLS between pods
	natsTLS := true
	for _, u := range strings.Split(str(data["CARE_NATS_URL"]), ",") {
		natsTLS = natsTLS && strings.HasPrefix(u, "tls://")
	}
	if !natsTLS || !strings.HasPrefix(str(data["CARE_MQTT_URL"]), "ssl://") {
		t.Errorf("carehub reaches NATS at %v and MQTT at %v: want TLS", data["CARE_NATS_URL"], data["CARE_MQTT_URL"])
	}
	mqttPort := port(t, strings.TrimPrefix(str(data["CARE_MQTT_URL"]), "ssl://"))
	mcm := objs["ConfigMap/mosquitto-config"]
	conf := str(get(mcm, "data.mosquitto.conf"))
	if conf == "" {
		// the key has a dot: look it up directly
		d, _ := get(mcm, "data").(map[string]any)
		conf = str(d["mosquitto.conf"])
	}
	listeners := parseListeners(conf)
	for _, p := range []string{"8883", mqttPort} {
		if l, ok := listeners[p]; !ok || !l {
			t.Errorf("Mosquitto listener %s missing or without TLS (listeners: %v)", p, listeners)
		}
	}
	// the ACL is the shipped one
	d, _ := get(mcm, "data").(map[string]any)
	acl, err := os.ReadFile("mosquitto/carehub.acl")
	if err != nil {
		t.Fatal(err)
	}
	if str(d["carehub.acl"]) != string(acl) {
		t.Error("the ACL in kubernetes/mosquitto.yaml differs from deploy/mosquitto/carehub.acl")
	}
	// NATS: a replicated JetStream cluster with TLS
	v := docs(t, "kubernetes/nats-values.yaml")[0]
	if yamlScalar(get(v, "config.cluster.replicas")) != "3" || get(v, "config.cluster.tls.enabled") != true || get(v, "config.nats.tls.enabled") != true || get(v, "config.jetstream.enabled") != true {
		t.Error("nats-values.yaml must give a 3-node JetStream cluster with TLS for clients and routes")
	}
	if str(data["CARE_NATS_REPLICAS"]) != yamlScalar(get(v, "config.cluster.replicas")) {
		t.Errorf("CARE_NATS_REPLICAS=%v on a cluster of %s", data["CARE_NATS_REPLICAS"], yamlScalar(get(v, "config.cluster.replicas")))
	}
}

// parseListeners maps each Mosquitto listener port to whether it has TLS.
func parseListeners(conf string) map[string]bool {
	out := map[string]bool{}
	cur := ""
	sc := bufio.NewScanner(strings.NewReader(conf))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 2 && f[0] == "listener":
			cur = f[1]
			out[cur] = false
		case len(f) >= 2 && f[0] == "certfile" && cur != "":
			out[cur] = true
		}
	}
	return out
}

func yamlScalar(v any) string {
	b, _ := yaml.Marshal(v)
	return strings.TrimSpace(string(b))
}

func TestSystemdUnitsHardened(t *testing.T) {
	required := []string{"NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "RestrictNamespaces=yes"}
	units, _ := filepath.Glob("systemd/*.service")
	if len(units) != 4 {
		t.Fatalf("want units for carehub, InfluxDB, Mosquitto and NATS; have %v", units)
	}
	for _, u := range units {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		sections := map[string][]string{}
		cur := ""
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			switch {
			case line == "" || strings.HasPrefix(line, "#"):
			case strings.HasPrefix(line, "["):
				cur = line
			case cur == "":
				t.Errorf("%s: %q outside a section", u, line)
			default:
				if !strings.Contains(line, "=") {
					t.Errorf("%s: %q is not key=value", u, line)
				}
				sections[cur] = append(sections[cur], line)
			}
		}
		for _, s := range []string{"[Unit]", "[Service]", "[Install]"} {
			if len(sections[s]) == 0 {
				t.Errorf("%s: no %s section", u, s)
			}
		}
		for _, r := range required {
			if !slices.Contains(sections["[Service]"], r) {
				t.Errorf("%s: missing %s", u, r)
			}
		}
		if !slices.ContainsFunc(sections["[Service]"], func(s string) bool { return strings.HasPrefix(s, "ExecStart=/") }) {
			t.Errorf("%s: no absolute ExecStart", u)
		}
	}
	env, err := os.ReadFile("systemd/carehub.env")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(env), "\n") {
		for _, secret := range []string{"CARE_ADMIN_TOKEN=", "CARE_MQTT_PASSWORD=", "CARE_NATS_PASSWORD=", "CARE_INFLUX_TOKEN="} {
			if strings.HasPrefix(line, secret) {
				t.Errorf("carehub.env holds a secret literally: %s", strings.SplitN(line, "=", 2)[0])
			}
		}
	}
}
