package mqttsub

import (
	"context"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/ingest"
	"github.com/carehub/carehub/ingest/decode"
	"github.com/carehub/carehub/internal/metrics"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/testenv"
)

// TestEventsNotBehindTelemetry (issue 9 item 7): through an external
// broker, telemetry that JetStream cannot take (its stream is gone) fills
// the telemetry connection's in-flight window and stalls its handler; an
// SOS from another home must still be stored in CARE_EVENTS within 2 s,
// because events have a subscriber connection, queue and publish window
// of their own. With one connection for everything the SOS waits behind
// the stuck telemetry.
func TestEventsNotBehindTelemetry(t *testing.T) {
	mq := testenv.StartMosquitto(t, "")
	nc, js := testenv.JetStream(t, testenv.NATS(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := js.DeleteStream(ctx, model.StreamReadings); err != nil {
		t.Fatal(err)
	}
	devs := fakeDevices{
		"w1": {ID: "w1", Kind: "wearable", ResidentID: "r1", HomeID: "h1"},
		"s2": {ID: "s2", Kind: "sos", ResidentID: "r2", HomeID: "h2"},
	}
	in, err := ingest.New(ingest.Options{NC: nc, Devices: devs, Presence: nopPresence{}, Metrics: metrics.New(), Log: zerolog.Nop(),
		PublishWindow: 1, EventWindow: 1, Limits: decode.Limits{MaxPayload: 64 << 10, MaxAge: time.Hour, MaxFuture: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Options{BrokerURL: mq.URL, ShareGroup: testenv.ID("g"), Connections: 1, InstanceID: testenv.ID("i"),
		Intake: in, Log: zerolog.Nop(), MaxInFlight: 1})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Logf("Run ended: %v", err) // the cancellation, as asked
		}
	}()
	testenv.WaitFor(t, 15*time.Second, "ingest subscribed", func() bool { return p.Ready() == nil })

	connect := func(id string) mqtt.Client {
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(mq.URL).SetClientID(id))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("connect %s: %v", id, tok.Error())
		}
		t.Cleanup(func() { c.Disconnect(0) })
		return c
	}
	w, s := connect("w1"), connect("s2")
	for range 5 {
		w.Publish(model.DeviceTopic("w1", model.TopicTelemetry), 1, false, `{"values":{"heart_rate":70}}`).WaitTimeout(5 * time.Second)
	}
	pressed := time.Now()
	s.Publish(model.DeviceTopic("s2", model.TopicEvent), 1, false, `{"type":"sos"}`).WaitTimeout(5 * time.Second)
	var stored time.Duration
	for time.Since(pressed) < 2*time.Second && stored == 0 {
		st, err := js.Stream(ctx, model.StreamEvents)
		if err != nil {
			t.Fatal(err)
		}
		if info, err := st.Info(ctx, jetstream.WithSubjectFilter(model.EventSubject("r2", "s2"))); err == nil && info.State.Msgs > 0 {
			stored = time.Since(pressed)
			break
		}
		time.Sleep(20 * time.Millisecond) // polling the stream until the deadline
	}
	if stored == 0 {
		t.Fatal("the SOS was not in CARE_EVENTS within 2 s while telemetry was stuck")
	}
	t.Logf("SOS stored %v after the press, telemetry stuck", stored)
}

type fakeDevices map[string]devices.Device

func (f fakeDevices) Device(id string) (devices.Device, bool) { d, ok := f[id]; return d, ok }

type nopPresence struct{}

func (nopPresence) Seen(string, time.Time)  {}
func (nopPresence) Report(devices.Presence) {}
