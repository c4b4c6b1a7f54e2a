package ingest

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/coalesce"
	"github.com/carehub/carehub/internal/metrics"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/redact"
)

// DeviceSource resolves a device to its resident and home. The registry
// satisfies it from memory: it is called for every message.
type DeviceSource interface {
	Device(id string) (devices.Device, bool)
}

// PresenceRecorder keeps what carehub last heard from each device.
type PresenceRecorder interface {
	Seen(deviceID string, at time.Time)
	Report(p devices.Presence)
}

// PipelineOptions configures the MQTT intake.
type PipelineOptions struct {
	BrokerURL   string // tcp://host:port
	Username    string // carehub's own broker login
	Password    string
	ShareGroup  string // $share/{group}/...: instances of carehub split the load
	Connections int    // subscriber connections of this instance
	InstanceID  string // names the persistent sessions: keep it stable across restarts
	// TLS is the client configuration for ssl:// and tls:// brokers
	// (CARE_TLS_CA_FILE); nil = the system's CAs.
	TLS *tls.Config

	NC *nats.Conn
	// EventNC, when set, is a second NATS connection that carries only
	// events: an SOS is then not queued behind telemetry in the socket's
	// write buffer nor in the JetStream publish window (item 7 of issue 9).
	// Nil uses NC, still with a publish window of its own.
	EventNC  *nats.Conn
	Quota    Quota
	Devices  DeviceSource
	Presence PresenceRecorder
	Limits   Limits
	Clock    func() time.Time
	Metrics  *metrics.Registry
	Log      zerolog.Logger

	// MaxInFlight bounds the messages per connection that were published to
	// JetStream but not yet confirmed. When it is reached the MQTT handler
	// waits, paho stops reading, and the broker holds further messages:
	// back-pressure instead of an unbounded queue.
	MaxInFlight int
}

// DefaultMaxInFlight fits Mosquitto's production setting of
// max_inflight_messages (deploy/mosquitto) with headroom.
const DefaultMaxInFlight = 4096

// Pipeline subscribes to device topics, validates and normalizes messages,
// publishes them to JetStream and only then acknowledges them to the broker.
type Pipeline struct {
	o       PipelineOptions
	js      jetstream.JetStream // telemetry and status
	ejs     jetstream.JetStream // events: a window of their own
	clients []mqtt.Client
	quota   *buckets // telemetry, in records
	evQuota *buckets // everyday events and status reports, in messages
	wg      sync.WaitGroup
	m       pipelineMetrics
	limiter *logLimiter

	mu        sync.Mutex
	connected map[int]bool
}

type pipelineMetrics struct {
	messages   *metrics.CounterVec
	values     *metrics.Counter
	rejected   *metrics.CounterVec
	publishLat *metrics.Histogram
	lag        *metrics.Histogram
	retries    *metrics.Counter
}

// pending is one MQTT message whose normalized messages are on their way to
// JetStream; the MQTT message is acknowledged when all of them are stored.
type pending struct {
	mqttMsg mqtt.Message
	js      jetstream.JetStream // the publish window the messages went into
	pubs    []pendingPub
	start   time.Time
}

type pendingPub struct {
	msg *nats.Msg
	fut jetstream.PubAckFuture
}

// NewPipeline validates the options; Run connects.
func NewPipeline(o PipelineOptions) (*Pipeline, error) {
	if o.NC == nil || o.Devices == nil || o.Presence == nil || o.Metrics == nil {
		return nil, errors.New("ingest: pipeline needs NATS, devices, presence and metrics")
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Connections < 1 {
		o.Connections = 1
	}
	if o.MaxInFlight < 1 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.ShareGroup == "" {
		o.ShareGroup = "carehub"
	}
	js, err := jetstream.New(o.NC,
		jetstream.WithPublishAsyncMaxPending(o.MaxInFlight*o.Connections),
		jetstream.WithPublishAsyncTimeout(10*time.Second))
	if err != nil {
		return nil, err
	}
	enc := o.EventNC
	if enc == nil {
		enc = o.NC
	}
	ejs, err := jetstream.New(enc,
		jetstream.WithPublishAsyncMaxPending(o.MaxInFlight),
		jetstream.WithPublishAsyncTimeout(10*time.Second))
	if err != nil {
		return nil, err
	}
	o.Quota = o.Quota.withDefaults()
	p := &Pipeline{o: o, js: js, ejs: ejs, limiter: newLogLimiter(time.Minute, 10000), connected: map[int]bool{},
		quota:   newBuckets(o.Quota.Rate, o.Quota.Burst, o.Quota.MaxDevices),
		evQuota: newBuckets(o.Quota.EventRate, o.Quota.EventBurst, o.Quota.MaxDevices)}
	r := o.Metrics
	p.m = pipelineMetrics{
		messages:   r.Counter("carehub_ingest_messages_total", "MQTT messages by topic kind and outcome (accepted, partial, rejected).", "kind", "outcome"),
		values:     r.Counter("carehub_ingest_values_total", "Telemetry values accepted.").With(),
		rejected:   r.Counter("carehub_ingest_rejected_total", "Rejected device input by reason (contract §1).", "reason"),
		publishLat: r.Histogram("carehub_ingest_jetstream_publish_seconds", "MQTT arrival to JetStream confirmation.", metrics.DefBuckets).With(),
		lag:        r.Histogram("carehub_ingest_device_lag_seconds", "Reading timestamp to JetStream confirmation (device clock permitting).", metrics.DefBuckets).With(),
		retries:    r.Counter("carehub_ingest_jetstream_retries_total", "JetStream publishes retried after a failure.").With(),
	}
	for _, reason := range allReasons {
		p.m.rejected.With(reason) // present at zero, so dashboards see every reason
	}
	return p, nil
}

var allReasons = []string{ReasonEmpty, ReasonTooLarge, ReasonMalformed, ReasonBadTopic, ReasonUnknownDevice,
	ReasonDisabledDevice, ReasonTopicNotOwn, ReasonUnknownMetric, ReasonOutOfRange, ReasonNotFinite, ReasonBadValue,
	ReasonBadTimestamp, ReasonFuture, ReasonTooOld, ReasonUnitMismatch, ReasonEventType, ReasonNoValues,
	ReasonAuthFailed, ReasonSubscribe, ReasonWillNotOwn, ReasonRateLimited, ReasonTooManyRecords, ReasonEventNotForKind}

// Subscriptions are the filters carehub's ingest subscribes with.
func (p *Pipeline) Subscriptions() map[string]byte {
	f := p.telemetryFilters()
	for k, v := range p.eventFilters() {
		f[k] = v
	}
	return f
}

// telemetryFilters are the subscriptions of the telemetry connections;
// eventFilters those of the events connection, which nothing else shares,
// so that an SOS never waits behind a backlog of telemetry in a
// connection's handler, queue or MQTT in-flight window.
func (p *Pipeline) telemetryFilters() map[string]byte {
	return map[string]byte{
		p.filter(model.TopicTelemetry): 1,
		p.filter(model.TopicStatus):    1,
	}
}

func (p *Pipeline) eventFilters() map[string]byte {
	return map[string]byte{p.filter(model.TopicEvent): 1}
}

func (p *Pipeline) filter(kind string) string {
	return "$share/" + p.o.ShareGroup + "/" + model.TopicPrefix + "+/" + kind
}

// Run connects the subscriber connections and processes messages until ctx
// ends. Then it stops taking messages, waits for what is in flight to be
// confirmed by JetStream and acknowledged, and disconnects.
func (p *Pipeline) Run(ctx context.Context) error {
	stop := make(chan struct{})
	// Connections 0..n-1 take telemetry and status; connection n takes
	// events alone.
	for i := range p.o.Connections + 1 {
		q := make(chan *pending, p.o.MaxInFlight)
		c := p.newClient(ctx, i, q, i == p.o.Connections)
		p.clients = append(p.clients, c)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.acker(ctx, q, stop)
		}()
		tok := c.Connect()
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			err := tok.Error()
			if err == nil {
				err = errors.New("timed out")
			}
			p.o.Log.Warn().Err(redact.Err(err)).Int("conn", i).Msg("mqtt connect failed; retrying in the background")
		}
	}
	<-ctx.Done()
	// Handlers stop taking messages (what they refuse stays un-acked and is
	// redelivered to the next session); the ackers confirm and acknowledge
	// what is in flight while the connections are still up; then the
	// connections close. The queues are never closed: a paho handler may
	// still be running after Disconnect.
	close(stop)
	p.wg.Wait()
	for _, c := range p.clients {
		c.Disconnect(250)
	}
	return nil
}

// Ready reports whether every subscriber connection is up.
func (p *Pipeline) Ready() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	up := 0
	for _, ok := range p.connected {
		if ok {
			up++
		}
	}
	if up < p.o.Connections+1 {
		return fmt.Errorf("mqtt: %d of %d subscriber connections up", up, p.o.Connections+1)
	}
	return nil
}

func (p *Pipeline) setConnected(i int, up bool) {
	p.mu.Lock()
	p.connected[i] = up
	p.mu.Unlock()
}

func (p *Pipeline) newClient(ctx context.Context, i int, q chan<- *pending, events bool) mqtt.Client {
	log := p.o.Log.With().Int("conn", i).Bool("events", events).Logger()
	clientID := p.o.InstanceID + "-ingest-" + strconv.Itoa(i)
	subs, unsubs := p.telemetryFilters(), p.eventFilters()
	if events {
		clientID = p.o.InstanceID + "-ingest-events"
		subs, unsubs = unsubs, subs
	}
	opts := mqtt.NewClientOptions().
		AddBroker(p.o.BrokerURL).
		SetClientID(clientID).
		SetUsername(p.o.Username).
		SetPassword(p.o.Password).
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
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { p.handle(ctx, m, q) })
	if coalesce.PlainTCP(p.o.BrokerURL) {
		opts.SetCustomOpenConnectionFn(coalesce.DialMQTT)
	}
	if p.o.TLS != nil {
		opts.SetTLSConfig(p.o.TLS.Clone())
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
		p.setConnected(i, true)
		log.Info().Msg("mqtt subscriber connected")
	})
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		p.setConnected(i, false)
		log.Warn().Err(redact.Err(err)).Msg("mqtt subscriber connection lost")
	})
	return mqtt.NewClient(opts)
}

// handle runs on the connection's paho goroutine, one message at a time.
func (p *Pipeline) handle(ctx context.Context, m mqtt.Message, q chan<- *pending) {
	if ctx.Err() != nil {
		return // shutting down: not acknowledged, so the broker keeps it
	}
	pd := p.prepare(ctx, m, "") // paho speaks MQTT 3.1.1: no content type
	if pd == nil {
		return
	}
	select {
	case q <- pd: // blocks when MaxInFlight are unconfirmed: back-pressure
	case <-ctx.Done():
		// Not acknowledged: the broker redelivers it to the next session.
	}
}

// Ingest takes one device message from an in-process broker, before the
// broker acknowledges it to the device: it returns nil once every
// normalized message made from it is confirmed by JetStream, or once it is
// rejected (reported and counted like any other), and an error when ctx
// ends first, so that the broker does not acknowledge it and the device
// sends it again. With it the embedded broker never acknowledges a message
// that is not stored, not even in the instant a carehub session
// reconnects, and it needs no queue of its own for carehub.
func (p *Pipeline) Ingest(ctx context.Context, topic string, payload []byte, contentType string) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	m := &syncMessage{topic: topic, payload: payload}
	pd := p.prepare(ctx, m, contentType)
	if pd == nil {
		return nil // rejected: m.Ack was called
	}
	for i := range pd.pubs {
		if !p.confirm(ctx, pd.js, &pd.pubs[i]) {
			return fmt.Errorf("ingest: %s not stored: %w", topic, context.Cause(ctx))
		}
	}
	p.m.publishLat.Observe(time.Since(pd.start).Seconds())
	return nil
}

// syncMessage is a message handed to Ingest: an mqtt.Message whose Ack
// does nothing, since the broker acknowledges when Ingest returns.
type syncMessage struct {
	topic   string
	payload []byte
}

func (m *syncMessage) Duplicate() bool   { return false }
func (m *syncMessage) Qos() byte         { return 1 }
func (m *syncMessage) Retained() bool    { return false }
func (m *syncMessage) Topic() string     { return m.topic }
func (m *syncMessage) MessageID() uint16 { return 0 }
func (m *syncMessage) Payload() []byte   { return m.payload }
func (m *syncMessage) Ack()              {}

// prepare validates and decodes one message and starts the JetStream
// publishes of what it holds. contentType is the MQTT 5 content type, which
// only the embedded broker hands over; through an external broker SenML is
// recognised by its shape (contract §1). A message with nothing to store is
// reported, acknowledged and nil is returned.
func (p *Pipeline) prepare(ctx context.Context, m mqtt.Message, contentType string) *pending {
	now := p.o.Clock()
	topic := m.Topic()
	deviceID, kind, ok := ParseTopic(topic)
	if !ok || kind == model.TopicConfig {
		p.reject(deviceIDOrUnknown(topic), topic, kindOf(kind), Reject{Reason: ReasonBadTopic, Detail: "topic is not care/v1/dev/{device_id}/telemetry|event|status"}, now)
		m.Ack()
		return nil
	}
	dev, known := p.o.Devices.Device(deviceID)
	switch {
	case !known:
		p.reject(deviceID, topic, kind, Reject{Reason: ReasonUnknownDevice, Detail: "device " + deviceID + " is not registered"}, now)
		m.Ack()
		return nil
	case dev.Disabled:
		p.reject(deviceID, topic, kind, Reject{Reason: ReasonDisabledDevice, Detail: "device " + deviceID + " is disabled"}, now)
		m.Ack()
		return nil
	}
	payload := m.Payload()
	if len(payload) > p.o.Limits.MaxPayload {
		p.reject(deviceID, topic, kind, Reject{Reason: ReasonTooLarge, Detail: fmt.Sprintf("%d bytes, the limit is %d", len(payload), p.o.Limits.MaxPayload)}, now)
		m.Ack()
		return nil
	}

	// Telemetry and status are refused before decoding once the device
	// has used its quota: a flood costs a scan and a map lookup a
	// message. An array over the record cap is refused as such, and
	// still costs the device the cap. Status reports share the everyday
	// events' bucket, so that a device's telemetry flood does not also
	// hide its going offline.
	if kind == model.TopicTelemetry {
		records, maxRec := telemetryRecords(payload), p.o.Limits.MaxRecords
		if maxRec <= 0 {
			maxRec = DefaultMaxRecords
		}
		if records > maxRec {
			p.quota.take(deviceID, float64(maxRec), now)
			p.reject(deviceID, topic, kind, Reject{Reason: ReasonTooManyRecords,
				Detail: fmt.Sprintf("the array holds %d records; at most %d are accepted in one message: send a long catch-up in several messages", records, maxRec)}, now)
			p.m.messages.With(kind, "rejected").Inc()
			m.Ack()
			return nil
		}
		if !p.quota.take(deviceID, float64(records), now) {
			p.rateLimited(m, deviceID, topic, kind, now)
			return nil
		}
	}
	if kind == model.TopicStatus && !p.evQuota.admit(deviceID, now) {
		p.rateLimited(m, deviceID, topic, kind, now)
		return nil
	}

	pd := &pending{mqttMsg: m, js: p.js, start: now}
	var rejects []Reject
	switch kind {
	case model.TopicTelemetry:
		samples, rej := DecodeTelemetry(deviceID, payload, contentType, now, p.o.Limits)
		rejects = rej
		var latest time.Time
		readings := make([]model.Reading, 0, len(samples))
		for _, s := range samples {
			readings = append(readings, model.Reading{ResidentID: dev.ResidentID, HomeID: dev.HomeID, DeviceID: dev.ID, DeviceKind: dev.Kind, TS: s.TS, Values: s.Values})
			p.m.values.Add(float64(len(s.Values)))
			if s.TS.After(latest) {
				latest = s.TS
			}
		}
		pd.pubs = p.readingMsgs(pd.pubs, readings)
		if !latest.IsZero() {
			p.o.Presence.Seen(deviceID, now)
		}
	case model.TopicEvent:
		ev, rej := DecodeEvent(payload, now, p.o.Limits)
		rejects = rej
		if len(rej) == 0 && !catalog.KindEmits(dev.Kind, ev.Type) {
			rejects = append(rejects, Reject{Reason: ReasonEventNotForKind,
				Detail: "a " + dev.Kind + " device does not send " + ev.Type + " events (docs/device-protocol.md lists what each kind may send)"})
		}
		// A valid alarm is never refused for quota. Everything else sent
		// on the event topic, bad events included, counts against the
		// bucket of everyday events, so that a flood of them is cheap to
		// turn away too.
		if (len(rejects) > 0 || !IsAlarm(ev.Type)) && !p.evQuota.admit(deviceID, now) {
			p.rateLimited(m, deviceID, topic, kind, now)
			return nil
		}
		pd.js = p.ejs
		if len(rejects) == 0 {
			e := model.Event{ResidentID: dev.ResidentID, HomeID: dev.HomeID, DeviceID: dev.ID, DeviceKind: dev.Kind, TS: ev.TS, Type: ev.Type, Data: ev.Data}
			data, _ := json.Marshal(e)
			msg := &nats.Msg{Subject: model.EventSubject(dev.ResidentID, dev.ID), Data: data, Header: nats.Header{}}
			// A device that resends an event after a lost PUBACK must not
			// raise a second SOS: JetStream drops the duplicate by id.
			msg.Header.Set(jetstream.MsgIDHeader, dev.ID+":"+ev.Type+":"+strconv.FormatInt(ev.TS.UnixMilli(), 10))
			pd.pubs = append(pd.pubs, pendingPub{msg: msg})
			p.o.Presence.Seen(deviceID, now)
		}
	case model.TopicStatus:
		st, rej := DecodeStatus(payload, now)
		rejects = rej
		// A bad optional field (battery 101 %) is rejected on its own; the
		// report still says whether the device is online.
		if !st.TS.IsZero() {
			s := model.Status{ResidentID: dev.ResidentID, HomeID: dev.HomeID, DeviceID: dev.ID, DeviceKind: dev.Kind, TS: st.TS,
				Online: st.Online, BatteryPct: st.BatteryPct, RSSIdBm: st.RSSIdBm, FW: st.FW}
			data, _ := json.Marshal(s)
			pd.pubs = append(pd.pubs, pendingPub{msg: &nats.Msg{Subject: model.StatusSubject(dev.ResidentID, dev.ID), Data: data}})
			p.o.Presence.Report(devices.Presence{DeviceID: dev.ID, HomeID: dev.HomeID, Online: st.Online, LastSeen: now,
				BatteryPct: st.BatteryPct, RSSIdBm: st.RSSIdBm, FW: st.FW})
		}
	}
	for _, r := range rejects {
		p.reject(deviceID, topic, kind, r, now)
	}
	switch {
	case len(pd.pubs) == 0:
		p.m.messages.With(kind, "rejected").Inc()
		m.Ack() // nothing to store: the rejection is the outcome
		return nil
	case len(rejects) > 0:
		p.m.messages.With(kind, "partial").Inc()
	default:
		p.m.messages.With(kind, "accepted").Inc()
	}
	for i := range pd.pubs {
		pd.pubs[i].fut = p.publish(ctx, pd.js, pd.pubs[i].msg)
	}
	return pd
}

// telemetryRecords is what a telemetry message costs against the
// device's quota: the records of an array or SenML pack, counted without
// decoding them, or one.
func telemetryRecords(payload []byte) int {
	w := jsonWalker{b: payload, mark: -1}
	if w.peek() != '[' {
		return 1
	}
	return max(countElements(payload), 1)
}

// rateLimited reports a message refused for the device's quota and
// acknowledges it: the device is told nothing it could retry into.
func (p *Pipeline) rateLimited(m mqtt.Message, deviceID, topic, kind string, now time.Time) {
	p.reject(deviceID, topic, kind, Reject{Reason: ReasonRateLimited,
		Detail: "the device sent more than its quota (CARE_DEVICE_RATE / CARE_DEVICE_EVENT_RATE); send less often or batch records"}, now)
	p.m.messages.With(kind, "rejected").Inc()
	m.Ack()
}

// maxBatchBytes bounds one batch message; a larger batch is split in
// order. NATS refuses messages over its max_payload (1 MiB by default).
const maxBatchBytes = 512 << 10

// readingMsgs appends the JetStream messages for one MQTT message's
// readings: a lone reading in the single shape on
// care.readings.{resident}.{device}, several as one batch on
// care.readings.batch.{resident} (contract §3; docs/device-protocol.md),
// so that an array costs JetStream one message, not one per record.
func (p *Pipeline) readingMsgs(pubs []pendingPub, rs []model.Reading) []pendingPub {
	switch len(rs) {
	case 0:
		return pubs
	case 1:
		return append(pubs, pendingPub{msg: &nats.Msg{Subject: model.ReadingSubject(rs[0].ResidentID, rs[0].DeviceID), Data: model.ReadingJSON(&rs[0])}})
	}
	data := model.ReadingBatchJSON(rs)
	if len(data) > maxBatchBytes {
		mid := len(rs) / 2
		return p.readingMsgs(p.readingMsgs(pubs, rs[:mid]), rs[mid:])
	}
	return append(pubs, pendingPub{msg: &nats.Msg{Subject: model.ReadingBatchSubject(rs[0].ResidentID), Data: data}})
}

// publish starts an async JetStream publish. When the client's window is full
// it waits rather than failing, which is the back-pressure path.
func (p *Pipeline) publish(ctx context.Context, js jetstream.JetStream, msg *nats.Msg) jetstream.PubAckFuture {
	backoff := 10 * time.Millisecond
	for {
		fut, err := js.PublishMsgAsync(msg, jetstream.WithStallWait(time.Second))
		if err == nil {
			return fut
		}
		if ctx.Err() != nil {
			return nil
		}
		p.m.retries.Inc()
		p.o.Log.Debug().Err(err).Msg("jetstream publish deferred")
		time.Sleep(backoff) // back-off between attempts, not a wait for an event
		backoff = min(backoff*2, time.Second)
	}
}

// acker confirms messages in arrival order: it waits for JetStream's ack of
// every normalized message of an MQTT message, republishing on failure, and
// then acknowledges the MQTT message.
func (p *Pipeline) acker(ctx context.Context, q <-chan *pending, stop <-chan struct{}) {
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
		ok := true
		for i := range pd.pubs {
			if !p.confirm(ctx, pd.js, &pd.pubs[i]) {
				ok = false
				break
			}
		}
		if !ok {
			continue // shutting down: leave it unacknowledged for redelivery
		}
		pd.mqttMsg.Ack()
		p.m.publishLat.Observe(time.Since(pd.start).Seconds())
	}
}

func (p *Pipeline) confirm(ctx context.Context, js jetstream.JetStream, pp *pendingPub) bool {
	backoff := 50 * time.Millisecond
	for {
		if pp.fut != nil {
			select {
			case <-pp.fut.Ok():
				return true
			case err := <-pp.fut.Err():
				p.o.Log.Warn().Err(err).Str("subject_kind", subjectKind(pp.msg.Subject)).Msg("jetstream publish failed; retrying")
			}
		}
		// A drained context still confirms what is in flight; a cancelled
		// one after shutdown gives up (the broker redelivers).
		if ctx.Err() != nil && pp.fut == nil {
			return false
		}
		p.m.retries.Inc()
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return false
		}
		backoff = min(backoff*2, 5*time.Second)
		fut, err := js.PublishMsgAsync(&nats.Msg{Subject: pp.msg.Subject, Data: pp.msg.Data, Header: pp.msg.Header}, jetstream.WithStallWait(time.Second))
		if err != nil {
			pp.fut = nil
			continue
		}
		pp.fut = fut
	}
}

// Reject counts, reports and (rate-limited) logs input that was not stored.
// The embedded broker calls it for publishes its ACL refused.
func (p *Pipeline) Reject(deviceID, topic, kind, reason, detail string) {
	p.reject(deviceID, topic, kind, Reject{Reason: reason, Detail: detail}, p.o.Clock())
}

func (p *Pipeline) reject(deviceID, topic, kind string, r Reject, now time.Time) {
	p.m.rejected.With(r.Reason).Inc()
	data, _ := json.Marshal(model.Rejection{DeviceID: deviceID, Topic: topic, Reason: r.Reason, Detail: r.Detail, Metric: r.Metric, TS: now.UTC()})
	if err := p.o.NC.Publish(model.RejectedSubject(deviceID), data); err != nil {
		p.o.Log.Debug().Err(err).Msg("rejection report not published")
	}
	if p.limiter.allow(deviceID+"\x00"+r.Reason, now) {
		p.o.Log.Warn().Str("device_id", deviceID).Str("kind", kind).Str("reason", r.Reason).Str("detail", r.Detail).Msg("device input rejected")
	}
}

func deviceIDOrUnknown(topic string) string {
	if len(topic) > len(model.TopicPrefix) && topic[:len(model.TopicPrefix)] == model.TopicPrefix {
		rest := topic[len(model.TopicPrefix):]
		for i := 0; i < len(rest); i++ {
			if rest[i] == '/' {
				rest = rest[:i]
				break
			}
		}
		if validSubjectToken(rest) {
			return rest
		}
	}
	return "_invalid"
}

func validSubjectToken(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func kindOf(kind string) string {
	if kind == "" {
		return "unknown"
	}
	return kind
}

func subjectKind(subject string) string {
	for i := 5; i < len(subject); i++ {
		if subject[i] == '.' {
			return subject[5:i]
		}
	}
	return subject
}

// logLimiter lets one log line per key through per period (contract §1: at
// most once per device per minute per reason), with a bounded memory.
type logLimiter struct {
	mu     sync.Mutex
	period time.Duration
	max    int
	last   map[string]time.Time
}

func newLogLimiter(period time.Duration, maxKeys int) *logLimiter {
	return &logLimiter{period: period, max: maxKeys, last: map[string]time.Time{}}
}

func (l *logLimiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.last[key]; ok && now.Sub(t) < l.period {
		return false
	}
	if len(l.last) >= l.max {
		for k, t := range l.last {
			if now.Sub(t) >= l.period {
				delete(l.last, k)
			}
		}
		if len(l.last) >= l.max {
			return false // a flood of distinct keys: stay quiet, the counters still count
		}
	}
	l.last[key] = now
	return true
}
