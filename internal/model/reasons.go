package model

// Rejection reasons: the "reason" of a Rejection on
// care.ingest.rejected.{device_id} and the label of
// carehub_ingest_rejected_total (contract §1, docs/device-protocol.md §11).
// Ingest and the embedded broker both report with them. They are contract
// for dashboards and alerting on ingest, so they do not change.
const (
	ReasonEmpty          = "empty_payload"
	ReasonTooLarge       = "payload_too_large"
	ReasonMalformed      = "malformed_payload"
	ReasonBadTopic       = "bad_topic"
	ReasonUnknownDevice  = "unknown_device"
	ReasonDisabledDevice = "device_disabled"
	// ReasonTopicNotAllowed: a publish under another device's topics, or a
	// SenML name of another device.
	ReasonTopicNotAllowed = "topic_not_allowed"
	ReasonUnknownMetric   = "unknown_metric"
	ReasonOutOfRange      = "out_of_range"
	ReasonNotFinite       = "not_finite"
	ReasonBadValue        = "bad_value"
	ReasonBadTimestamp    = "bad_timestamp"
	ReasonFuture          = "timestamp_in_future"
	ReasonTooOld          = "timestamp_too_old"
	ReasonUnitMismatch    = "unit_mismatch"
	ReasonEventType       = "unknown_event_type"
	ReasonNoValues        = "no_values"
	// ReasonRateLimited: the device sent more than its quota.
	ReasonRateLimited = "rate_limited"
	// ReasonTooManyRecords: a telemetry array or SenML pack longer than
	// CARE_MAX_RECORDS.
	ReasonTooManyRecords = "too_many_records"
	// ReasonEventNotForKind: an event type the device's kind cannot
	// produce (catalog.KindEmits), e.g. smoke from a door contact.
	ReasonEventNotForKind = "event_not_for_kind"

	// Reported by the embedded broker, which refuses these before ingest
	// sees a message.

	// ReasonAuthFailed: a registered device with a wrong password.
	ReasonAuthFailed = "auth_failed"
	// ReasonLoginThrottled: too many failed logins of this id from this
	// address, or from this address; refused without a password check.
	ReasonLoginThrottled = "login_throttled"
	// ReasonAuthBusy: too many password checks waiting; the device retries.
	ReasonAuthBusy = "auth_busy"
	// ReasonSubscribeNotAllowed: a subscribe to anything but the device's
	// own config topic.
	ReasonSubscribeNotAllowed = "subscribe_not_allowed"
	// ReasonWillNotAllowed: a Last Will on another device's topic.
	ReasonWillNotAllowed = "will_topic_not_allowed"
)

// RejectReasons lists every rejection reason, in the order of
// docs/device-protocol.md §11, so that a counter can show each at zero.
var RejectReasons = []string{
	ReasonEmpty, ReasonTooLarge, ReasonMalformed, ReasonBadTopic, ReasonUnknownDevice, ReasonDisabledDevice,
	ReasonAuthFailed, ReasonLoginThrottled, ReasonAuthBusy, ReasonTopicNotAllowed, ReasonSubscribeNotAllowed,
	ReasonWillNotAllowed, ReasonUnknownMetric, ReasonOutOfRange, ReasonNotFinite, ReasonBadValue, ReasonBadTimestamp,
	ReasonFuture, ReasonTooOld, ReasonUnitMismatch, ReasonEventType, ReasonNoValues, ReasonTooManyRecords,
	ReasonRateLimited, ReasonEventNotForKind,
}
