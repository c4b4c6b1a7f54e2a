// Package ingest carries device messages from MQTT into JetStream with
// nothing lost: an MQTT message is acknowledged only after JetStream stored
// it. The writer package takes them from JetStream into InfluxDB.
package ingest

import (
	"encoding/json"
	"time"
)

// Rejection reasons: the label of the rejection counter and the "reason" of
// the message on care.ingest.rejected.{device_id}. They are contract for
// dashboards and alerting on ingest, so they do not change.
const (
	ReasonEmpty          = "empty_payload"
	ReasonTooLarge       = "payload_too_large"
	ReasonMalformed      = "malformed_payload"
	ReasonBadTopic       = "bad_topic"
	ReasonUnknownDevice  = "unknown_device"
	ReasonDisabledDevice = "device_disabled"
	ReasonTopicNotOwn    = "topic_not_allowed"
	ReasonUnknownMetric  = "unknown_metric"
	ReasonOutOfRange     = "out_of_range"
	ReasonNotFinite      = "not_finite"
	ReasonBadValue       = "bad_value"
	ReasonBadTimestamp   = "bad_timestamp"
	ReasonFuture         = "timestamp_in_future"
	ReasonTooOld         = "timestamp_too_old"
	ReasonUnitMismatch   = "unit_mismatch"
	ReasonEventType      = "unknown_event_type"
	ReasonNoValues       = "no_values"
	// ReasonRateLimited: the device sent more than its quota (Quota).
	ReasonRateLimited = "rate_limited"
	// ReasonTooManyRecords: a telemetry array longer than Limits.MaxRecords.
	ReasonTooManyRecords = "too_many_records"
	// ReasonEventNotForKind: an event type the device's kind cannot
	// produce (catalog.KindEmits), e.g. smoke from a door contact.
	ReasonEventNotForKind = "event_not_for_kind"
	// Reported by the embedded broker, which refuses these before ingest
	// sees a message.
	ReasonAuthFailed = "auth_failed"
	ReasonSubscribe  = "subscribe_not_allowed"
	ReasonWillNotOwn = "will_topic_not_allowed"
)

// Limits bound what a device may send (contract §1).
type Limits struct {
	MaxPayload int           // bytes; larger messages are rejected whole
	MaxFuture  time.Duration // how far ahead of arrival a timestamp may be
	MaxAge     time.Duration // raw-data retention: older timestamps are rejected
	// MaxRecords is the most records a telemetry array (plain or SenML) may
	// hold; a longer one is rejected whole. <= 0 means DefaultMaxRecords.
	MaxRecords int
}

// DefaultMaxRecords covers a legitimate catch-up array: a device sending a
// reading a minute that was offline 16 hours, or 4 metrics a minute as
// SenML records for 4 hours (docs/device-protocol.md).
const DefaultMaxRecords = 1000

// Sample is one decoded, validated telemetry record of one device: its time
// and the values that passed the metric catalogue.
type Sample struct {
	TS     time.Time
	Values map[string]float64
}

// DecodedEvent is one validated event.
type DecodedEvent struct {
	TS   time.Time
	Type string
	Data json.RawMessage
}

// DecodedStatus is one validated status report.
type DecodedStatus struct {
	TS         time.Time
	Online     bool
	BatteryPct *float64
	RSSIdBm    *float64
	FW         string
}

// Reject says why part or all of a message was not stored.
type Reject struct {
	Reason string // one of the Reason constants
	Detail string // human text: what was wrong and with which value
	Metric string // the metric concerned, when there is one
}
