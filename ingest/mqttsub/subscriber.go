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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/ingest"
	"github.com/carehub/carehub/internal/coalesce"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/redact"
)

// ConnectionStride separates the client ids of one instance's connections
// to different brokers: broker k's telemetry connections are
// {instance}-ingest-{k*ConnectionStride+i}, so that a changed connection
// count never renames another broker's sessions. It is the most
// connections an instance opens to one broker (CARE_MQTT_CONNECTIONS).
const ConnectionStride = 64

// Options configures the subscriber.
type Options struct {
	BrokerURL string // tcp://host:port: the one broker when BrokerURLs is empty
	// BrokerURLs are several brokers devices are partitioned across: the
	// subscriber opens Connections+1 connections to each. Their order
	// names the persistent sessions (ClientID): add brokers at the end.
	BrokerURLs  []string
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

	// Adopted marks the sessions of another instance (InstanceID) that
	// is down, drained by this one until it is back: its connections do
	// not reconnect, so that the owner's return, which takes each session
	// over at the broker, is not fought over.
	Adopted bool

	// MaxInFlight bounds the messages per connection that were handed to
	// the intake but not yet confirmed. When it is reached the MQTT handler
	// waits, paho stops reading, and the broker holds further messages:
	// back-pressure instead of an unbounded queue. <= 0 means
	// ingest.DefaultMaxInFlight. The intake's publish windows should hold
	// Connections×MaxInFlight telemetry and MaxInFlight events.
	MaxInFlight int

	// ReadWait, when > 0, makes each telemetry connection wait this long
	// before reading when nothing is buffered (coalesce.DialMQTTWaiting):
	// at a steady rate a read then brings the messages of a few
	// milliseconds, not one. The events connection never waits. Plain TCP
	// only (TLS connections read as paho does).
	ReadWait time.Duration
}

// Subscriber subscribes to device topics, hands each message to the
// intake and only once it is stored (or rejected) acknowledges it to the
// broker.
type Subscriber struct {
	o       Options
	clients []mqtt.Client
	wg      sync.WaitGroup

	mu        sync.Mutex
	connected map[int]bool // by connection number: broker×(Connections+1)+i

	// For Unsubscribe's wait: messages received, and how many are handed
	// to the intake but not yet acknowledged.
	received atomic.Int64
	inFlight atomic.Int64
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
	if len(o.BrokerURLs) == 0 {
		o.BrokerURLs = []string{o.BrokerURL}
	}
	if o.Connections > ConnectionStride && len(o.BrokerURLs) > 1 {
		return nil, fmt.Errorf("mqttsub: at most %d connections to each of several brokers", ConnectionStride)
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

// ClientID names connection i (0..Connections) of broker k: telemetry
// connections {instance}-ingest-{k*ConnectionStride+i}, the events
// connection {instance}-ingest-events, on broker k > 0
// {instance}-ingest-events-{k}. Broker 0's ids are those of a single
// broker, so adding brokers keeps its sessions.
func ClientID(instance string, broker, i, connections int) string {
	if i == connections {
		if broker == 0 {
			return instance + "-ingest-events"
		}
		return instance + "-ingest-events-" + strconv.Itoa(broker)
	}
	return instance + "-ingest-" + strconv.Itoa(broker*ConnectionStride+i)
}

// Run connects the subscriber connections and processes messages until ctx
// ends. Then it stops taking messages, waits for what is in flight to be
// confirmed by JetStream and acknowledged, and disconnects.
func (s *Subscriber) Run(ctx context.Context) error {
	stop := make(chan struct{})
	// To each broker, connections 0..n-1 take telemetry and status;
	// connection n takes events alone. All connect at once, so that a
	// broker that is down does not hold up the others.
	type connecting struct {
		tok       mqtt.Token
		broker, i int
	}
	var toks []connecting
	for k, url := range s.o.BrokerURLs {
		for i := range s.o.Connections + 1 {
			q := make(chan *pending, s.o.MaxInFlight)
			c := s.newClient(ctx, url, k, i, q)
			s.clients = append(s.clients, c)
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.acker(ctx, q, stop)
			}()
			toks = append(toks, connecting{c.Connect(), k, i})
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, c := range toks {
		if !c.tok.WaitTimeout(time.Until(deadline)) || c.tok.Error() != nil {
			err := c.tok.Error()
			if err == nil {
				err = errors.New("timed out")
			}
			s.o.Log.Warn().Err(redact.Err(err)).Str("broker", redact.URL(s.o.BrokerURLs[c.broker])).Int("conn", c.i).
				Msg("mqtt connect failed; retrying in the background")
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

// Ready reports whether every subscriber connection is up; with several
// brokers, the error names each broker that is not (its URL without a
// password).
func (s *Subscriber) Ready() error {
	per := s.o.Connections + 1
	var down []string
	for k, url := range s.o.BrokerURLs {
		if up := s.up(k); up < per {
			if len(s.o.BrokerURLs) == 1 {
				return fmt.Errorf("mqtt: %d of %d subscriber connections up", up, per)
			}
			down = append(down, fmt.Sprintf("broker %s: %d of %d subscriber connections up", redact.URL(url), up, per))
		}
	}
	if len(down) > 0 {
		return fmt.Errorf("mqtt: %s", strings.Join(down, "; "))
	}
	return nil
}

// Brokers is the number of brokers the subscriber drains.
func (s *Subscriber) Brokers() int { return len(s.o.BrokerURLs) }

// BrokerReady reports whether every connection to broker k (its position
// in BrokerURLs) is up; the error names the broker without a password.
func (s *Subscriber) BrokerReady(k int) error {
	if up, per := s.up(k), s.o.Connections+1; up < per {
		return fmt.Errorf("mqtt broker %s: %d of %d subscriber connections up", redact.URL(s.o.BrokerURLs[k]), up, per)
	}
	return nil
}

// up counts broker k's connections that are up.
func (s *Subscriber) up(k int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	per, n := s.o.Connections+1, 0
	for i := range per {
		if s.connected[k*per+i] {
			n++
		}
	}
	return n
}

func (s *Subscriber) setConnected(broker, i int, up bool) {
	s.mu.Lock()
	s.connected[broker*(s.o.Connections+1)+i] = up
	s.mu.Unlock()
}

func (s *Subscriber) newClient(ctx context.Context, url string, broker, i int, q chan<- *pending) mqtt.Client {
	events := i == s.o.Connections
	log := s.o.Log.With().Int("conn", i).Bool("events", events).Logger()
	if len(s.o.BrokerURLs) > 1 {
		log = log.With().Str("broker", redact.URL(url)).Logger()
	}
	clientID := ClientID(s.o.InstanceID, broker, i, s.o.Connections)
	subs, unsubs := s.telemetryFilters(), s.eventFilters()
	if events {
		subs, unsubs = unsubs, subs
	}
	opts := mqtt.NewClientOptions().
		AddBroker(url).
		SetClientID(clientID).
		SetUsername(s.o.Username).
		SetPassword(s.o.Password).
		// A persistent session: what the broker received for carehub while
		// it was down, or sent but never saw acknowledged, is delivered on
		// reconnect [MQTT-3.1.2-4].
		SetCleanSession(false).
		SetAutoAckDisabled(true).
		SetOrderMatters(true). // one handler goroutine per connection, never one per message
		SetAutoReconnect(!s.o.Adopted).
		SetConnectRetry(!s.o.Adopted).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(5 * time.Second).
		SetKeepAlive(30 * time.Second).
		SetResumeSubs(true).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { s.handle(ctx, m, q) })
	switch {
	case coalesce.PlainTCP(url) && !events && s.o.ReadWait > 0:
		opts.SetCustomOpenConnectionFn(coalesce.DialMQTTWaiting(s.o.ReadWait))
	case coalesce.PlainTCP(url):
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
		s.setConnected(broker, i, true)
		log.Info().Msg("mqtt subscriber connected")
	})
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		s.setConnected(broker, i, false)
		log.Warn().Err(redact.Err(err)).Msg("mqtt subscriber connection lost")
	})
	return mqtt.NewClient(opts)
}

// handle runs on the connection's paho goroutine, one message at a time.
func (s *Subscriber) handle(ctx context.Context, m mqtt.Message, q chan<- *pending) {
	if ctx.Err() != nil {
		return // shutting down: not acknowledged, so the broker keeps it
	}
	s.received.Add(1)
	taken := s.o.Intake.Take(ctx, m.Topic(), m.Payload(), "") // paho speaks MQTT 3.1.1: no content type
	if taken == nil {
		m.Ack() // nothing to store: the rejection is the outcome
		return
	}
	s.inFlight.Add(1)
	select {
	case q <- &pending{mqttMsg: m, taken: taken}: // blocks when MaxInFlight are unconfirmed: back-pressure
	case <-ctx.Done():
		// Not acknowledged: the broker redelivers it to the next session.
		s.inFlight.Add(-1)
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
			s.inFlight.Add(-1)
			continue // shutting down: leave it unacknowledged for redelivery
		}
		pd.mqttMsg.Ack()
		s.inFlight.Add(-1)
	}
}

// Unsubscribe is the first half of ending these sessions for good (an
// instance retired: instances.Retire). Every connection unsubscribes, so
// the broker gives the sessions no further share of the messages, and
// Unsubscribe returns once what the broker still held for them has come,
// been stored and been acknowledged: nothing for quiet, nothing in flight.
// The caller then stops Run and calls EndSessions.
func (s *Subscriber) Unsubscribe(ctx context.Context, quiet time.Duration) error {
	for n, c := range s.clients {
		filters := s.telemetryFilters()
		if n%(s.o.Connections+1) == s.o.Connections {
			filters = s.eventFilters()
		}
		all := make([]string, 0, len(filters))
		for f := range filters {
			all = append(all, f)
		}
		tok := c.Unsubscribe(all...)
		select {
		case <-tok.Done():
			if err := tok.Error(); err != nil {
				return fmt.Errorf("mqtt unsubscribe: %w", err)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	seen, since := s.received.Load(), time.Now()
	tick := time.NewTicker(quiet / 4)
	defer tick.Stop()
	for {
		if n := s.received.Load(); n != seen {
			seen, since = n, time.Now()
		}
		if s.inFlight.Load() == 0 && time.Since(since) >= quiet {
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// EndSessions removes these sessions from the brokers: each client id
// connects once with a clean session, which discards the persistent one
// [MQTT-3.1.2-6], and disconnects. Call it after Unsubscribe and after Run
// has returned; whatever the sessions still held is dropped.
func (s *Subscriber) EndSessions(ctx context.Context) error {
	var errs []error
	for k, url := range s.o.BrokerURLs {
		for i := range s.o.Connections + 1 {
			opts := mqtt.NewClientOptions().AddBroker(url).SetClientID(ClientID(s.o.InstanceID, k, i, s.o.Connections)).
				SetUsername(s.o.Username).SetPassword(s.o.Password).SetCleanSession(true).
				SetAutoReconnect(false).SetConnectTimeout(10 * time.Second)
			if s.o.TLS != nil {
				opts.SetTLSConfig(s.o.TLS.Clone())
			}
			c := mqtt.NewClient(opts)
			tok := c.Connect()
			select {
			case <-tok.Done():
			case <-ctx.Done():
				return ctx.Err()
			}
			if err := tok.Error(); err != nil {
				errs = append(errs, fmt.Errorf("broker %s: %w", redact.URL(url), redact.Err(err)))
				continue
			}
			c.Disconnect(250)
		}
	}
	return errors.Join(errs...)
}
