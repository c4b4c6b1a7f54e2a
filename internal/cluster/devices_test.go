//go:build cluster

package cluster_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/internal/cluster"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/testenv"
)

// device is a registered device connected as firmware would be: QoS 1,
// a persistent session, and every broker in its server list (its own
// first), so that it moves to another when its broker dies.
type device struct {
	ID, ResidentID string
	Prefix         string // care/v1/dev/{id}/
	c              mqtt.Client
}

type deviceCreds struct {
	ID         string `json:"id"`
	ResidentID string `json:"resident_id"`
	MQTT       struct {
		Username    string `json:"username"`
		Password    string `json:"password"`
		TopicPrefix string `json:"topic_prefix"`
	} `json:"mqtt"`
}

// apiCall sends a JSON request with the admin token and decodes the answer.
func apiCall(t *testing.T, top *cluster.Topology, base, method, path string, body, out any) int {
	t.Helper()
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(method, base+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+top.AdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

// newDevice registers a resident and a device of kind through instance
// base and connects it to brokers, its home broker first.
func newDevice(t *testing.T, top *cluster.Topology, base, prefix, kind string, home int) *device {
	t.Helper()
	res := testenv.ID(prefix + "r")
	if code := apiCall(t, top, base, http.MethodPost, "/api/v1/residents", map[string]any{"id": res, "name": "Fault Test", "home_id": testenv.ID(prefix + "h")}, nil); code != http.StatusCreated {
		t.Fatalf("create resident: HTTP %d", code)
	}
	var d deviceCreds
	if code := apiCall(t, top, base, http.MethodPost, "/api/v1/devices", map[string]any{"id": testenv.ID(prefix + "d"), "kind": kind, "resident_id": res}, &d); code != http.StatusCreated {
		t.Fatalf("create device: HTTP %d", code)
	}
	opts := mqtt.NewClientOptions().SetClientID(d.ID).SetUsername(d.ID).SetPassword(d.MQTT.Password).
		SetCleanSession(false).SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(200*time.Millisecond).
		SetMaxReconnectInterval(time.Second).SetConnectTimeout(2*time.Second).SetWriteTimeout(2*time.Second).
		SetWill("care/v1/dev/"+d.ID+"/status", `{"online":false}`, 1, true)
	for k := range top.BrokerURLs {
		opts.AddBroker(top.BrokerURLs[(home+k)%len(top.BrokerURLs)])
	}
	c := mqtt.NewClient(opts)
	// carehub provisions the account into every broker as it registers
	// the device; a broker that answers slowly may lag a moment.
	if tok := c.Connect(); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		t.Fatalf("device %s connect: %v", d.ID, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return &device{ID: d.ID, ResidentID: res, Prefix: d.MQTT.TopicPrefix, c: c}
}

// publish sends one QoS 1 message until a broker acknowledges it, as a
// device retries: the same payload again, which carehub stores as the same
// point (contract §2: idempotent).
func (d *device) publish(ctx context.Context, topic string, payload []byte) error {
	for {
		tok := d.c.Publish(d.Prefix+topic, 1, false, payload)
		if tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("device %s: %s not acknowledged: %w", d.ID, topic, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stream is devices publishing readings with known values: device d's
// message i is steps = i at ts = base + i s, so InfluxDB's points are
// exactly the published set when nothing is lost or doubled.
type stream struct {
	devs []*device
	base time.Time
	sent []atomic.Int64 // per device: messages acknowledged
	stop chan struct{}
	wg   sync.WaitGroup
	errs chan error
}

func startStream(ctx context.Context, devs []*device, every time.Duration) *stream {
	s := &stream{devs: devs, base: time.Now().Add(-10 * time.Minute).Truncate(time.Second), sent: make([]atomic.Int64, len(devs)),
		stop: make(chan struct{}), errs: make(chan error, len(devs))}
	for k, d := range devs {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			tick := time.NewTicker(every)
			defer tick.Stop()
			for i := int64(0); ; i++ {
				select {
				case <-s.stop:
					return
				case <-tick.C:
				}
				p := fmt.Appendf(nil, `{"ts":%d,"values":{"steps":%d}}`, s.base.Add(time.Duration(i)*time.Second).UnixMilli(), i)
				if err := d.publish(ctx, "telemetry", p); err != nil {
					s.errs <- err
					return
				}
				s.sent[k].Store(i + 1)
			}
		}()
	}
	return s
}

// next is the smallest message number not yet sent by every device: a
// reading at or above it was published after now.
func (s *stream) next() int64 {
	var m int64
	for i := range s.sent {
		m = max(m, s.sent[i].Load())
	}
	return m
}

func (s *stream) finish(t *testing.T) {
	t.Helper()
	close(s.stop)
	s.wg.Wait()
	select {
	case err := <-s.errs:
		t.Fatal(err)
	default:
	}
}

// stored reads device id's steps from InfluxDB: how many points, and the
// distinct values among them.
func stored(ctx context.Context, top *cluster.Topology, id string) (points int, distinct map[int64]bool, err error) {
	b, err := top.InfluxQL(ctx, fmt.Sprintf(`SELECT "steps" FROM "readings" WHERE "device_id" = '%s'`, id))
	if err != nil {
		return 0, nil, err
	}
	var r struct {
		Results []struct {
			Series []struct {
				Values [][]json.Number `json:"values"`
			} `json:"series"`
		} `json:"results"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return 0, nil, err
	}
	distinct = map[int64]bool{}
	for _, res := range r.Results {
		for _, s := range res.Series {
			for _, v := range s.Values {
				n, _ := v[1].Int64()
				distinct[n] = true
				points++
			}
		}
	}
	return points, distinct, nil
}

// firstStoredFrom polls until some device's reading numbered from or
// later is in InfluxDB, and says when.
func firstStoredFrom(ctx context.Context, top *cluster.Topology, s *stream, from int64, timeout time.Duration) (time.Time, error) {
	var ids []string
	for _, d := range s.devs {
		ids = append(ids, d.ID)
	}
	q := fmt.Sprintf(`SELECT count("steps") FROM "readings" WHERE "device_id" =~ /^(%s)$/ AND "steps" >= %d`, strings.Join(ids, "|"), from)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if b, err := top.InfluxQL(ctx, q); err == nil && bytes.Contains(b, []byte(`"values"`)) {
			return time.Now(), nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Time{}, fmt.Errorf("no reading numbered %d or later stored within %s", from, timeout)
}

// checkExactlyOnce waits (up to a minute in all) until every acknowledged
// reading is stored, then asserts each device's points are exactly the
// values it sent.
func checkExactlyOnce(t *testing.T, ctx context.Context, top *cluster.Topology, s *stream) {
	t.Helper()
	want := make([]int64, len(s.devs))
	total := int64(0)
	for k := range s.devs {
		want[k] = s.sent[k].Load()
		total += want[k]
	}
	points := make([]int, len(s.devs))
	distinct := make([]map[int64]bool, len(s.devs))
	complete := func() bool {
		all := true
		for k, d := range s.devs {
			if distinct[k] != nil && int64(len(distinct[k])) >= want[k] {
				continue
			}
			var err error
			if points[k], distinct[k], err = stored(ctx, top, d.ID); err != nil || int64(len(distinct[k])) < want[k] {
				all = false
			}
		}
		return all
	}
	waitFor(time.Minute, complete)
	ok := true
	for k, d := range s.devs {
		var missing []int64
		for i := range want[k] {
			if !distinct[k][i] {
				missing = append(missing, i)
			}
		}
		if points[k] != int(want[k]) || len(distinct[k]) != int(want[k]) || len(missing) > 0 {
			ok = false
			t.Errorf("device %s: %d points, %d distinct values, want %d of each (missing %d: %v ...)", d.ID, points[k], len(distinct[k]), want[k], len(missing), head(missing, 12))
		}
	}
	if ok {
		t.Logf("%d QoS 1 readings from %d devices, each stored exactly once", total, len(s.devs))
	}
}

func head(xs []int64, n int) []int64 {
	if len(xs) > n {
		return xs[:n]
	}
	return xs
}

// transition is one message on CARE_ALERTS.
type transition struct {
	msgID, alertID, rule, transition, severity string
	level                                      int
	at                                         time.Time // the alert's updated_at
	seen                                       time.Time // when the test received it
}

func (x transition) String() string {
	return fmt.Sprintf("%s %s level %d (alert %s, msg %s, at %s)", x.rule, x.transition, x.level, x.alertID, x.msgID, x.at.Format("15:04:05.000"))
}

// alertIDs is the distinct alerts among ts.
func alertIDs(ts []transition) map[string]bool {
	ids := map[string]bool{}
	for _, x := range ts {
		ids[x.alertID] = true
	}
	return ids
}

// alertWatch reads CARE_ALERTS from its start for some residents through
// an ordered consumer, which resumes across NATS nodes dying: every
// message the stream holds is seen once.
type alertWatch struct {
	mu  sync.Mutex
	all []transition
}

func watchAlerts(t *testing.T, ctx context.Context, top *cluster.Topology, residents ...string) *alertWatch {
	t.Helper()
	nc, err := top.NATSConnect("fault-test-alerts")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var filters []string
	for _, r := range residents {
		filters = append(filters, model.ResidentAlertsFilter(r))
	}
	cons, err := js.OrderedConsumer(ctx, model.StreamAlerts, jetstream.OrderedConsumerConfig{FilterSubjects: filters})
	if err != nil {
		t.Fatal(err)
	}
	w := &alertWatch{}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		var a struct {
			ID, Rule, Transition, Severity string
			EscalationLevel                int       `json:"escalation_level"`
			UpdatedAt                      time.Time `json:"updated_at"`
		}
		if json.Unmarshal(m.Data(), &a) != nil {
			return
		}
		w.mu.Lock()
		w.all = append(w.all, transition{msgID: m.Headers().Get("Nats-Msg-Id"), alertID: a.ID, rule: a.Rule, transition: a.Transition,
			severity: a.Severity, level: a.EscalationLevel, at: a.UpdatedAt, seen: time.Now()})
		w.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cc.Stop)
	return w
}

// of returns the transitions of rule named tr, in the order seen.
func (w *alertWatch) of(rule, tr string) []transition {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []transition
	for _, x := range w.all {
		if x.rule == rule && (tr == "" || x.transition == tr) {
			out = append(out, x)
		}
	}
	return out
}

// waitFor polls cond every 50 ms up to timeout; false when it never held.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}
