// Package rulemsg says what an alert is about in the reader's language: the
// text comes from the console's catalogue (web/i18n) by the alert's rule id,
// with the alert's own parameters (metric, value, threshold, device) put in.
// The alert's stored Message is the rule engine's short English text; it is
// kept as the fallback for a rule the catalogue does not know.
package rulemsg

import (
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/web/chart"
)

// T is the catalogue in one language: the text of key with args formatted
// into it, or key itself when the catalogue has no such key.
type T func(key string, args ...any) string

// thresholdRules compare one metric's reading with a limit; they share
// the catalogue's "rule.threshold" text.
var thresholdRules = map[string]bool{
	rules.RuleHeartRate: true, rules.RuleRespRate: true, rules.RuleSpO2: true, rules.RuleSystolicBP: true,
	rules.RuleDiastolicBP: true, rules.RuleBodyTemp: true, rules.RuleGlucose: true, rules.RuleRoomTemp: true,
	rules.RuleHumidity: true, rules.RuleCO2: true, rules.RulePM25: true, rules.RuleCO: true,
}

var argRef = regexp.MustCompile(`%\[(\d)\]`)

// Text is the alert's message in t's language. The catalogue's texts
// ("rule.<id>", "rule.threshold" for the threshold rules, "rule.news2.score"
// for a NEWS2 alert without a limit) pick their parameters by index:
// %[1]s the metric's name, %[2]s the value, %[3]s its unit, %[4]s the
// limit, %[5]s how the value compares with it ("above"), %[6]s the device.
// Durations (inactivity, bathroom stays) come as words in %[2]s and %[4]s.
// A text that needs a parameter the alert lacks, or a rule the catalogue
// does not know, gives the stored message.
func Text(t T, a alerts.Alert) string {
	key := "rule." + a.Rule
	switch {
	case thresholdRules[a.Rule] && a.Metric != "":
		key = "rule.threshold"
	case a.Rule == rules.RuleNEWS2 && a.Threshold == 0:
		key = "rule.news2.score"
	}
	tmpl := t(key)
	if tmpl == key {
		return a.Message
	}
	if !strings.Contains(tmpl, "%") {
		return tmpl
	}
	args := []any{"", chart.Num(a.Value), "", chart.Num(a.Threshold), t(compare(a)), a.DeviceID}
	if a.Metric != "" {
		if label := t("metric." + a.Metric); label != "metric."+a.Metric {
			args[0] = label
		}
		m, _ := catalog.LookupMetric(a.Metric)
		args[2] = Unit(t, m.Unit)
	}
	switch a.Rule {
	case rules.RuleInactivity: // hours
		args[1], args[3] = duration(t, a.Value*60), duration(t, a.Threshold*60)
	case rules.RuleBathroomStay: // minutes
		args[1] = duration(t, a.Value)
	}
	for _, m := range argRef.FindAllStringSubmatch(tmpl, -1) {
		if i, _ := strconv.Atoi(m[1]); i < 1 || i > len(args) || args[i-1] == "" {
			return a.Message
		}
	}
	return t(key, args...)
}

// compare is the catalogue key of how the value stands to the limit:
// above or below it, or at it on the side the rule raises on.
func compare(a alerts.Alert) string {
	switch {
	case a.Value > a.Threshold:
		return "cmp.gt"
	case a.Value < a.Threshold:
		return "cmp.lt"
	}
	if l, ok := rules.DefaultLimit(a.Rule, 1); ok {
		for _, b := range l.Bands {
			if b.Value == a.Threshold && b.Low() {
				return "cmp.le"
			}
		}
	}
	return "cmp.ge"
}

// duration writes minutes as words: "45 min", "12 h", "12 h 20 min"
// ("dur.*" keys).
func duration(t T, minutes float64) string {
	m := int(math.Round(minutes))
	switch {
	case m <= 0:
		return ""
	case m < 60:
		return t("dur.m", m)
	case m%60 == 0:
		return t("dur.h", m/60)
	}
	return t("dur.hm", m/60, m%60)
}

// Unit is how a UCUM unit is written for people ("mm[Hg]" as "mmHg",
// "Cel" as "°C"): the catalogue's "unit.<ucum>", else the unit itself.
func Unit(t T, ucum string) string {
	if ucum == "" {
		return ""
	}
	if s := t("unit." + ucum); s != "unit."+ucum {
		return s
	}
	return ucum
}
