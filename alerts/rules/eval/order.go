package eval

import "github.com/carehub/carehub/alerts/rules"

// thresholdRules are the metric rules in the order a reading is evaluated,
// so that the signals of one reading come out in a stable order. The rule
// name is the metric name.
var thresholdRules = []string{
	rules.RuleHeartRate, rules.RuleRespRate, rules.RuleSpO2, rules.RuleSystolicBP, rules.RuleDiastolicBP, rules.RuleBodyTemp,
	rules.RuleGlucose, rules.RuleRoomTemp, rules.RuleHumidity, rules.RuleCO2, rules.RulePM25, rules.RuleCO,
}

// perDeviceMetric reports whether a metric's threshold state is kept per
// device rather than per resident: room climate and air quality differ from
// room to room, while vitals belong to one body whichever device measured
// them. The rule's severity is the highest over its devices.
func perDeviceMetric(metric string) bool {
	switch metric {
	case rules.RuleRoomTemp, rules.RuleHumidity, rules.RuleCO2, rules.RulePM25, rules.RuleCO:
		return true
	}
	return false
}

// Severity ranks: 0 is "no condition".
const (
	sevNone int8 = iota
	sevInfo
	sevWarning
	sevHigh
	sevCritical
)

var sevNames = [...]string{"", rules.SeverityInfo, rules.SeverityWarning, rules.SeverityHigh, rules.SeverityCritical}

func sevRank(s string) int8 {
	switch s {
	case rules.SeverityInfo:
		return sevInfo
	case rules.SeverityWarning:
		return sevWarning
	case rules.SeverityHigh:
		return sevHigh
	case rules.SeverityCritical:
		return sevCritical
	}
	return sevNone
}
