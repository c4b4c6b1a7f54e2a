// Package mqttsub feeds the intake from an MQTT broker: carehub's own
// subscriber connections (paho, MQTT 3.1.1) to an external Mosquitto, or
// to the embedded broker for the Last Wills it publishes. Each message is
// handed to ingest.Intake and acknowledged to the broker only once the
// intake has it stored in JetStream or has rejected it.
package mqttsub

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/ingest"
	"github.com/carehub/carehub/internal/coalesce"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/redact"
)

// Options configures the subscriber.
type Options struct {
	BrokerURL   string // tcp://host:port
	Username    string // carehub's own broker login
	Password    string
	ShareGroup  string // $share/{group}/...: instances of carehub split the load
	Connections int    // telemetry connections of this instance; events get one more
	InstanceID  string // names the persistent sessions: keep it stable across restarts
	// TLS is the client configuration for ssl:// and tls:// brokers
	// (CARE_TLS_CA_FILE); nil = the system's CAs.
	TLS *tls.Config

	// Intake takes every message.
	Intake *ingest.Intake
	Log    zerolog.Logger

	// MaxInFlight bounds the messages per connection that were handed to
	// the intake but not yet confirmed. When it is reached the MQTT handler
	// waits, paho stops reading, and the broker holds further messages:
	// back-pressure instead of an unbounded queue. <= 0 means
	// ingest.DefaultMaxInFlight. The intake's publish windows should hold
	// Connections×MaxInFlight telemetry and MaxInFlight events.
	MaxInFlight int
}

// Subscriber subscribes to device topics, hands each message to the
// intake and only once it is stored (or rejected) acknowledges it to the
// broker.
type Subscriber struct {
	o       Options
	clients []mqtt.Client
	wg      sync.WaitGroup

	mu        sync.Mutex
	connected map[int]bool
}

// pending is one MQTT message whose normalized messages are on their way to
// JetStream; the MQTT message is acknowledged when all of them are stored.
type pending struct {
	mqttMsg mqtt.Message
	taken   *ingest.Pending
}

// New validates the options; Run connects.
func New(o Options) (*Subscriber, error) {
	if o.Intake == nil {
		return nil, errors.New("mqttsub: the subscriber needs an intake")
	}
	if o.Connections < 1 {
		o.Connections = 1
	}
	if o.MaxInFlight < 1 {
		o.MaxInFlight = ingest.DefaultMaxInFlight
	}
	if o.ShareGroup == "" {
		o.ShareGroup = "carehub"
	}
	return &Subscriber{o: o, connected: map[int]bool{}}, nil
}

// telemetryFilters are the subscriptions of the telemetry connections;
// eventFilters those of the events connection, which nothing else shares,
// so that an SOS never waits behind a backlog of telemetry in a
// connection's handler, queue or MQTT in-flight window.
func (s *Subscriber) telemetryFilters() map[string]byte {
	return map[string]byte{
		s.filter(model.TopicTelemetry): 1,
		s.filter(model.TopicStatus):    1,
	}
}

func (s *Subscriber) eventFilters() map[string]byte {
	return map[string]byte{s.filter(model.TopicEvent): 1}
}

func (s *Subscriber) filter(kind string) string {
	return "$share/" + s.o.ShareGroup + "/" + model.TopicPrefix + "+/" + kind
}

// Run connects the subscriber connections and processes messages until ctx
// ends. Then it stops taking messages, waits for what is in flight to be
// confirmed by JetStream and acknowledged, and disconnects.
func (s *Subscriber) Run(ctx context.Context) error {
	stop := make(chan struct{})
	// Connections 0..n-1 take telemetry and status; connection n takes
	// events alone.
	for i := range s.o.Connections + 1 {
		q := make(chan *pending, s.o.MaxInFlight)
		c := s.newClient(ctx, i, q, i == s.o.Connections)
		s.clients = append(s.clients, c)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.acker(ctx, q, stop)
		}()
		tok := c.Connect()
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			err := tok.Error()
			if err == nil {
				err = errors.New("timed out")
			}
			s.o.Log.Warn().Err(redact.Err(err)).Int("conn", i).Msg("mqtt connect failed; retrying in the background")
		}
	}
	<-ctx.Done()
	// Handlers stop taking messages (what they refuse stays un-acked and is
	// redelivered to the next session); the ackers confirm and acknowledge
	// what is in flight while the connections are still up; then the
	// connections close. The queues are never closed: a paho handler may
	// still be running after Disconnect.
	close(stop)
	s.wg.Wait()
	for _, c := range s.clients {
		c.Disconnect(250)
	}
	return nil
}

// Ready reports whether every subscriber connection is up.
func (s *Subscriber) Ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	up := 0
	for _, ok := range s.connected {
		if ok {
			up++
		}
	}
	if up < s.o.Connections+1 {
		return fmt.Errorf("mqtt: %d of %d subscriber connections up", up, s.o.Connections+1)
	}
	return nil
}

func (s *Subscriber) setConnected(i int, up bool) {
	s.mu.Lock()
	s.connected[i] = up
	s.mu.Unlock()
}

func (s *Subscriber) newClient(ctx context.Context, i int, q chan<- *pending, events bool) mqtt.Client {
	log := s.o.Log.With().Int("conn", i).Bool("events", events).Logger()
	clientID := s.o.InstanceID + "-ingest-" + strconv.Itoa(i)
	subs, unsubs := s.telemetryFilters(), s.eventFilters()
	if events {
		clientID = s.o.InstanceID + "-ingest-events"
		subs, unsubs = unsubs, subs
	}
	opts := mqtt.NewClientOptions().
		AddBroker(s.o.BrokerURL).
		SetClientID(clientID).
		SetUsername(s.o.Username).
		SetPassword(s.o.Password).
		// A persistent session: what the broker received for carehub while
		// it was down, or sent but never saw acknowledged, is delivered on
		// reconnect [MQTT-3.1.2-4].
		SetCleanSession(false).
		SetAutoAckDisabled(true).
		SetOrderMatters(true). // one handler goroutine per connection, never one per message
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(5 * time.Second).
		SetKeepAlive(30 * time.Second).
		SetResumeSubs(true).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { s.handle(ctx, m, q) })
	if coalesce.PlainTCP(s.o.BrokerURL) {
		opts.SetCustomOpenConnectionFn(coalesce.DialMQTT)
	}
	if s.o.TLS != nil {
		opts.SetTLSConfig(s.o.TLS.Clone())
	}
	opts.SetOnConnectHandler(func(c mqtt.Client) {
		// Subscribing again on every connect is harmless for a resumed
		// session and required for a new one. A session persisted by an
		// older carehub may still hold the other connections' filters:
		// they are dropped, so that events reach only the events
		// connection.
		tok := c.SubscribeMultiple(subs, nil)
		if tok.Wait(); tok.Error() != nil {
			log.Error().Err(tok.Error()).Msg("mqtt subscribe failed")
			return
		}
		old := make([]string, 0, len(unsubs))
		for f := range unsubs {
			old = append(old, f)
		}
		if ut := c.Unsubscribe(old...); ut.Wait() && ut.Error() != nil {
			log.Warn().Err(ut.Error()).Msg("mqtt unsubscribe of the other connections' filters failed")
		}
		s.setConnected(i, true)
		log.Info().Msg("mqtt subscriber connected")
	})
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		s.setConnected(i, false)
		log.Warn().Err(redact.Err(err)).Msg("mqtt subscriber connection lost")
	})
	return mqtt.NewClient(opts)
}

// handle runs on the connection's paho goroutine, one message at a time.
func (s *Subscriber) handle(ctx context.Context, m mqtt.Message, q chan<- *pending) {
	if ctx.Err() != nil {
		return // shutting down: not acknowledged, so the broker keeps it
	}
	taken := s.o.Intake.Take(ctx, m.Topic(), m.Payload(), "") // paho speaks MQTT 3.1.1: no content type
	if taken == nil {
		m.Ack() // nothing to store: the rejection is the outcome
		return
	}
	select {
	case q <- &pending{mqttMsg: m, taken: taken}: // blocks when MaxInFlight are unconfirmed: back-pressure
	case <-ctx.Done():
		// Not acknowledged: the broker redelivers it to the next session.
	}
}

// acker confirms messages in arrival order: it waits for JetStream's ack of
// every normalized message of an MQTT message, republishing on failure, and
// then acknowledges the MQTT message.
func (s *Subscriber) acker(ctx context.Context, q <-chan *pending, stop <-chan struct{}) {
	for {
		var pd *pending
		select {
		case pd = <-q:
		case <-stop:
			// Drain what the handlers queued before they stopped.
			select {
			case pd = <-q:
			default:
				return
			}
		}
		if pd.taken.Confirm(ctx) != nil {
			continue // shutting down: leave it unacknowledged for redelivery
		}
		pd.mqttMsg.Ack()
	}
}
