// Package model holds the messages carehub passes between its parts over
// NATS JetStream (contract §3) and the names they travel under: subjects,
// streams and key-value buckets (subjects.go). Other services subscribe to
// the same subjects, so these shapes and names are contract.
package model

import (
	"encoding/json"
	"time"
)

// Reading is one normalized telemetry sample of one device, as published on
// care.readings.{resident_id}.{device_id}.
type Reading struct {
	ResidentID string             `json:"resident_id"`
	HomeID     string             `json:"home_id"`
	DeviceID   string             `json:"device_id"`
	DeviceKind string             `json:"device_kind"`
	TS         time.Time          `json:"ts"`
	Values     map[string]float64 `json:"values"`
}

// Event is one discrete device event, as published on
// care.events.{resident_id}.{device_id}.
type Event struct {
	ResidentID string          `json:"resident_id"`
	HomeID     string          `json:"home_id"`
	DeviceID   string          `json:"device_id"`
	DeviceKind string          `json:"device_kind"`
	TS         time.Time       `json:"ts"`
	Type       string          `json:"type"`
	Data       json.RawMessage `json:"data,omitempty"`
}

// Status is a device's presence and health report (its status topic, or its
// Last Will), as published on care.status.{resident_id}.{device_id}.
type Status struct {
	ResidentID string    `json:"resident_id"`
	HomeID     string    `json:"home_id"`
	DeviceID   string    `json:"device_id"`
	DeviceKind string    `json:"device_kind"`
	TS         time.Time `json:"ts"`
	Online     bool      `json:"online"`
	BatteryPct *float64  `json:"battery_pct,omitempty"`
	RSSIdBm    *float64  `json:"rssi_dbm,omitempty"`
	FW         string    `json:"fw,omitempty"`
}

// Rejection is published on care.ingest.rejected.{device_id} for every piece
// of device input that was not stored, with the reason.
type Rejection struct {
	DeviceID string    `json:"device_id"`
	Topic    string    `json:"topic"`
	Reason   string    `json:"reason"`
	Detail   string    `json:"detail"`
	Metric   string    `json:"metric,omitempty"`
	TS       time.Time `json:"ts"`
}

// HeaderPointTime is the header of an alert transition on CARE_ALERTS that
// gives the time (Unix ms) of its point in InfluxDB's alerts measurement:
// the transition's updated_at, moved on a millisecond when an earlier
// transition of the same alert took that millisecond, so that two
// transitions never make one point. A transition published again carries
// the same value, so its point is the same too.
const HeaderPointTime = "Carehub-Point-Time"

// MQTT topics (contract §1).
const (
	TopicPrefix     = "care/v1/dev/"
	TopicTelemetry  = "telemetry"
	TopicEvent      = "event"
	TopicStatus     = "status"
	TopicConfig     = "config"
	MaxPayloadBytes = 64 << 10 // contract §1 default limit
)

// DeviceTopic returns care/v1/dev/{device_id}/{kind}.
func DeviceTopic(deviceID, kind string) string { return TopicPrefix + deviceID + "/" + kind }
