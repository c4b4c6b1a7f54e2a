// Package model holds the messages carehub passes between its parts over
// NATS JetStream (contract §3) and the subjects they travel on. Other
// services subscribe to the same subjects, so these shapes are contract.
package model

import (
	"encoding/json"
	"strings"
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

// Subjects and streams (contract §3). Subject tokens are ids, which the
// contract restricts to [a-z0-9_-], so they never contain '.', '*' or '>'.
const (
	StreamReadings   = "CARE_READINGS"
	StreamEvents     = "CARE_EVENTS"
	StreamStatus     = "CARE_STATUS"
	StreamAlerts     = "CARE_ALERTS"
	StreamDeadLetter = "CARE_DEADLETTER"
	StreamAudit      = "CARE_AUDIT"
	StreamEscalation = "CARE_ESCALATION"

	SubjectReadingsAll   = "care.readings.>"
	SubjectEventsAll     = "care.events.>"
	SubjectStatusAll     = "care.status.>"
	SubjectAlertsAll     = "care.alerts.>"
	SubjectDeadLetterAll = "care.deadletter.>"
	SubjectAuditAll      = "care.audit.>"
	SubjectRejectedAll   = "care.ingest.rejected.>"
	SubjectEscalationAll = "care.escalation.>"
)

// ReadingSubject is where a resident's device readings are published.
func ReadingSubject(residentID, deviceID string) string {
	return "care.readings." + residentID + "." + deviceID
}

// EventSubject is where a resident's device events are published.
func EventSubject(residentID, deviceID string) string {
	return "care.events." + residentID + "." + deviceID
}

// StatusSubject is where a device's presence reports are published.
func StatusSubject(residentID, deviceID string) string {
	return "care.status." + residentID + "." + deviceID
}

// AlertSubject is where alert transitions are published.
func AlertSubject(residentID, severity string) string {
	return "care.alerts." + residentID + "." + severity
}

// HeaderPointTime is the header of an alert transition on CARE_ALERTS that
// gives the time (Unix ms) of its point in InfluxDB's alerts measurement:
// the transition's updated_at, moved on a millisecond when an earlier
// transition of the same alert took that millisecond, so that two
// transitions never make one point. A transition published again carries
// the same value, so its point is the same too.
const HeaderPointTime = "Carehub-Point-Time"

// SubjectMatchesIDs reports whether a reading, event or status subject
// (care.{readings|events|status}.{resident_id}.{device_id}) names exactly
// the resident and device its message's body does. Consumers check it
// before trusting the body: whoever can publish on one resident's subject
// must not be able to write under, or raise alerts for, another.
func SubjectMatchesIDs(subject, residentID, deviceID string) bool {
	var rest string
	for _, p := range [...]string{"care.readings.", "care.events.", "care.status."} {
		if len(subject) > len(p) && subject[:len(p)] == p {
			rest = subject[len(p):]
			break
		}
	}
	if rest == "" || residentID == "" || deviceID == "" || strings.Contains(residentID, ".") || strings.Contains(deviceID, ".") {
		return false
	}
	// A batch (care.readings.batch.{resident}) names its resident only;
	// "batch" is a reserved resident id, so the two shapes cannot meet.
	if batchOf, ok := strings.CutPrefix(subject, "care.readings.batch."); ok {
		return batchOf == residentID
	}
	return rest == residentID+"."+deviceID
}

// RejectedSubject is where rejected device input is reported.
func RejectedSubject(deviceID string) string {
	return "care.ingest.rejected." + deviceID
}

// DeadLetterSubject is where points InfluxDB refused for good are kept.
func DeadLetterSubject(kind string) string { return "care.deadletter." + kind }

// AuditSubject is where accesses to a resident's data are recorded.
func AuditSubject(residentID string) string { return "care.audit." + residentID }

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
