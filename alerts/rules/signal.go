// Package rules says what carehub's alert rules are: their names and
// severities, a resident's settings (bands, modes, snoozes, durations with
// their floors) and their validation, the defaults of domain.md, the NEWS2
// scoring tables, and the Signal a rule emits. Package rules/eval applies
// them to readings, events, device status and a clock; the alerts package
// turns the signals into alerts with a lifecycle.
package rules

import "time"

// Severities, lowest first (contract §3).
const (
	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeverityHigh     = "high"
	SeverityCritical = "critical"
)

// Signal says that a rule's condition for a resident started (Active) or
// ended (!Active). The lifecycle raises, repeats, escalates or auto-clears
// alerts from these.
type Signal struct {
	ResidentID string
	HomeID     string
	DeviceID   string // the device that showed the condition, if one did
	Rule       string // stable rule name, e.g. "heart_rate", "sos", "inactivity", "device_offline"
	Severity   string // for Active signals; a rising severity of an open rule is a new Active signal
	Active     bool
	Metric     string  // the metric concerned, if any
	Value      float64 // the value that tripped the rule, if any
	Threshold  float64 // the limit it crossed, if any
	Message    string  // short human text without personal data, e.g. "SpO2 89 % for 5 min (≤ 91)"
	AllTiers   bool    // notify every escalation tier at once (smoke, gas, SOS)
	At         time.Time
}
