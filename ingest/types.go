// Package ingest is carehub's intake of device messages (contract §1). It
// validates and decodes what a device published, applies the device's
// quota, resolves the device to its resident and home, publishes the
// normalized messages to JetStream and says when they are stored: whoever
// received a message (the embedded broker's publish hook, or the
// subscriber connections of ingest/mqttsub) acknowledges it to the device
// only then, so nothing acknowledged is lost. What it refuses is counted,
// logged and reported with one of model.RejectReasons.
package ingest

import (
	"encoding/json"
	"time"
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
	Reason string // one of model.RejectReasons
	Detail string // human text: what was wrong and with which value
	Metric string // the metric concerned, when there is one
}
