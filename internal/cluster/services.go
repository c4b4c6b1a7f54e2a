package cluster

import (
	"context"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// startNATS writes one configuration per node and starts them together:
// a node waits for its routes before JetStream elects a meta leader, so
// readiness (the monitoring port's /healthz) is awaited once all run.
func (t *Topology) startNATS(ctx context.Context) error {
	n := t.opts.NATSNodes
	client, route, mon := make([]int, n), make([]int, n), make([]int, n)
	for i := range n {
		for _, p := range []*int{&client[i], &route[i], &mon[i]} {
			port, err := freePort()
			if err != nil {
				return err
			}
			*p = port
		}
	}
	var routes []string
	for i := range n {
		routes = append(routes, fmt.Sprintf("%q", fmt.Sprintf("nats-route://route:%s@127.0.0.1:%d", t.secrets.natsRoute, route[i])))
	}
	for i := range n {
		name := fmt.Sprintf("n%d", i+1)
		dir := filepath.Join(t.Dir, name)
		if err := mkdirs(dir); err != nil {
			return err
		}
		conf := natsConf(name, dir, client[i], route[i], mon[i], n > 1, routes, t.secrets)
		file := filepath.Join(dir, "nats.conf")
		if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
			return err
		}
		p := newProc(name, dir, t.opts.Bin.NATSServer, []string{"-c", file}, cleanEnv(),
			httpOK(fmt.Sprintf("http://127.0.0.1:%d/healthz", mon[i])))
		t.NATS = append(t.NATS, p)
		t.NATSURLs = append(t.NATSURLs, fmt.Sprintf("nats://127.0.0.1:%d", client[i]))
		// Ready once all run: a node's JetStream waits for its routes.
		if err := p.Start(ctx, 0); err != nil {
			return err
		}
	}
	for _, p := range t.NATS {
		if err := p.waitReady(ctx, natsReady); err != nil {
			return err
		}
	}
	t.opts.Logf("cluster: NATS %s ready", strings.Join(t.NATSURLs, ","))
	return nil
}

// natsConf is deploy/nats/nats.conf's shape for a loopback cluster: the
// carehub user in its own account, routes authenticated with their own
// user (TLS between hosts is the deployment's job, deploy/nats).
func natsConf(name, dir string, client, route, mon int, clustered bool, routes []string, s secrets) string {
	var b strings.Builder
	fmt.Fprintf(&b, "server_name: %s\nlisten: 127.0.0.1:%d\nhttp: 127.0.0.1:%d\nmax_payload: 8MB\n", name, client, mon)
	fmt.Fprintf(&b, "jetstream { store_dir: %q, max_file_store: 16GB, max_memory_store: 256MB }\n", filepath.Join(dir, "js"))
	fmt.Fprintf(&b, "accounts {\n  CARE { jetstream: enabled, users: [ { user: carehub, password: %q } ] }\n  SYS { users: [ { user: sys, password: %q } ] }\n}\nsystem_account: SYS\n", s.natsUser, s.natsSys)
	if clustered {
		fmt.Fprintf(&b, "cluster {\n  name: care\n  listen: 127.0.0.1:%d\n  authorization { user: route, password: %q }\n  routes: [%s]\n}\n", route, s.natsRoute, strings.Join(routes, ", "))
	}
	return b.String()
}

// NATSConnect connects to the cluster as carehub's NATS user (the tests'
// subscribers of CARE_ALERTS, the stream-leader lookup).
func (t *Topology) NATSConnect(name string) (*nats.Conn, error) {
	return nats.Connect(strings.Join(t.NATSURLs, ","), nats.Name(name), nats.UserInfo("carehub", t.secrets.natsUser),
		nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
}

// StreamLeader is the index in NATS of the node leading stream's RAFT
// group (CARE_READINGS: the node whose death the fault test a inflicts).
func (t *Topology) StreamLeader(ctx context.Context, stream string) (int, error) {
	// A stream without a leader answers nothing: ask briefly, callers poll.
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	nc, err := t.NATSConnect("cluster-leader-lookup")
	if err != nil {
		return -1, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return -1, err
	}
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return -1, fmt.Errorf("stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return -1, err
	}
	if info.Cluster == nil || info.Cluster.Leader == "" {
		return -1, fmt.Errorf("stream %s has no leader now", stream)
	}
	for i, p := range t.NATS {
		if p.Name == info.Cluster.Leader {
			return i, nil
		}
	}
	return -1, fmt.Errorf("stream %s is led by %q, not a node of this topology", stream, info.Cluster.Leader)
}

// dynsecAdmin is the control login holding the plugin's admin role, which
// `mosquitto_ctrl dynsec init` would create (carehub's
// CARE_MQTT_DYNSEC_USERNAME).
const dynsecAdmin = "carehub-admin"

// startBrokers starts each Mosquitto with the dynamic-security plugin and
// deploy/mosquitto/carehub.conf's limits; carehub creates its service
// user and every device's account in each of them.
func (t *Topology) startBrokers(ctx context.Context) error {
	for i := range t.opts.Brokers {
		name := fmt.Sprintf("mqtt-%d", i+1)
		dir := filepath.Join(t.Dir, name)
		if err := mkdirs(dir); err != nil {
			return err
		}
		port, err := freePort()
		if err != nil {
			return err
		}
		dynsec := filepath.Join(dir, "dynsec.json")
		if err := writeDynsec(dynsec, t.secrets.mqttAdmin, t.GatewayPassword); err != nil {
			return err
		}
		var conf strings.Builder
		fmt.Fprintf(&conf, "listener %d 127.0.0.1\nallow_anonymous false\nplugin %s\nplugin_opt_config_file %s\n", port, t.opts.Bin.DynsecLib, dynsec)
		if os.Geteuid() == 0 {
			// As root mosquitto would drop to the mosquitto user, which can
			// neither read this directory nor save the plugin's changes.
			conf.WriteString("user root\n")
		}
		// carehub.conf's limits: without them Mosquitto throttles carehub
		// and drops what it queues while carehub restarts.
		fmt.Fprintf(&conf, "persistence true\npersistence_location %s/\nautosave_interval 60\npersistent_client_expiration 7d\n", dir)
		conf.WriteString("set_tcp_nodelay true\nmax_packet_size 69632\nmax_inflight_messages 1000\nmax_queued_messages 1000000\nmax_queued_bytes 1073741824\n")
		conf.WriteString("log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\nconnection_messages false\n")
		file := filepath.Join(dir, "mosquitto.conf")
		if err := os.WriteFile(file, []byte(conf.String()), 0o600); err != nil {
			return err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		p := newProc(name, dir, t.opts.Bin.Mosquitto, []string{"-c", file}, cleanEnv(), dialable(addr))
		t.Brokers = append(t.Brokers, p)
		t.BrokerURLs = append(t.BrokerURLs, "tcp://"+addr)
		if err := p.Start(ctx, brokerReady); err != nil {
			return err
		}
	}
	t.opts.Logf("cluster: Mosquitto %s ready", strings.Join(t.BrokerURLs, ","))
	return nil
}

// writeDynsec writes the plugin's starting state: the admin client (as
// `mosquitto_ctrl dynsec init` makes it) and, for load generators, a
// gateway client that may publish any device's topics.
func writeDynsec(file, adminPassword, gatewayPassword string) error {
	acl := func(typ, topic string) map[string]any {
		return map[string]any{"acltype": typ, "topic": topic, "allow": true}
	}
	admin, err := dynsecClient(dynsecAdmin, adminPassword, "admin")
	if err != nil {
		return err
	}
	clients := []map[string]any{admin}
	roles := []map[string]any{{"rolename": "admin", "acls": []map[string]any{
		acl("publishClientSend", "$CONTROL/dynamic-security/#"), acl("publishClientReceive", "$CONTROL/dynamic-security/#"),
		acl("subscribePattern", "$CONTROL/dynamic-security/#"), acl("publishClientReceive", "$SYS/#"), acl("subscribePattern", "$SYS/#"),
		acl("publishClientReceive", "#"), acl("subscribePattern", "#"), acl("unsubscribePattern", "#"),
	}}}
	if gatewayPassword != "" {
		gw, err := dynsecClient(GatewayUser, gatewayPassword, "loadgen")
		if err != nil {
			return err
		}
		clients = append(clients, gw)
		roles = append(roles, map[string]any{"rolename": "loadgen", "acls": []map[string]any{acl("publishClientSend", "care/v1/dev/#")}})
	}
	b, err := json.Marshal(map[string]any{
		"defaultACLAccess": map[string]bool{"publishClientSend": false, "publishClientReceive": true, "subscribe": false, "unsubscribe": true},
		"clients":          clients, "roles": roles,
	})
	if err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o600)
}

// dynsecClient is a plugin client entry with its PBKDF2-SHA512 hash, the
// plugin's own format.
func dynsecClient(user, password, role string) (map[string]any, error) {
	salt := make([]byte, 12)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	const iterations = 101
	hash, err := pbkdf2.Key(sha512.New, password, salt, iterations, 64)
	if err != nil {
		return nil, err
	}
	return map[string]any{"username": user, "password": base64.StdEncoding.EncodeToString(hash),
		"salt": base64.StdEncoding.EncodeToString(salt), "iterations": iterations, "roles": []map[string]any{{"rolename": role}}}, nil
}

// startInflux starts InfluxDB 1.8 with Flux (carehub's v2 API) and creates
// the database, as deploy/dev/influxdb.sh does.
func (t *Topology) startInflux(ctx context.Context) error {
	dir := filepath.Join(t.Dir, "influxd")
	if err := mkdirs(dir); err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	bind, err := freePort()
	if err != nil {
		return err
	}
	t.InfluxURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	env := append(cleanEnv(),
		"INFLUXDB_REPORTING_DISABLED=true",
		fmt.Sprintf("INFLUXDB_BIND_ADDRESS=127.0.0.1:%d", bind),
		fmt.Sprintf("INFLUXDB_HTTP_BIND_ADDRESS=127.0.0.1:%d", port),
		"INFLUXDB_HTTP_FLUX_ENABLED=true", "INFLUXDB_HTTP_LOG_ENABLED=false", "INFLUXDB_LOGGING_LEVEL=warn",
		"INFLUXDB_DATA_QUERY_LOG_ENABLED=false", "INFLUXDB_HTTP_MAX_BODY_SIZE=0",
		"INFLUXDB_META_DIR="+dir+"/meta", "INFLUXDB_DATA_DIR="+dir+"/data", "INFLUXDB_DATA_WAL_DIR="+dir+"/wal")
	t.Influx = newProc("influxd", dir, t.opts.Bin.Influxd, nil, env, httpOK(t.InfluxURL+"/ping"))
	if err := t.Influx.Start(ctx, influxReady); err != nil {
		return err
	}
	if _, err := t.InfluxQL(ctx, "CREATE DATABASE "+t.InfluxDB); err != nil {
		return err
	}
	t.opts.Logf("cluster: InfluxDB %s ready", t.InfluxURL)
	return nil
}

// InfluxQL runs a statement against the topology's database through the
// 1.x /query endpoint and returns the raw JSON answer.
func (t *Topology) InfluxQL(ctx context.Context, q string) ([]byte, error) {
	form := url.Values{"q": {q}, "db": {t.InfluxDB}, "epoch": {"ms"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.InfluxURL+"/query", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("influx query %q: %s: %s", q, resp.Status, b)
	}
	return b, nil
}

func getJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}
