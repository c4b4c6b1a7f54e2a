// Package notify tells care workers about alert transitions: a durable
// dispatcher on CARE_ALERTS turns each transition into one Notification per
// recipient the alert's timeline names, and hands it to every Channel.
// Shipped channels are Web Push to each of the recipient's phones
// (internal/webpush speaks the protocol, internal/notify/phones keeps the
// subscriptions, receipts and action tokens) and a generic signed webhook
// for an SMS or messenger gateway. A transition is acknowledged on the
// stream only once every recipient was reached or failed for good, so a
// restart or a push-service outage loses nothing.
package notify

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Notification is one alert transition for one recipient, as every channel
// receives it. It holds no full name and no vital values: it may be shown
// on a locked screen (PIPA minimisation, console.md §3.4).
type Notification struct {
	AlertID         string    `json:"alert_id"`
	Seq             uint64    `json:"seq"`
	MsgID           string    `json:"msg_id"` // {alert_id}:{transition}:{seq}, the transition's Nats-Msg-Id
	Transition      string    `json:"transition"`
	Severity        string    `json:"severity"`
	Rule            string    `json:"rule"`
	EscalationLevel int       `json:"escalation_level"`
	Tier            string    `json:"tier,omitempty"`
	ResidentID      string    `json:"resident_id"`
	ResidentMasked  string    `json:"resident"` // e.g. 김○희
	UserID          string    `json:"user_id"`  // the recipient
	RaisedAt        time.Time `json:"raised_at"`
	AcknowledgedBy  string    `json:"acknowledged_by,omitempty"`
	// Quiet is set for transitions that replace the notification without
	// waking anyone (acknowledged, resolved, auto-cleared).
	Quiet bool `json:"quiet"`
	// URL is the alert's page; AckURL the one-tap acknowledgement, which
	// takes ActionToken in X-Care-Action-Token. Channels that post to
	// another system get absolute URLs.
	URL    string `json:"url"`
	AckURL string `json:"ack_url,omitempty"`
	// ActionToken is minted per phone by the Web Push channel; a
	// channel without phones gets one per recipient.
	ActionToken string `json:"action_token,omitempty"`
}

// Channel is one way of reaching a care worker: Web Push, a webhook to an
// SMS or messenger gateway, later others. Send returns nil when the
// notification is delivered (or needs no delivery), a *RetryError when it
// should be tried again later, and any other error when retrying cannot
// help (logged and counted, never retried).
type Channel interface {
	Name() string
	Send(ctx context.Context, n Notification) error
}

// RetryError asks for the notification to be sent again, not before After
// (0: the dispatcher's backoff).
type RetryError struct {
	After time.Duration
	Err   error
}

func (e *RetryError) Error() string { return fmt.Sprintf("retry later (after %v): %v", e.After, e.Err) }
func (e *RetryError) Unwrap() error { return e.Err }

// retryAfter reports whether err asks for a retry, and how long to wait.
func retryAfter(err error) (time.Duration, bool) {
	var re *RetryError
	if errors.As(err, &re) {
		return re.After, true
	}
	return 0, false
}

// MaskName hides a resident's name for a lock screen: first and last
// letter of each word kept, the rest ○ (김영희 → 김○희, 이철 → 이○,
// Alice Brown → A○○○e B○○○n).
func MaskName(name string) string {
	words := strings.Fields(name)
	for i, w := range words {
		r := []rune(w)
		switch n := utf8.RuneCountInString(w); {
		case n <= 1:
			words[i] = "○"
		case n == 2:
			words[i] = string(r[0]) + "○"
		default:
			words[i] = string(r[0]) + strings.Repeat("○", n-2) + string(r[n-1])
		}
	}
	return strings.Join(words, " ")
}

// texts are the push texts per locale. The console's catalogues will take
// them over; TestTextsParity keeps ko and en aligned meanwhile.
var texts = map[string]map[string]string{
	"ko": {
		"info": "알림", "warning": "주의", "high": "경고", "critical": "위급",
		"raised": "%s 님 · 새 알림", "repeated": "%s 님 · 반복 발생", "escalated": "%s 님 · %d단계 미확인",
		"acknowledged": "%s 님 · 확인됨", "resolved": "%s 님 · 종료됨", "auto_cleared": "%s 님 · 자동 해제",
		"level": "%s·%d단계",
	},
	"en": {
		"info": "Info", "warning": "Warning", "high": "High", "critical": "Critical",
		"raised": "%s · new alert", "repeated": "%s · again", "escalated": "%s · level %d, not yet acknowledged",
		"acknowledged": "%s · acknowledged", "resolved": "%s · resolved", "auto_cleared": "%s · cleared",
		"level": "%s · level %d",
	},
}

// render returns a notification's title and body in locale (ko default).
// ruleName names the rule in that language (the console's catalogue,
// i18n.Catalogs.RuleName); nil shows the rule id.
func render(n Notification, locale string, ruleName func(locale, rule string) string) (title, body string) {
	t, ok := texts[locale]
	if !ok {
		locale, t = "ko", texts["ko"]
	}
	sev := t[n.Severity]
	if sev == "" {
		sev = n.Severity
	}
	if n.EscalationLevel > 1 {
		sev = fmt.Sprintf(t["level"], sev, n.EscalationLevel)
	}
	rule := n.Rule
	if ruleName != nil {
		rule = ruleName(locale, n.Rule)
	}
	title = "[" + sev + "] " + rule
	f := t[n.Transition]
	if f == "" {
		f = t["raised"]
	}
	if n.Transition == "escalated" {
		body = fmt.Sprintf(f, n.ResidentMasked, n.EscalationLevel)
	} else {
		body = fmt.Sprintf(f, n.ResidentMasked)
	}
	return title, body
}
