package rulemsg_test

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/web/rulemsg"
)

// catalogue reads web/i18n/<lang>.json as the console does (i18n.Catalogs.T).
func catalogue(t *testing.T, lang string) rulemsg.T {
	t.Helper()
	b, err := os.ReadFile("../i18n/" + lang + ".json")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return func(key string, args ...any) string {
		s, ok := m[key]
		if !ok {
			return key
		}
		if len(args) == 0 {
			return s
		}
		return fmt.Sprintf(s, args...)
	}
}

// example is an alert of rule as the rule engine raises it (alerts/rules/eval).
func example(rule string) alerts.Alert {
	a := alerts.Alert{Rule: rule, Message: "stored English text", DeviceID: "dev-1"}
	switch rule {
	case rules.RuleInactivity:
		a.Value, a.Threshold = 12.4, 12
	case rules.RuleBathroomStay:
		a.Value = 75
	case rules.RuleNEWS2:
		a.Metric, a.Value, a.Threshold = "news2", 7, 5
	case rules.RuleLowBattery:
		a.Metric, a.Value, a.Threshold = "battery_pct", 12, 15
	default:
		if thresholdRules(rule) {
			a.Metric, a.Value, a.Threshold = rule, 50, 40
		}
	}
	return a
}

func thresholdRules(rule string) bool {
	switch rule {
	case rules.RuleHeartRate, rules.RuleRespRate, rules.RuleSpO2, rules.RuleSystolicBP, rules.RuleDiastolicBP, rules.RuleBodyTemp,
		rules.RuleGlucose, rules.RuleRoomTemp, rules.RuleHumidity, rules.RuleCO2, rules.RulePM25, rules.RuleCO:
		return true
	}
	return false
}

// TestEveryRuleHasText: every rule the engine knows has its own text in
// both languages, with all its parameters filled in (no stored English,
// no fmt error marks, no catalogue keys).
func TestEveryRuleHasText(t *testing.T) {
	for _, lang := range []string{"ko", "en"} {
		tr := catalogue(t, lang)
		for _, rule := range rules.RuleNames() {
			got := rulemsg.Text(tr, example(rule))
			if got == "stored English text" || strings.Contains(got, "%!") || strings.Contains(got, "rule.") || strings.Contains(got, "cmp.") || got == "" {
				t.Errorf("%s %s: %q", lang, rule, got)
			}
		}
	}
}

func TestText(t *testing.T) {
	ko, en := catalogue(t, "ko"), catalogue(t, "en")
	cases := []struct {
		a      alerts.Alert
		ko, en string
	}{
		{alerts.Alert{Rule: "systolic_bp", Metric: "systolic_bp", Value: 182, Threshold: 180, Message: "systolic_bp 182 mm[Hg] (≥ 180)"},
			"수축기 혈압 182 mmHg — 기준 180 초과", "Systolic BP 182 mmHg — above the limit of 180"},
		{alerts.Alert{Rule: "spo2", Metric: "spo2", Value: 89, Threshold: 91},
			"산소포화도 89 % — 기준 91 미만", "SpO2 89 % — below the limit of 91"},
		// At the limit: the side the rule raises on (SpO2's bands are "≤").
		{alerts.Alert{Rule: "spo2", Metric: "spo2", Value: 91, Threshold: 91}, "산소포화도 91 % — 기준 91 이하", "SpO2 91 % — at the limit of 91"},
		{alerts.Alert{Rule: "heart_rate", Metric: "heart_rate", Value: 131, Threshold: 131}, "심박 131 회/분 — 기준 131 이상", "Heart rate 131 /min — at the limit of 131"},
		{alerts.Alert{Rule: "body_temp", Metric: "body_temp", Value: 38.62, Threshold: 38.1}, "체온 38.6 °C — 기준 38.1 초과", "Body temperature 38.6 °C — above the limit of 38.1"},
		{alerts.Alert{Rule: "sos", Message: "SOS button pressed"}, "SOS 호출 버튼 눌림", "SOS button pressed"},
		{alerts.Alert{Rule: "co", Message: "co detected"}, "일산화탄소 감지", "Carbon monoxide detected"},
		{alerts.Alert{Rule: "inactivity", Value: 12.5, Threshold: 12}, "12시간 30분 동안 움직임 없음 (기준 12시간)", "No movement for 12 h 30 min (limit 12 h)"},
		{alerts.Alert{Rule: "bathroom_stay", Value: 62}, "화장실에 1시간 2분 넘게 머무름", "In the bathroom for over 1 h 2 min"},
		{alerts.Alert{Rule: "news2", Metric: "news2", Value: 7, Threshold: 5}, "NEWS2 조기경보 점수 7점 — 기준 5점 초과", "NEWS2 early warning score 7 — above the limit of 5"},
		{alerts.Alert{Rule: "news2", Metric: "news2", Value: 6}, "NEWS2 조기경보 점수 6점", "NEWS2 early warning score 6"},
		{alerts.Alert{Rule: "low_battery", Metric: "battery_pct", DeviceID: "band-1", Value: 12, Threshold: 15},
			"기기 band-1 배터리 12% — 기준 15% 미만", "Device band-1 battery 12 % — below the limit of 15 %"},
		{alerts.Alert{Rule: "device_offline", DeviceID: "pir-2"}, "기기 pir-2 연결 끊김", "Device pir-2 offline"},
		// A parameter the text needs is missing: the stored message.
		{alerts.Alert{Rule: "device_offline", Message: "device offline: silent for 3h0m0s"}, "device offline: silent for 3h0m0s", "device offline: silent for 3h0m0s"},
		// A rule the catalogue does not know: the stored message.
		{alerts.Alert{Rule: "future_rule", Message: "something new"}, "something new", "something new"},
	}
	for _, c := range cases {
		if got := rulemsg.Text(ko, c.a); got != c.ko {
			t.Errorf("ko %s %v: %q, want %q", c.a.Rule, c.a.Value, got, c.ko)
		}
		if got := rulemsg.Text(en, c.a); got != c.en {
			t.Errorf("en %s %v: %q, want %q", c.a.Rule, c.a.Value, got, c.en)
		}
	}
}

func TestUnit(t *testing.T) {
	ko := catalogue(t, "ko")
	for in, want := range map[string]string{"mm[Hg]": "mmHg", "Cel": "°C", "/min": "회/분", "kg": "kg", "": ""} {
		if got := rulemsg.Unit(ko, in); got != want {
			t.Errorf("Unit(%q) = %q, want %q", in, got, want)
		}
	}
}
