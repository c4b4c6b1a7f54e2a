package alerts

import (
	"context"
	"time"
)

// Suppression modes (domain.md: suppression with a reason, always audited).
const (
	ModeAway        = "away"
	ModeHospital    = "hospital"
	ModeMaintenance = "maintenance"
	ModeQuiet       = "quiet" // a care worker's visit is in progress
	ModeSnooze      = "snooze"
)

// Suppression is an active suppression of a resident's alerts, with the
// reason a person gave for it.
type Suppression struct {
	Mode   string     `json:"mode"`
	Reason string     `json:"reason"`
	By     string     `json:"by,omitempty"`
	Until  *time.Time `json:"until,omitempty"`
}

// SettingsSource tells the Manager whether a resident's alerts of a rule are
// suppressed at a moment; nil means not. It is asked on every raise, repeat
// and escalation step, so it should answer from memory or a local KV.
//
// What suppression does, whatever the mode: it never hides an alert. The
// alert is still raised, stored, published and written to InfluxDB (that is
// the audit: each transition carries the suppression with its mode and
// reason in "suppressed"), so the notification service can hold the push.
// What it holds back is escalation: a suppressed non-critical alert stays at
// its level until the suppression ends, then escalates at the next tick.
// Critical alerts, and AllTiers alerts (smoke, gas, SOS), are never
// suppressed: a fire during a care worker's visit still goes to 119.
// Pausing rules themselves in away or hospital mode (inactivity) is the
// rules evaluator's job, not this one's.
type SettingsSource interface {
	Suppression(ctx context.Context, residentID, rule string, now time.Time) (*Suppression, error)
}
