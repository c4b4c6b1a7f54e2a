// Package ingest is carehub's intake of device messages (contract §1). It
// validates and decodes what a device published (through ingest/decode,
// which holds the contract's rules for payloads), applies the device's
// quota, resolves the device to its resident and home, publishes the
// normalized messages to JetStream and says when they are stored: whoever
// received a message (the embedded broker's publish hook, or the
// subscriber connections of ingest/mqttsub) acknowledges it to the device
// only then, so nothing acknowledged is lost. What it refuses is counted,
// logged and reported with one of model.RejectReasons.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/ingest/decode"
	"github.com/carehub/carehub/internal/metrics"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/retry"
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

// Options configures the intake.
type Options struct {
	NC *nats.Conn
	// EventNC, when set, is a second NATS connection that carries only
	// events: an SOS is then not queued behind telemetry in the socket's
	// write buffer nor in the JetStream publish window (item 7 of issue 9).
	// Nil uses NC, still with a publish window of its own.
	EventNC  *nats.Conn
	Quota    Quota
	Devices  DeviceSource
	Presence PresenceRecorder
	Limits   decode.Limits
	Clock    func() time.Time
	Metrics  *metrics.Registry
	Log      zerolog.Logger

	// PublishWindow bounds the telemetry and status messages published to
	// JetStream and not yet confirmed; EventWindow those of events. A full
	// window makes Take wait: back-pressure towards whoever feeds the
	// intake. <= 0 means DefaultMaxInFlight.
	PublishWindow, EventWindow int

	// BatchReadings, when > 0, makes the intake collect the readings of
	// many device messages into one JetStream message per partition
	// (model.ReadingPartitionSubject), flushed at BatchReadings readings or
	// BatchDelay after its first (<= 0: DefaultBatchDelay). Each device
	// message is acknowledged once its batch is stored. 0 publishes one
	// JetStream message per device message.
	BatchReadings int
	BatchDelay    time.Duration
}

// DefaultMaxInFlight fits Mosquitto's production setting of
// max_inflight_messages (deploy/mosquitto) with headroom.
const DefaultMaxInFlight = 4096

// Intake takes device messages, whoever received them: it validates and
// decodes each, applies the device's quota, resolves the device to its
// resident, publishes what is to be stored to JetStream and reports what
// is not (contract §1). A message is to be acknowledged to its device only
// once Pending.Confirm or Ingest says it is stored. It needs only NATS, the
// registry and presence, so it exists before any broker feeds it.
// An Intake is safe for concurrent use.
type Intake struct {
	o       Options
	js      jetstream.JetStream // telemetry and status
	ejs     jetstream.JetStream // events: a window of their own
	quota   *buckets            // telemetry, in records
	evQuota *buckets            // everyday events and status reports, in messages
	m       intakeMetrics
	limiter *logLimiter
	batch   *batcher // nil: one JetStream message per device message
}

type intakeMetrics struct {
	messages   *metrics.CounterVec
	values     *metrics.Counter
	rejected   *metrics.CounterVec
	publishLat *metrics.Histogram
	lag        *metrics.Histogram
	retries    *metrics.Counter
	// batchReadings is the size of the cross-device batches.
	batchReadings *metrics.Histogram
}

// New builds the intake from its options.
func New(o Options) (*Intake, error) {
	if o.NC == nil || o.Devices == nil || o.Presence == nil || o.Metrics == nil {
		return nil, errors.New("ingest: the intake needs NATS, devices, presence and metrics")
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.PublishWindow < 1 {
		o.PublishWindow = DefaultMaxInFlight
	}
	if o.EventWindow < 1 {
		o.EventWindow = DefaultMaxInFlight
	}
	js, err := jetstream.New(o.NC,
		jetstream.WithPublishAsyncMaxPending(o.PublishWindow),
		jetstream.WithPublishAsyncTimeout(10*time.Second))
	if err != nil {
		return nil, err
	}
	enc := o.EventNC
	if enc == nil {
		enc = o.NC
	}
	ejs, err := jetstream.New(enc,
		jetstream.WithPublishAsyncMaxPending(o.EventWindow),
		jetstream.WithPublishAsyncTimeout(10*time.Second))
	if err != nil {
		return nil, err
	}
	o.Quota = o.Quota.withDefaults()
	in := &Intake{o: o, js: js, ejs: ejs, limiter: newLogLimiter(time.Minute, 10000),
		quota:   newBuckets(o.Quota.Rate, o.Quota.Burst, o.Quota.MaxDevices),
		evQuota: newBuckets(o.Quota.EventRate, o.Quota.EventBurst, o.Quota.MaxDevices)}
	r := o.Metrics
	in.m = intakeMetrics{
		messages:   r.Counter("carehub_ingest_messages_total", "MQTT messages by topic kind and outcome (accepted, partial, rejected).", "kind", "outcome"),
		values:     r.Counter("carehub_ingest_values_total", "Telemetry values accepted.").With(),
		rejected:   r.Counter("carehub_ingest_rejected_total", "Rejected device input by reason (contract §1).", "reason"),
		publishLat: r.Histogram("carehub_ingest_jetstream_publish_seconds", "MQTT arrival to JetStream confirmation.", metrics.DefBuckets).With(),
		lag:        r.Histogram("carehub_ingest_device_lag_seconds", "Reading timestamp to JetStream confirmation (device clock permitting).", metrics.DefBuckets).With(),
		retries:    r.Counter("carehub_ingest_jetstream_retries_total", "JetStream publishes retried after a failure.").With(),
		batchReadings: r.Histogram("carehub_ingest_batch_readings", "Readings per cross-device JetStream batch (CARE_INGEST_BATCH).",
			[]float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000}).With(),
	}
	if o.BatchReadings > 0 {
		in.batch = newBatcher(in, o.BatchReadings, o.BatchDelay)
	}
	for _, reason := range model.RejectReasons {
		in.m.rejected.With(reason) // present at zero, so dashboards see every reason
	}
	return in, nil
}

// Pending is a device message whose normalized messages are on their way
// to JetStream: the message is to be acknowledged to the device once
// Confirm returns nil.
type Pending struct {
	in    *Intake
	js    jetstream.JetStream // the publish window the messages went into
	pubs  []pendingPub
	batch *readingBatch // the batch holding the message's readings, if any
	start time.Time
	// latest is the newest reading's timestamp (zero for events and
	// status): carehub_ingest_device_lag_seconds measures from it.
	latest time.Time
}

type pendingPub struct {
	msg *nats.Msg
	fut jetstream.PubAckFuture
}

// Ingest takes one device message and returns once it is stored or
// rejected, before the device is acknowledged: nil once every normalized
// message made from it is confirmed by JetStream, or once it is rejected
// (reported and counted like any other); an error when ctx ends first, so
// that the message is not acknowledged and the device sends it again. It
// is Take, Hurry and Confirm in one call; the embedded broker calls the
// three itself, so as to confirm a connection's messages off its
// goroutine. contentType is the MQTT 5 content type ("" from MQTT 3.1.1).
func (in *Intake) Ingest(ctx context.Context, topic string, payload []byte, contentType string) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	pd := in.Take(ctx, topic, payload, contentType)
	if pd == nil {
		return nil // rejected: reported, nothing to store
	}
	pd.Hurry()
	if err := pd.Confirm(ctx); err != nil {
		return fmt.Errorf("ingest: %s not stored: %w", topic, err)
	}
	return nil
}

// Hurry asks for the batch holding the message's readings to go within
// DefaultBatchDelay rather than the configured delay: for a device that
// waits for its acknowledgement before it sends its next message.
func (pd *Pending) Hurry() {
	if pd.batch != nil {
		pd.in.batch.hurry(pd.batch)
	}
}

// Confirm waits for JetStream's confirmation of every normalized message,
// republishing on failure. It returns an error, and the device message is
// then to be left unacknowledged for redelivery, only when ctx ends first;
// a context that ends while a publish is in flight still waits for it.
func (pd *Pending) Confirm(ctx context.Context) error {
	for i := range pd.pubs {
		if !pd.in.confirm(ctx, pd.js, &pd.pubs[i]) {
			return context.Cause(ctx)
		}
	}
	if pd.batch != nil {
		if err := pd.batch.wait(); err != nil {
			return err
		}
	}
	pd.in.m.publishLat.Observe(time.Since(pd.start).Seconds())
	if !pd.latest.IsZero() {
		// A device clock ahead of carehub's would make a negative lag:
		// it is not observed rather than counted as zero.
		if lag := pd.in.o.Clock().Sub(pd.latest); lag >= 0 {
			pd.in.m.lag.Observe(lag.Seconds())
		}
	}
	return nil
}

// maxBatchBytes bounds one batch message; a larger batch is split in
// order. NATS refuses messages over its max_payload (1 MiB by default).
const maxBatchBytes = 512 << 10

// readingMsgs appends the JetStream messages for one MQTT message's
// readings: a lone reading in the single shape on
// care.readings.{resident}.{device}, several as one batch on
// care.readings.batch.{resident} (contract §3; docs/device-protocol.md),
// so that an array costs JetStream one message, not one per record.
func readingMsgs(pubs []pendingPub, rs []model.Reading) []pendingPub {
	switch len(rs) {
	case 0:
		return pubs
	case 1:
		return append(pubs, pendingPub{msg: &nats.Msg{Subject: model.ReadingSubject(rs[0].ResidentID, rs[0].DeviceID), Data: model.ReadingJSON(&rs[0])}})
	}
	data := model.ReadingBatchJSON(rs)
	if len(data) > maxBatchBytes {
		mid := len(rs) / 2
		return readingMsgs(readingMsgs(pubs, rs[:mid]), rs[mid:])
	}
	return append(pubs, pendingPub{msg: &nats.Msg{Subject: model.ReadingBatchSubject(rs[0].ResidentID), Data: data}})
}

// publish starts an async JetStream publish. When the client's window is full
// it waits rather than failing, which is the back-pressure path.
func (in *Intake) publish(ctx context.Context, js jetstream.JetStream, msg *nats.Msg) jetstream.PubAckFuture {
	pause := retry.Policy{Initial: 10 * time.Millisecond, Max: time.Second}
	for n := 1; ; n++ {
		fut, err := js.PublishMsgAsync(msg, jetstream.WithStallWait(time.Second))
		if err == nil {
			return fut
		}
		if ctx.Err() != nil {
			return nil
		}
		in.m.retries.Inc()
		in.o.Log.Debug().Err(err).Msg("jetstream publish deferred")
		time.Sleep(pause.Backoff(n)) // back-off between attempts, not a wait for an event
	}
}

func (in *Intake) confirm(ctx context.Context, js jetstream.JetStream, pp *pendingPub) bool {
	pause := retry.Policy{Initial: 50 * time.Millisecond, Max: 5 * time.Second}
	for n := 1; ; n++ {
		if pp.fut != nil {
			select {
			case <-pp.fut.Ok():
				return true
			case err := <-pp.fut.Err():
				in.o.Log.Warn().Err(err).Str("subject_kind", model.SubjectKind(pp.msg.Subject)).Msg("jetstream publish failed; retrying")
			}
		}
		// A drained context still confirms what is in flight; a cancelled
		// one after shutdown gives up (the broker redelivers).
		if ctx.Err() != nil && pp.fut == nil {
			return false
		}
		in.m.retries.Inc()
		if retry.Sleep(ctx, pause.Backoff(n)) != nil {
			return false
		}
		fut, err := js.PublishMsgAsync(&nats.Msg{Subject: pp.msg.Subject, Data: pp.msg.Data, Header: pp.msg.Header}, jetstream.WithStallWait(time.Second))
		if err != nil {
			pp.fut = nil
			continue
		}
		pp.fut = fut
	}
}
