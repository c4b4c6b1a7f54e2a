package rules

// Rule names. They are stable: the alert lifecycle keys open alerts by them,
// the API lists them, and Settings.Disabled, Limits and Snoozed use them.
const (
	// Threshold rules over one metric (domain.md "Default alert rules").
	RuleHeartRate   = "heart_rate"
	RuleRespRate    = "resp_rate"
	RuleSpO2        = "spo2"
	RuleSystolicBP  = "systolic_bp"
	RuleDiastolicBP = "diastolic_bp" // the "/120" of "≥ 180/120 on a repeat reading"
	RuleBodyTemp    = "body_temp"
	RuleGlucose     = "glucose"
	RuleRoomTemp    = "room_temp"
	RuleHumidity    = "humidity"
	RuleCO2         = "co2"
	RulePM25        = "pm2_5"
	RuleCO          = "co" // also raised by a CO detector's "co" event

	// RuleNEWS2 scores the latest vitals (Royal College of Physicians NEWS2).
	RuleNEWS2 = "news2"

	// Event rules.
	RuleSOS       = "sos"
	RuleSmoke     = "smoke"
	RuleGas       = "gas"
	RuleFall      = "fall"
	RuleWaterLeak = "water_leak"

	// Activity and routine rules, paused in away, hospital and quiet mode.
	RuleInactivity   = "inactivity"
	RuleNightExit    = "night_exit"
	RuleBathroomStay = "bathroom_stay"

	// Device rules. Their signals carry DeviceID; all but cannot_monitor are
	// per device.
	RuleDeviceOffline   = "device_offline"
	RuleLowBattery      = "low_battery"
	RuleWearableNotWorn = "wearable_not_worn"
	RuleCannotMonitor   = "cannot_monitor"
)

// ruleKind says which fields of a Limit a rule reads, for Validate.
type ruleKind int

const (
	kindThreshold  ruleKind = iota // Bands, ClearLow/High, ClearFor, MaxGap
	kindNEWS2                      // Bands on the score, ClearHigh, Window (staleness)
	kindCancelable                 // Window (cancel window): sos, fall
	kindEvent                      // no limits: smoke, gas, water_leak
	kindInactivity                 // Bands with For only
	kindNightExit                  // From, To, Window
	kindWindow                     // Window: bathroom_stay, wearable_not_worn
	kindOffline                    // Count, Window (Last Will grace)
	kindBattery                    // Bands (< / <=), ClearLow
	kindNoLimit                    // cannot_monitor
)

// ruleOrder lists every rule in the order RuleNames returns them.
var ruleOrder = []struct {
	name string
	kind ruleKind
}{
	{RuleSOS, kindCancelable}, {RuleSmoke, kindEvent}, {RuleGas, kindEvent},
	{RuleCO, kindThreshold}, {RuleFall, kindCancelable},
	{RuleInactivity, kindInactivity}, {RuleBathroomStay, kindWindow}, {RuleNightExit, kindNightExit},
	{RuleHeartRate, kindThreshold}, {RuleRespRate, kindThreshold}, {RuleSpO2, kindThreshold},
	{RuleSystolicBP, kindThreshold}, {RuleDiastolicBP, kindThreshold}, {RuleBodyTemp, kindThreshold},
	{RuleGlucose, kindThreshold}, {RuleNEWS2, kindNEWS2},
	{RuleRoomTemp, kindThreshold}, {RuleHumidity, kindThreshold}, {RuleCO2, kindThreshold},
	{RulePM25, kindThreshold}, {RuleWaterLeak, kindEvent},
	{RuleDeviceOffline, kindOffline}, {RuleCannotMonitor, kindNoLimit},
	{RuleLowBattery, kindBattery}, {RuleWearableNotWorn, kindWindow},
}

// RuleNames returns every rule name, in the order of domain.md's table, for
// the API and the docs.
func RuleNames() []string {
	out := make([]string, len(ruleOrder))
	for i, r := range ruleOrder {
		out[i] = r.name
	}
	return out
}

func kindOf(rule string) (ruleKind, bool) {
	for _, r := range ruleOrder {
		if r.name == rule {
			return r.kind, true
		}
	}
	return 0, false
}

// validSeverity reports whether s is one of the Severity names.
func validSeverity(s string) bool {
	switch s {
	case SeverityInfo, SeverityWarning, SeverityHigh, SeverityCritical:
		return true
	}
	return false
}
