// Package cluster starts carehub's scaled-out topology on one machine, as
// real processes on loopback ports under one directory: a NATS JetStream
// cluster (routes authenticated), several Mosquitto brokers with the
// dynamic-security plugin (carehub provisions every device into each),
// InfluxDB 1.8 and several carehub instances sharing them (issue 15). make
// cluster-demo runs it for people, the fault tests (make test-cluster) and
// carebench cluster for measurements; each process can be killed with
// SIGKILL and restarted, as the faults a production cluster meets.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Options shape a topology; the zero value is issue 15's: 3 NATS nodes, 2
// brokers, 3 carehub instances.
type Options struct {
	Dir        string   // working directory (logs, data); "" = a new temporary one
	Bin        Binaries // from Build
	NATSNodes  int      // default 3
	Brokers    int      // default 2
	Instances  int      // carehub instances; default 3
	AdminToken string   // CARE_ADMIN_TOKEN shared by every instance; "" = generated
	// Env adds or overrides CARE_* variables of every instance.
	Env map[string]string
	// Gateway adds a broker login (GatewayUser / Topology.GatewayPassword)
	// that may publish for any device, for load generators that multiplex
	// many devices over a few connections.
	Gateway bool
	// Logf reports progress (t.Logf in tests); nil = silent.
	Logf func(format string, args ...any)
}

// GatewayUser is the load generators' broker login of Options.Gateway.
const GatewayUser = "loadgen"

// Timeouts of the readiness waits. carehub's start includes declaring the
// replicated streams and buckets, which waits for JetStream's leaders.
const (
	natsReady    = 60 * time.Second
	brokerReady  = 15 * time.Second
	influxReady  = 60 * time.Second
	carehubReady = 120 * time.Second
)

// streamSizes are the streams' sizes on one machine's three nodes.
const streamSizes = "CARE_READINGS=2GiB,CARE_EVENTS=256MiB,CARE_STATUS=256MiB,CARE_ALERTS=256MiB," +
	"CARE_ESCALATION=64MiB,CARE_DEADLETTER=256MiB,CARE_AUDIT=256MiB"

// Topology is a running cluster.
type Topology struct {
	Dir             string
	NATS            []*Proc // n1, n2, n3: server names equal Proc names
	Brokers         []*Proc // mqtt-1, mqtt-2
	Influx          *Proc
	Carehubs        []*Carehub
	NATSURLs        []string // nats://127.0.0.1:port, one per node
	BrokerURLs      []string // tcp://127.0.0.1:port, one per broker
	InfluxURL       string
	InfluxDB        string // the database carehub writes (bucket "care" on 1.8)
	AdminToken      string
	GatewayPassword string

	Extra []*Proc // processes started with Run (homesim)

	opts    Options
	secrets secrets
	ownDir  bool
}

// Carehub is one instance: its process and its API's base URL.
type Carehub struct {
	*Proc
	ID   string // CARE_INSTANCE_ID
	Base string // http://127.0.0.1:port
}

type secrets struct {
	natsUser, natsRoute, natsSys, mqttService, mqttAdmin string
}

// Start brings the whole topology up, each process ready before the next
// needs it. On error everything started is stopped again; the logs stay
// in the directory and the error quotes the failing one's.
func Start(ctx context.Context, o Options) (_ *Topology, err error) {
	if o.NATSNodes == 0 {
		o.NATSNodes = 3
	}
	if o.Brokers == 0 {
		o.Brokers = 2
	}
	if o.Instances == 0 {
		o.Instances = 3
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	t := &Topology{Dir: o.Dir, opts: o, AdminToken: o.AdminToken, InfluxDB: "care"}
	if t.Dir == "" {
		if t.Dir, err = os.MkdirTemp("", "carehub-cluster-"); err != nil {
			return nil, err
		}
		t.ownDir = true
	}
	t.secrets = secrets{natsUser: secret(), natsRoute: secret(), natsSys: secret(), mqttService: secret(), mqttAdmin: secret()}
	if t.AdminToken == "" {
		t.AdminToken = "cluster-admin-" + secret()
	}
	if o.Gateway {
		t.GatewayPassword = secret()
	}
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	o.Logf("cluster: starting %d NATS nodes, %d Mosquitto brokers, InfluxDB and %d carehub instances in %s", o.NATSNodes, o.Brokers, o.Instances, t.Dir)
	if err = t.startNATS(ctx); err != nil {
		return t, err
	}
	if err = t.startBrokers(ctx); err != nil {
		return t, err
	}
	if err = t.startInflux(ctx); err != nil {
		return t, err
	}
	for i := range o.Instances {
		// One after another: the first creates the streams, buckets and
		// broker roles, the others find them.
		if _, err = t.AddCarehub(ctx, i); err != nil {
			return t, err
		}
	}
	return t, nil
}

// AddCarehub configures and starts instance i (care-{i+1}).
func (t *Topology) AddCarehub(ctx context.Context, i int) (*Carehub, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	id := fmt.Sprintf("care-%d", i+1)
	dir := filepath.Join(t.Dir, id)
	if err := mkdirs(dir); err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	vars := map[string]string{
		"CARE_HTTP_ADDR":   addr,
		"CARE_INSTANCE_ID": id,
		"CARE_DATA_DIR":    dir,
		"CARE_ADMIN_TOKEN": t.AdminToken,
		"CARE_NATS_URL":    strings.Join(t.NATSURLs, ","), "CARE_NATS_USERNAME": "carehub", "CARE_NATS_PASSWORD": t.secrets.natsUser,
		"CARE_NATS_REPLICAS": "3",
		"CARE_MQTT_URL":      strings.Join(t.BrokerURLs, ","), "CARE_MQTT_USERNAME": "carehub", "CARE_MQTT_PASSWORD": t.secrets.mqttService,
		"CARE_MQTT_PROVISION": "dynsec", "CARE_MQTT_DYNSEC_USERNAME": dynsecAdmin, "CARE_MQTT_DYNSEC_PASSWORD": t.secrets.mqttAdmin,
		"CARE_INFLUX_URL": t.InfluxURL, "CARE_INFLUX_BUCKET": t.InfluxDB,
		"CARE_LOG_FORMAT": "json",
		// JetStream reserves each stream's size on every replica at
		// creation: three nodes on one disk cannot each reserve carehub's
		// production sizes (20 GiB).
		"CARE_STREAM_MAX_BYTES": streamSizes,
	}
	if len(t.NATSURLs) < 3 {
		vars["CARE_NATS_REPLICAS"] = "1"
	}
	for k, v := range t.opts.Env {
		vars[k] = v
	}
	env := cleanEnv()
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	c := &Carehub{ID: id, Base: "http://" + addr}
	c.Proc = newProc(id, dir, t.opts.Bin.Carehub, []string{"serve"}, env, httpOK(c.Base+"/readyz"))
	if i < len(t.Carehubs) {
		t.Carehubs[i] = c
	} else {
		t.Carehubs = append(t.Carehubs, c)
	}
	if err := c.Start(ctx, carehubReady); err != nil {
		return nil, err
	}
	t.opts.Logf("cluster: %s ready on %s", id, c.Base)
	return c, nil
}

// cleanEnv is this process's environment without CARE_* variables, so a
// developer's shell does not configure the instances behind our back.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CARE_") {
			env = append(env, kv)
		}
	}
	return env
}

// Run starts another process beside the topology (a simulator, a load
// generator), its log in the directory as name.log; Close stops it first.
func (t *Topology) Run(ctx context.Context, name, bin string, args ...string) (*Proc, error) {
	dir := filepath.Join(t.Dir, name)
	if err := mkdirs(dir); err != nil {
		return nil, err
	}
	p := newProc(name, dir, bin, args, cleanEnv(), nil)
	t.Extra = append(t.Extra, p)
	return p, p.Start(ctx, 0)
}

// Close stops every process (SIGTERM; extra processes, then carehub) and
// removes the directory when Start made it.
func (t *Topology) Close() {
	for _, p := range t.Extra {
		p.Stop()
	}
	for i := len(t.Carehubs) - 1; i >= 0; i-- {
		if t.Carehubs[i] != nil {
			t.Carehubs[i].Stop()
		}
	}
	if t.Influx != nil {
		t.Influx.Stop()
	}
	for _, p := range append(append([]*Proc{}, t.Brokers...), t.NATS...) {
		p.Stop()
	}
	if t.ownDir {
		_ = os.RemoveAll(t.Dir)
	}
}

// KeepDir keeps the working directory after Close (a failed test's logs).
func (t *Topology) KeepDir() { t.ownDir = false }

// Logs is the tail of every process's log, for a failure report.
func (t *Topology) Logs(n int) string {
	var b strings.Builder
	procs := append(append([]*Proc{}, t.NATS...), t.Brokers...)
	if t.Influx != nil {
		procs = append(procs, t.Influx)
	}
	for _, c := range t.Carehubs {
		if c != nil {
			procs = append(procs, c.Proc)
		}
	}
	for _, p := range procs {
		fmt.Fprintf(&b, "==== %s (%s) ====\n%s\n", p.Name, p.Log, Tail(p.Log, n))
	}
	// carehub's warnings, errors and role changes over the whole run, less
	// the retries every fault repeats: what explains a failure is rarely
	// in the last lines.
	for _, c := range t.Carehubs {
		if c != nil {
			fmt.Fprintf(&b, "==== %s: warnings, errors, leases, alerts ====\n%s\n", c.Name, Notable(c.Log, 200))
		}
	}
	return b.String()
}

// AlertLeader is the index of the instance whose /readyz says it holds
// the alert lease ("alert_leader": true), or -1 when none says so (a
// carehub without the lease, or between two holders).
func (t *Topology) AlertLeader(ctx context.Context) int {
	for i, c := range t.Carehubs {
		if c == nil || !c.Running() {
			continue
		}
		var r struct {
			AlertLeader bool `json:"alert_leader"`
		}
		if getJSON(ctx, c.Base+"/readyz", &r) == nil && r.AlertLeader {
			return i
		}
	}
	return -1
}

// Ready says whether every running instance answers /readyz with 200.
func (t *Topology) Ready(ctx context.Context) error {
	var errs []error
	for _, c := range t.Carehubs {
		if c != nil && c.Running() {
			if err := httpOK(c.Base + "/readyz")(ctx); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", c.ID, err))
			}
		}
	}
	return errors.Join(errs...)
}

func secret() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var httpClient = &http.Client{Timeout: 5 * time.Second}
