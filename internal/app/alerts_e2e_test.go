package app_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/internal/app"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/testenv"
)

// testClock is the time the alert engine, escalation and API see; the test
// moves it instead of waiting.
type testClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return time.Now().Add(c.off) }
func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

type alertMsg struct {
	alerts.Alert
	msgID string
}

// phone subscribes to a resident's alert transitions with a plain nats.go
// client, as a phone backend would; opts log it in (App.NATSOptions).
func phone(t *testing.T, natsURL, residentID string, opts ...nats.Option) chan alertMsg {
	t.Helper()
	nc, err := nats.Connect(natsURL, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ch := make(chan alertMsg, 64)
	if _, err := nc.Subscribe(model.ResidentAlertsFilter(residentID), func(m *nats.Msg) {
		var a alerts.Alert
		if err := json.Unmarshal(m.Data, &a); err != nil {
			t.Errorf("alert JSON: %v: %s", err, m.Data)
			return
		}
		ch <- alertMsg{a, m.Header.Get("Nats-Msg-Id")}
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return ch
}

func expectTransition(t *testing.T, ch chan alertMsg, rule, transition string) alertMsg {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case m := <-ch:
			if m.Rule != rule || m.Transition == "repeated" {
				continue
			}
			if m.Transition != transition {
				t.Fatalf("rule %s: got transition %s, want %s (%+v)", rule, m.Transition, transition, m.Alert)
			}
			if want := fmt.Sprintf("%s:%s:", m.ID, transition); len(m.msgID) <= len(want) || m.msgID[:len(want)] != want {
				t.Errorf("Nats-Msg-Id %q, want %s{seq}", m.msgID, want)
			}
			return m
		case <-deadline:
			t.Fatalf("rule %s: no %s transition within 15 s", rule, transition)
		}
	}
}

// waitSeverity waits for a repeat of the rule's open alert at severity.
func waitSeverity(t *testing.T, ch chan alertMsg, rule, severity string) {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case m := <-ch:
			if m.Rule == rule && m.Severity == severity {
				return
			}
		case <-deadline:
			t.Fatalf("rule %s never reached %s", rule, severity)
		}
	}
}

func expectNone(t *testing.T, ch chan alertMsg, rule string, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case m := <-ch:
			if m.Rule == rule {
				t.Fatalf("unexpected %s %s: %+v", rule, m.Transition, m.Alert)
			}
		case <-deadline:
			return
		}
	}
}

// TestAlertsEndToEnd drives devices through a real Mosquitto into carehub
// (real NATS and InfluxDB) and checks what a phone backend receives.
func TestAlertsEndToEnd(t *testing.T) {
	in := testenv.SharedInflux(t)
	db := in.CreateDB(t)
	mq := testenv.StartMosquitto(t, "max_inflight_messages 1000\nmax_queued_messages 100000\n")
	clock := &testClock{}
	a := startApp(t, env(t, in.URL, db, map[string]string{"CARE_MQTT_URL": mq.URL}), app.WithClock(clock.Now))
	base := "http://" + a.HTTPAddr()
	dev := func(kind string) (deviceCreds, mqtt.Client) {
		d := register(t, base, kind)
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(mq.URL).SetClientID(d.ID))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		t.Cleanup(func() { c.Disconnect(50) })
		return d, c
	}

	t.Run("falling SpO2: raised, escalated, acknowledged, resolved", func(t *testing.T) {
		d, c := dev("wearable")
		ph := phone(t, a.NATSURL(), d.ResidentID, a.NATSOptions()...)
		start := time.Now().Add(-11 * time.Minute)
		for i := 0; i <= 22; i++ { // 97 % falling to 89 % and staying there for 7 min
			v := max(89, 97-i)
			publish(t, c, d.MQTT.TopicPrefix+"telemetry", fmt.Appendf(nil, `{"ts":%d,"values":{"spo2":%d}}`, start.Add(time.Duration(i)*30*time.Second).UnixMilli(), v))
		}
		// The series crosses the warning, high and critical bands in turn:
		// one alert, raised at the first and upgraded by repeats.
		raised := expectTransition(t, ph, "spo2", "raised")
		if raised.Status != "open" || raised.EscalationLevel != 1 {
			t.Fatalf("raised = %+v, want an open alert at level 1", raised.Alert)
		}
		waitSeverity(t, ph, "spo2", "critical")
		clock.Advance(61 * time.Second) // critical: unacknowledged for 60 s
		esc := expectTransition(t, ph, "spo2", "escalated")
		if esc.EscalationLevel != 2 {
			t.Errorf("escalation level %d, want 2", esc.EscalationLevel)
		}
		if _, err := a.Alerts.Acknowledge(t.Context(), raised.ID, "nurse-kim", "calling"); err != nil {
			t.Fatal(err)
		}
		ack := expectTransition(t, ph, "spo2", "acknowledged")
		if ack.AcknowledgedBy != "nurse-kim" || ack.Status != "acknowledged" {
			t.Errorf("acknowledged = %+v", ack.Alert)
		}
		clock.Advance(5 * time.Minute) // acknowledgement stops the chain
		if _, err := a.Alerts.Resolve(t.Context(), raised.ID, "nurse-kim", "visited", "on oxygen"); err != nil {
			t.Fatal(err)
		}
		res := expectTransition(t, ph, "spo2", "resolved")
		if res.Outcome != "visited" || res.Status != "resolved" {
			t.Errorf("resolved = %+v", res.Alert)
		}
		if _, err := a.Alerts.Resolve(t.Context(), raised.ID, "nurse-kim", "visited", ""); err == nil {
			t.Error("resolving a resolved alert succeeded")
		}
		// The writer stores every transition published on CARE_ALERTS as
		// one point.
		testenv.WaitFor(t, 20*time.Second, "alert transitions in InfluxDB", func() bool {
			n := alertPoints(t, in, db, d.ResidentID)
			return n >= 4 && uint64(n) == streamMsgs(t, a.JS, model.StreamAlerts, "care.alerts."+d.ResidentID+".>")
		})
	})

	t.Run("SOS: every tier at once", func(t *testing.T) {
		d, c := dev("sos")
		ph := phone(t, a.NATSURL(), d.ResidentID, a.NATSOptions()...)
		publish(t, c, d.MQTT.TopicPrefix+"event", []byte(`{"type":"sos"}`))
		m := expectTransition(t, ph, "sos", "raised")
		if m.Severity != "critical" || m.EscalationLevel < 5 {
			t.Errorf("SOS raised = %+v, want critical at the top tier", m.Alert)
		}
		if _, err := a.Alerts.Acknowledge(t.Context(), m.ID, "cg-1", ""); err != nil {
			t.Fatal(err)
		}
		expectTransition(t, ph, "sos", "acknowledged")
	})

	t.Run("fall not cancelled within 60 s", func(t *testing.T) {
		d, c := dev("radar")
		ph := phone(t, a.NATSURL(), d.ResidentID, a.NATSOptions()...)
		publish(t, c, d.MQTT.TopicPrefix+"event", []byte(`{"type":"fall"}`))
		expectNone(t, ph, "fall", 1500*time.Millisecond) // a fall alone waits for a cancel
		clock.Advance(61 * time.Second)
		if m := expectTransition(t, ph, "fall", "raised"); m.Severity != "critical" {
			t.Errorf("fall severity %s, want critical", m.Severity)
		}
	})

	t.Run("fall cancelled within 60 s", func(t *testing.T) {
		d, c := dev("wearable")
		ph := phone(t, a.NATSURL(), d.ResidentID, a.NATSOptions()...)
		now := clock.Now()
		publish(t, c, d.MQTT.TopicPrefix+"event", fmt.Appendf(nil, `{"ts":%d,"type":"fall"}`, now.UnixMilli()))
		publish(t, c, d.MQTT.TopicPrefix+"event", fmt.Appendf(nil, `{"ts":%d,"type":"fall_cancel"}`, now.Add(20*time.Second).UnixMilli()))
		testenv.WaitFor(t, 10*time.Second, "both events stored", func() bool {
			return countPoints(t, in, db, "events", "value", d.ID) == 2
		})
		clock.Advance(61 * time.Second)
		expectNone(t, ph, "fall", 3*time.Second)
	})

	t.Run("inactivity", func(t *testing.T) {
		d, c := dev("motion")
		ph := phone(t, a.NATSURL(), d.ResidentID, a.NATSOptions()...)
		publish(t, c, d.MQTT.TopicPrefix+"telemetry", fmt.Appendf(nil, `{"ts":%d,"values":{"motion":3}}`, clock.Now().UnixMilli()))
		testenv.WaitFor(t, 10*time.Second, "the motion stored", func() bool {
			return countPoints(t, in, db, "readings", "motion", d.ID) == 1
		})
		clock.Advance(8*time.Hour + time.Minute)
		if m := expectTransition(t, ph, "inactivity", "raised"); m.Severity != "info" {
			t.Errorf("8 h without motion: severity %s, want info", m.Severity)
		}
	})

	t.Run("device offline via Last Will", func(t *testing.T) {
		d := register(t, base, "door")
		ph := phone(t, a.NATSURL(), d.ResidentID, a.NATSOptions()...)
		var conn net.Conn
		opts := mqtt.NewClientOptions().AddBroker(mq.URL).SetClientID(d.ID).SetAutoReconnect(false).
			SetWill(d.MQTT.TopicPrefix+"status", `{"online":false}`, 1, true).
			SetCustomOpenConnectionFn(func(u *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
				c, err := net.Dial("tcp", u.Host)
				conn = c
				return c, err
			})
		c := mqtt.NewClient(opts)
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		publish(t, c, d.MQTT.TopicPrefix+"status", []byte(`{"online":true,"battery_pct":90}`))
		testenv.WaitFor(t, 10*time.Second, "the device online", func() bool {
			p, ok := a.Presence.Presence(d.ID)
			return ok && p.Online
		})
		start := clock.Now()
		conn.Close() // the link dies without DISCONNECT: the broker sends the Will
		// Within the Will's grace (2 min for a door contact) nothing pages:
		// most Wills are a link back within seconds.
		expectNone(t, ph, "device_offline", 2*time.Second)
		var m alertMsg
		for got := false; !got; {
			clock.Advance(10 * time.Second)
			select {
			case m = <-ph:
				got = m.Rule == "device_offline" && m.Transition == "raised"
			case <-time.After(300 * time.Millisecond):
			}
			if clock.Now().Sub(start) > 10*time.Minute {
				t.Fatal("no device_offline 10 simulated minutes after the Will")
			}
		}
		if m.Severity != "high" || m.DeviceID != d.ID {
			t.Errorf("device offline = %+v, want high for %s", m.Alert, d.ID)
		}
	})
}

// alertPoints counts the resident's points in the alerts measurement.
func alertPoints(t *testing.T, in *testenv.Influx, db, residentID string) int {
	t.Helper()
	out := in.QueryDB(t, db, fmt.Sprintf(`SELECT count("value") FROM "alerts" WHERE resident_id='%s'`, residentID))
	var r struct {
		Results []struct {
			Series []struct {
				Values [][]json.Number `json:"values"`
			} `json:"series"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || len(r.Results) == 0 || len(r.Results[0].Series) == 0 {
		return 0
	}
	n, _ := r.Results[0].Series[0].Values[0][1].Int64()
	return int(n)
}
