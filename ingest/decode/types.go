// Package decode reads what devices publish (contract §1): it parses the
// topic, decodes telemetry (carehub's JSON and SenML), events and status
// reports, and validates them against the contract's limits and the metric
// catalogue. It returns what passed and one Reject per thing it dropped,
// with a reason from model.RejectReasons. It is pure: no I/O, no broker,
// no NATS; the intake (package ingest) decides what to do with the result.
package decode

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

// DeviceEvent is one validated event.
type DeviceEvent struct {
	TS   time.Time
	Type string
	Data json.RawMessage
}

// DeviceStatus is one validated status report.
type DeviceStatus struct {
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
