package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/carehub/carehub/ingest/mqttsub"
	"github.com/carehub/carehub/internal/app"
	"github.com/carehub/carehub/internal/instances"
	"github.com/carehub/carehub/internal/testenv"
)

// TestSeveralInstances (issue 15 item 3): two carehub instances on one
// NATS and one broker, sharing its subscription. Exactly one is the alert
// leader; a device's readings are stored exactly once whichever instance
// takes them, and an SOS is raised exactly once. When the leader stops,
// the other leads within the lease's TTL and raises the next SOS.
func TestSeveralInstances(t *testing.T) {
	in := testenv.SharedInflux(t)
	db := in.CreateDB(t)
	ns := testenv.NATS(t)
	broker := testenv.StartMosquitto(t, "max_inflight_messages 1000\nmax_queued_messages 100000\n")
	group := testenv.ID("g")
	instance := func(id string) *app.App {
		return startApp(t, env(t, in.URL, db, map[string]string{
			"CARE_NATS_URL": ns.ClientURL(), "CARE_MQTT_URL": broker.URL, "CARE_MQTT_SHARE_GROUP": group,
			"CARE_INSTANCE_ID": id, "CARE_ALERT_LEASE_TTL": "1s",
		}))
	}
	a := instance(testenv.ID("a"))
	b := instance(testenv.ID("b"))
	baseA, baseB := "http://"+a.HTTPAddr(), "http://"+b.HTTPAddr()
	if la, lb := alertLeader(t, baseA), alertLeader(t, baseB); !la || lb {
		t.Fatalf("alert_leader: first instance %v, second %v; want the first only", la, lb)
	}

	// A device registered through A, known to B before it publishes: its
	// messages may reach either instance.
	watchAlerts := func(d deviceCreds) chan alertMsg { return phone(t, ns.ClientURL(), d.ResidentID) }
	known := func(d deviceCreds) {
		testenv.WaitFor(t, 5*time.Second, "both instances to know "+d.ID, func() bool {
			var got struct {
				Devices []struct {
					ID string `json:"id"`
				} `json:"devices"`
			}
			return apiCall(t, baseB, "GET", "/api/v1/residents/"+d.ResidentID+"/devices", nil, &got) == http.StatusOK &&
				len(got.Devices) == 1 && got.Devices[0].ID == d.ID
		})
	}
	d := register(t, baseA, "wearable")
	sos := register(t, baseA, "sos")
	known(d)
	known(sos)
	c, cs := deviceClient(t, broker.URL, d), deviceClient(t, broker.URL, sos)
	start := time.Now().Add(-10 * time.Minute).Truncate(time.Millisecond)
	for i := range 200 {
		publish(t, c, d.MQTT.TopicPrefix+"telemetry", fmt.Appendf(nil, `{"ts":%d,"values":{"heart_rate":%d}}`, start.Add(time.Duration(i)*time.Second).UnixMilli(), 60+i%30))
	}
	ph := watchAlerts(sos)
	publish(t, cs, sos.MQTT.TopicPrefix+"event", []byte(`{"type":"sos"}`))
	raised := expectTransition(t, ph, "sos", "raised")
	// The follower serves the leader's alert and takes a person's action
	// on it: one acknowledged transition, whichever instance stored it.
	testenv.WaitFor(t, 5*time.Second, "the follower to list the SOS", func() bool {
		var got struct {
			Alerts []struct {
				ID string `json:"id"`
			} `json:"alerts"`
		}
		return apiCall(t, baseB, "GET", "/api/v1/alerts?resident_id="+sos.ResidentID, nil, &got) == http.StatusOK &&
			len(got.Alerts) == 1 && got.Alerts[0].ID == raised.ID
	})
	if code := apiCall(t, baseB, "POST", "/api/v1/alerts/"+raised.ID+"/ack", map[string]any{}, nil); code != http.StatusOK {
		t.Fatalf("ack on the follower: HTTP %d", code)
	}
	expectTransition(t, ph, "sos", "acknowledged")
	testenv.WaitFor(t, 30*time.Second, "200 readings in InfluxDB", func() bool {
		return countPoints(t, in, db, "readings", "heart_rate", d.ID) >= 200
	})
	if n := countPoints(t, in, db, "readings", "heart_rate", d.ID); n != 200 {
		t.Fatalf("stored %d readings, want 200 exactly", n)
	}
	expectNone(t, ph, "sos", time.Second) // raised once, not once per instance

	// The leader stops: the other instance takes the rules over.
	stopped := time.Now()
	a.Close()
	testenv.WaitFor(t, 3*time.Second, "the second instance to lead", func() bool { return alertLeader(t, baseB) })
	t.Logf("alert leader handed over %s after a clean stop", time.Since(stopped).Round(time.Millisecond))
	sos2 := register(t, baseB, "sos")
	cs2 := deviceClient(t, broker.URL, sos2)
	ph2 := watchAlerts(sos2)
	publish(t, cs2, sos2.MQTT.TopicPrefix+"event", []byte(`{"type":"sos"}`))
	expectTransition(t, ph2, "sos", "raised")
	expectNone(t, ph2, "sos", time.Second)
}

// alertLeader is /readyz's alert_leader.
func alertLeader(t *testing.T, base string) bool {
	t.Helper()
	resp, err := testClient().Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		AlertLeader *bool `json:"alert_leader"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.AlertLeader == nil {
		t.Fatalf("/readyz without alert_leader: %v", err)
	}
	return *body.AlertLeader
}

// pair is two carehub instances, A then B, on one NATS and one Mosquitto
// sharing its subscription (two telemetry connections each), and a
// wearable registered through A whose readings send publishes and stored
// counts in InfluxDB.
type pair struct {
	t      *testing.T
	in     *testenv.Influx
	db     string
	ns     *server.Server
	broker *testenv.Mosquitto
	group  string
	idB    string
	a, b   *app.App
	baseA  string
	d      deviceCreds
	c      mqtt.Client
	start  time.Time
}

func newPair(t *testing.T) *pair {
	in := testenv.SharedInflux(t)
	p := &pair{t: t, in: in, db: in.CreateDB(t), ns: testenv.NATS(t), group: testenv.ID("g"), idB: testenv.ID("b"),
		broker: testenv.StartMosquitto(t, "max_inflight_messages 1000\nmax_queued_messages 100000\n")}
	p.a = startApp(t, p.vars(testenv.ID("a")))
	p.b = startApp(t, p.vars(p.idB))
	p.baseA = "http://" + p.a.HTTPAddr()
	if !alertLeader(t, p.baseA) {
		t.Fatal("the first instance does not lead")
	}
	p.d = register(t, p.baseA, "wearable")
	p.c = deviceClient(t, p.broker.URL, p.d)
	p.start = time.Now().Add(-10 * time.Minute).Truncate(time.Millisecond)
	return p
}

// vars is the environment of instance id.
func (p *pair) vars(id string) map[string]string {
	return env(p.t, p.in.URL, p.db, map[string]string{
		"CARE_NATS_URL": p.ns.ClientURL(), "CARE_MQTT_URL": p.broker.URL, "CARE_MQTT_SHARE_GROUP": p.group,
		"CARE_INSTANCE_ID": id, "CARE_ALERT_LEASE_TTL": "1s", "CARE_MQTT_CONNECTIONS": "2",
	})
}

// send publishes readings from..from+n-1, one a second of device time.
func (p *pair) send(from, n int) {
	for i := from; i < from+n; i++ {
		publish(p.t, p.c, p.d.MQTT.TopicPrefix+"telemetry", fmt.Appendf(nil, `{"ts":%d,"values":{"heart_rate":%d}}`, p.start.Add(time.Duration(i)*time.Second).UnixMilli(), 60+i%30))
	}
}

// stored waits for n readings in InfluxDB and fails on any more.
func (p *pair) stored(n int) {
	p.t.Helper()
	testenv.WaitFor(p.t, 30*time.Second, fmt.Sprintf("%d readings in InfluxDB", n), func() bool {
		return countPoints(p.t, p.in, p.db, "readings", "heart_rate", p.d.ID) >= n
	})
	if got := countPoints(p.t, p.in, p.db, "readings", "heart_rate", p.d.ID); got != n {
		p.t.Fatalf("stored %d readings, want %d exactly", got, n)
	}
}

// TestDeadInstancesSessionsAreDrained: Mosquitto holds a stopped
// instance's share of the shared subscription in its persistent sessions.
// While that instance is down the alert leader drains them, so every
// reading is stored and every SOS raised without waiting for it; when it
// is back it takes its sessions over, and nothing is stored twice.
func TestDeadInstancesSessionsAreDrained(t *testing.T) {
	p := newPair(t)
	baseA, broker, ns := p.baseA, p.broker, p.ns
	p.send(0, 50)
	p.stored(50)

	// B stops: its sessions stay at the broker and get their share.
	p.b.Close()
	p.send(50, 100)
	sos := make([]deviceCreds, 4)
	phones := make([]chan alertMsg, len(sos))
	for i := range sos {
		sos[i] = register(t, baseA, "sos")
		phones[i] = phone(t, ns.ClientURL(), sos[i].ResidentID)
		publish(t, deviceClient(t, broker.URL, sos[i]), sos[i].MQTT.TopicPrefix+"event", []byte(`{"type":"sos"}`))
	}
	p.stored(150)
	for i := range sos {
		expectTransition(t, phones[i], "sos", "raised")
	}
	if n := metricValue(t, baseA, "carehub_mqtt_adopted_instances"); n != 1 {
		t.Fatalf("carehub_mqtt_adopted_instances = %v, want 1", n)
	}

	// B is back and takes its sessions over.
	startApp(t, p.vars(p.idB))
	testenv.WaitFor(t, 10*time.Second, "the leader to let B's sessions go", func() bool {
		return metricValue(t, baseA, "carehub_mqtt_adopted_instances") == 0
	})
	p.send(150, 100)
	p.stored(250)
}

// TestRetiredInstanceIsForgotten: an instance removed for good is retired
// (`carehub instances retire`): the alert leader, which drains its
// sessions, unsubscribes them, takes what Mosquitto still held, ends them
// at the broker and forgets the instance. Every reading sent before,
// during and after is stored exactly once. Retiring an instance that is up,
// or one never seen, is refused.
func TestRetiredInstanceIsForgotten(t *testing.T) {
	p := newPair(t)
	idB, baseA, broker := p.idB, p.baseA, p.broker
	_, js := testenv.JetStream(t, p.ns)
	ctx := context.Background()
	if err := instances.Retire(ctx, js, idB); !errors.Is(err, instances.ErrInstanceUp) {
		t.Fatalf("retiring an instance that is up: %v, want ErrInstanceUp", err)
	}
	if err := instances.Retire(ctx, js, "never-seen"); !errors.Is(err, instances.ErrUnknownInstance) {
		t.Fatalf("retiring an unknown instance: %v, want ErrUnknownInstance", err)
	}
	p.send(0, 50)
	p.stored(50)

	// B stops for good; the leader drains its sessions, then retires them
	// while readings keep coming.
	p.b.Close()
	p.send(50, 100)
	p.stored(150)
	if n := metricValue(t, baseA, "carehub_mqtt_adopted_instances"); n != 1 {
		t.Fatalf("carehub_mqtt_adopted_instances = %v, want 1", n)
	}
	if err := instances.Retire(ctx, js, idB); err != nil {
		t.Fatal(err)
	}
	p.send(150, 100)
	testenv.WaitFor(t, 30*time.Second, "B forgotten and its sessions let go", func() bool {
		list, err := instances.List(ctx, js)
		if err != nil {
			return false
		}
		for _, i := range list {
			if i.ID == idB {
				return false
			}
		}
		return metricValue(t, baseA, "carehub_mqtt_adopted_instances") == 0
	})
	p.stored(250)

	// B's sessions are gone from the broker: a client under each of B's ids
	// finds none.
	for i := range 3 {
		id := mqttsub.ClientID(idB, 0, i, 2)
		cl := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker.URL).SetClientID(id).SetCleanSession(false).SetAutoReconnect(false))
		tok := cl.Connect()
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("connect as %s: %v", id, tok.Error())
		}
		if tok.(*mqtt.ConnectToken).SessionPresent() {
			t.Errorf("the broker still holds B's session %s", id)
		}
		cl.Disconnect(0)
	}
	// The readings go to A alone now.
	p.send(250, 100)
	p.stored(350)
}
