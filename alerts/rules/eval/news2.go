package eval

import "github.com/carehub/carehub/alerts/rules"

// news2Params are the vitals NEWS2 reads, in the order of vitalState.
var news2Params = [...]string{rules.RuleRespRate, rules.RuleSpO2, rules.RuleSystolicBP, rules.RuleHeartRate, rules.RuleBodyTemp}

// minNEWS2Params is how many of the five parameters must be fresh for a
// score: a "NEWS2" from a heart rate alone would only repeat the heart-rate
// rule without its persistence, and the total means little with most of the
// chart missing. Three lets a wearable (pulse, SpO2) with a radar
// (respiration) or a BP monitor give a score.
const minNEWS2Params = 3

func news2Score(param int, v float64, scale int) int {
	switch param {
	case 0:
		return rules.News2Resp(v)
	case 1:
		return rules.News2SpO2(v, scale)
	case 2:
		return rules.News2Systolic(v)
	case 3:
		return rules.News2Pulse(v)
	}
	return rules.News2Temp(v)
}
