// Package alerts turns the rule signals of alerts/rules into alerts with a
// lifecycle (domain.md "Alert lifecycle"): one open alert per resident and
// rule, raised, repeated, escalated along the resident's chain of care
// workers up to 119, acknowledged, resolved with an outcome, or auto-cleared.
// Every transition is kept in a NATS KV bucket before it is published on
// care.alerts.{resident_id}.{severity} (contract §3), through an outbox so
// that a crash never loses one. The writer package stores the published
// transitions in InfluxDB's alerts measurement (contract §2).
package alerts

import (
	"errors"
	"strconv"
	"time"

	"github.com/carehub/carehub/alerts/escalation"
	"github.com/carehub/carehub/alerts/rules"
)

// Statuses of an alert (contract §3).
const (
	StatusOpen         = "open"
	StatusAcknowledged = "acknowledged"
	StatusResolved     = "resolved"
)

// Transitions, one per published message (contract §3).
const (
	TransitionRaised       = "raised"
	TransitionRepeated     = "repeated"
	TransitionEscalated    = "escalated"
	TransitionAcknowledged = "acknowledged"
	TransitionResolved     = "resolved"
	TransitionAutoCleared  = "auto_cleared"
)

// Outcomes of a resolved alert (contract §3). OutcomeAutoCleared is set by
// carehub only; a person resolves with one of the others.
const (
	OutcomeFalseAlarm        = "false_alarm"
	OutcomeOKByPhone         = "ok_by_phone"
	OutcomeVisited           = "visited"
	OutcomeEmergencyServices = "emergency_services"
	OutcomeHospital          = "hospital"
	OutcomeAutoCleared       = "auto_cleared"
)

// SystemActor is the resolved_by and note author of what carehub did by
// itself (raise, escalate, auto-clear). The '@' makes it an invalid user id
// (contract: ids match ^[a-z0-9][a-z0-9_-]{0,63}$), so it can never be
// mistaken for a person.
const SystemActor = "@carehub"

// Escalation timing (domain.md), as escalation.Next applies it.
const (
	CriticalStep  = escalation.CriticalStep
	CriticalReach = escalation.CriticalReach
	HighFirst     = escalation.HighFirst
	HighSecond    = escalation.HighSecond
)

// humanOutcomes are the outcomes a person may record (contract §3).
var humanOutcomes = map[string]bool{
	OutcomeFalseAlarm: true, OutcomeOKByPhone: true, OutcomeVisited: true,
	OutcomeEmergencyServices: true, OutcomeHospital: true,
}

// severityRank orders severities, lowest first (domain.md: info < warning <
// high < critical).
var severityRank = map[string]int{
	rules.SeverityInfo: 1, rules.SeverityWarning: 2, rules.SeverityHigh: 3, rules.SeverityCritical: 4,
}

// ValidSeverity reports whether s is one of the contract's severities.
func ValidSeverity(s string) bool { return severityRank[s] > 0 }

// Errors the API maps to HTTP statuses: ErrNotFound → 404, ErrConflict →
// 409, ErrInvalid → 422. Returned errors wrap them with detail; test with
// errors.Is.
var (
	ErrNotFound = errors.New("alert not found")
	ErrConflict = errors.New("alert state conflict")
	ErrInvalid  = escalation.ErrInvalid
)

// Alert is one alert as published and served (contract §3). Every contract
// field is always present in the JSON; times not yet reached are null.
// Seq, Tier, Recipients, Suppressed, Notes and AssignedTo are additions the contract
// allows: the transition counter of Nats-Msg-Id, who is notified, why
// notification is held, and who did what when (domain.md: every transition
// records who, when and a note).
type Alert struct {
	ID              string     `json:"id"`
	ResidentID      string     `json:"resident_id"`
	HomeID          string     `json:"home_id"`
	DeviceID        string     `json:"device_id"`
	Rule            string     `json:"rule"`
	Severity        string     `json:"severity"`
	Status          string     `json:"status"`
	Transition      string     `json:"transition"`
	Message         string     `json:"message"`
	Metric          string     `json:"metric"`
	Value           float64    `json:"value"`
	Threshold       float64    `json:"threshold"`
	Occurrences     int        `json:"occurrences"`
	EscalationLevel int        `json:"escalation_level"`
	RaisedAt        time.Time  `json:"raised_at"`
	UpdatedAt       time.Time  `json:"updated_at"`
	AcknowledgedAt  *time.Time `json:"acknowledged_at"`
	AcknowledgedBy  string     `json:"acknowledged_by"`
	ResolvedAt      *time.Time `json:"resolved_at"`
	ResolvedBy      string     `json:"resolved_by"`
	Outcome         string     `json:"outcome"`

	Seq        uint64       `json:"seq"`
	Tier       string       `json:"tier,omitempty"`
	Recipients []string     `json:"recipients,omitempty"`
	Suppressed *Suppression `json:"suppressed,omitempty"`
	Notes      []Note       `json:"notes,omitempty"`
	// AssignedTo is the user a person handed the alert to (Manager.Assign);
	// they stay among the recipients whatever the escalation level.
	AssignedTo string `json:"assigned_to,omitempty"`
}

// Note records who made a transition, when, and what they wrote. Notes are
// free text from care workers: they go to KV and the alert JSON, never to
// logs.
type Note struct {
	At         time.Time `json:"at"`
	By         string    `json:"by"`
	Transition string    `json:"transition"`
	Text       string    `json:"text,omitempty"`
}

// MsgID is the Nats-Msg-Id of the alert's current transition (contract §3):
// {alert_id}:{transition}:{seq}.
func (a Alert) MsgID() string {
	return a.ID + ":" + a.Transition + ":" + strconv.FormatUint(a.Seq, 10)
}

// Filter selects alerts for List; empty fields match everything. Limit ≤ 0
// means DefaultListLimit.
type Filter struct {
	ResidentID string
	Status     string
	Severity   string
	Limit      int
}

// DefaultListLimit bounds a List answer when the filter sets no limit.
const DefaultListLimit = 500

func (f Filter) match(a *Alert) bool {
	return (f.ResidentID == "" || f.ResidentID == a.ResidentID) &&
		(f.Status == "" || f.Status == a.Status) &&
		(f.Severity == "" || f.Severity == a.Severity)
}
