package eval

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/internal/model"
)

// settingsMap is a SettingsSource the tests change between calls.
type settingsMap map[string]rules.Settings

func (m settingsMap) Settings(id string) rules.Settings {
	if s, ok := m[id]; ok {
		return s
	}
	return rules.DefaultSettings()
}

// t0 is 12:00 in Seoul.
var t0 = time.Date(2025, 3, 10, 3, 0, 0, 0, time.UTC)

func seoul(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		t.Fatalf("load Asia/Seoul: %v", err)
	}
	return loc
}

func newEval(t *testing.T, s settingsMap) *Evaluator {
	t.Helper()
	if s == nil {
		s = settingsMap{}
	}
	return New(seoul(t), s)
}

const res = "r1"

func reading(dev, kind string, ts time.Time, kv ...any) model.Reading {
	vals := map[string]float64{}
	for i := 0; i < len(kv); i += 2 {
		vals[kv[i].(string)] = toF(kv[i+1])
	}
	return model.Reading{ResidentID: res, HomeID: "h1", DeviceID: dev, DeviceKind: kind, TS: ts, Values: vals}
}

func toF(v any) float64 {
	switch x := v.(type) {
	case int:
		return float64(x)
	case float64:
		return x
	}
	panic(fmt.Sprintf("value %T", v))
}

func event(dev, kind, typ string, ts time.Time, data string) model.Event {
	ev := model.Event{ResidentID: res, HomeID: "h1", DeviceID: dev, DeviceKind: kind, TS: ts, Type: typ}
	if data != "" {
		ev.Data = json.RawMessage(data)
	}
	return ev
}

func status(dev, kind string, ts time.Time, online bool, battery ...float64) model.Status {
	s := model.Status{ResidentID: res, HomeID: "h1", DeviceID: dev, DeviceKind: kind, TS: ts, Online: online}
	if len(battery) > 0 {
		s.BatteryPct = &battery[0]
	}
	return s
}

// brief renders signals as "rule:severity" or "rule:clear", in order.
func brief(sigs []rules.Signal) string {
	var parts []string
	for _, s := range sigs {
		if s.Active {
			parts = append(parts, s.Rule+":"+s.Severity)
		} else {
			parts = append(parts, s.Rule+":clear")
		}
	}
	return strings.Join(parts, " ")
}

func expect(t *testing.T, what string, got []rules.Signal, want string) {
	t.Helper()
	if b := brief(got); b != want {
		t.Fatalf("%s: signals %q, want %q", what, b, want)
	}
}

// only returns the signals of one rule.
func only(sigs []rules.Signal, rule string) []rules.Signal {
	var out []rules.Signal
	for _, s := range sigs {
		if s.Rule == rule {
			out = append(out, s)
		}
	}
	return out
}
