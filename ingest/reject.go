package ingest

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/carehub/carehub/ingest/decode"
	"github.com/carehub/carehub/internal/model"
)

// Reject counts, reports and (rate-limited) logs input that was not stored.
// The embedded broker calls it for publishes its ACL refused.
func (in *Intake) Reject(deviceID, topic, kind, reason, detail string) {
	in.reject(deviceID, topic, kind, decode.Reject{Reason: reason, Detail: detail}, in.o.Clock())
}

func (in *Intake) reject(deviceID, topic, kind string, r decode.Reject, now time.Time) {
	in.m.rejected.With(r.Reason).Inc()
	data, _ := json.Marshal(model.Rejection{DeviceID: deviceID, Topic: topic, Reason: r.Reason, Detail: r.Detail, Metric: r.Metric, TS: now.UTC()})
	if err := in.o.NC.Publish(model.RejectedSubject(deviceID), data); err != nil {
		in.o.Log.Debug().Err(err).Msg("rejection report not published")
	}
	if in.limiter.allow(deviceID+"\x00"+r.Reason, now) {
		in.o.Log.Warn().Str("device_id", deviceID).Str("kind", kind).Str("reason", r.Reason).Str("detail", r.Detail).Msg("device input rejected")
	}
}

func deviceIDOrUnknown(topic string) string {
	if len(topic) > len(model.TopicPrefix) && topic[:len(model.TopicPrefix)] == model.TopicPrefix {
		rest := topic[len(model.TopicPrefix):]
		for i := 0; i < len(rest); i++ {
			if rest[i] == '/' {
				rest = rest[:i]
				break
			}
		}
		if validSubjectToken(rest) {
			return rest
		}
	}
	return "_invalid"
}

func validSubjectToken(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func kindOf(kind string) string {
	if kind == "" {
		return "unknown"
	}
	return kind
}

// logLimiter lets one log line per key through per period (contract §1: at
// most once per device per minute per reason), with a bounded memory.
type logLimiter struct {
	mu     sync.Mutex
	period time.Duration
	max    int
	last   map[string]time.Time
}

func newLogLimiter(period time.Duration, most int) *logLimiter {
	return &logLimiter{period: period, max: most, last: map[string]time.Time{}}
}

func (l *logLimiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.last[key]; ok && now.Sub(t) < l.period {
		return false
	}
	if len(l.last) >= l.max {
		for k, t := range l.last {
			if now.Sub(t) >= l.period {
				delete(l.last, k)
			}
		}
		if len(l.last) >= l.max {
			return false // a flood of distinct keys: stay quiet, the counters still count
		}
	}
	l.last[key] = now
	return true
}
