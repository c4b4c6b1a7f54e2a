// Package catalog is the single source of truth for what carehub accepts from
// devices: the metric catalogue (contract §1), the event types and the device
// kinds, with the LOINC codes and UCUM units used for export (domain.md).
package catalog

import "sort"

// Metric describes one canonical measurement.
type Metric struct {
	Name  string  // canonical name, also the InfluxDB field name
	Unit  string  // UCUM unit as on the wire (contract §1)
	Min   float64 // smallest plausible value, inclusive
	Max   float64 // largest plausible value, inclusive
	LOINC string  // LOINC code for FHIR export, empty when none applies
	Vital bool    // a vital sign (shown in daily summaries, NEWS2 inputs)
}

var metrics = map[string]Metric{
	"heart_rate":   {Name: "heart_rate", Unit: "/min", Min: 20, Max: 250, LOINC: "8867-4", Vital: true},
	"resp_rate":    {Name: "resp_rate", Unit: "/min", Min: 2, Max: 80, LOINC: "9279-1", Vital: true},
	"spo2":         {Name: "spo2", Unit: "%", Min: 50, Max: 100, LOINC: "59408-5", Vital: true},
	"body_temp":    {Name: "body_temp", Unit: "Cel", Min: 30, Max: 45, LOINC: "8310-5", Vital: true},
	"systolic_bp":  {Name: "systolic_bp", Unit: "mm[Hg]", Min: 50, Max: 260, LOINC: "8480-6", Vital: true},
	"diastolic_bp": {Name: "diastolic_bp", Unit: "mm[Hg]", Min: 30, Max: 160, LOINC: "8462-4", Vital: true},
	"glucose":      {Name: "glucose", Unit: "mg/dL", Min: 10, Max: 800, LOINC: "41653-7", Vital: true},
	"weight":       {Name: "weight", Unit: "kg", Min: 20, Max: 300, LOINC: "29463-7", Vital: true},
	"steps":        {Name: "steps", Unit: "count", Min: 0, Max: 100000, LOINC: "41950-7"},
	"sleep_min":    {Name: "sleep_min", Unit: "min", Min: 0, Max: 1440},
	"room_temp":    {Name: "room_temp", Unit: "Cel", Min: -20, Max: 60},
	"humidity":     {Name: "humidity", Unit: "%", Min: 0, Max: 100},
	"co2":          {Name: "co2", Unit: "ppm", Min: 250, Max: 10000},
	"pm2_5":        {Name: "pm2_5", Unit: "ug/m3", Min: 0, Max: 1000},
	"co":           {Name: "co", Unit: "ppm", Min: 0, Max: 2000},
	"lux":          {Name: "lux", Unit: "lx", Min: 0, Max: 200000},
	"motion":       {Name: "motion", Unit: "count", Min: 0, Max: 10000},
	"presence":     {Name: "presence", Unit: "0/1", Min: 0, Max: 1},
	"in_bed":       {Name: "in_bed", Unit: "0/1", Min: 0, Max: 1},
	"door_open":    {Name: "door_open", Unit: "0/1", Min: 0, Max: 1},
	"power_w":      {Name: "power_w", Unit: "W", Min: 0, Max: 5000},
	"battery_pct":  {Name: "battery_pct", Unit: "%", Min: 0, Max: 100},
}

// LookupMetric returns the catalogue entry for a canonical metric name.
func LookupMetric(name string) (Metric, bool) {
	m, ok := metrics[name]
	return m, ok
}

// Metrics returns every metric, sorted by name.
func Metrics() []Metric {
	out := make([]Metric, 0, len(metrics))
	for _, m := range metrics {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Event types a device may send on its event topic (contract §1).
const (
	EventSOS        = "sos"
	EventSOSCancel  = "sos_cancel"
	EventFall       = "fall"
	EventFallCancel = "fall_cancel"
	EventSmoke      = "smoke"
	EventGas        = "gas"
	EventCO         = "co"
	EventWaterLeak  = "water_leak"
	EventDoorOpen   = "door_open"
	EventDoorClose  = "door_close"
	EventMotion     = "motion"
	EventBedExit    = "bed_exit"
	EventBedEnter   = "bed_enter"
	EventTamper     = "tamper"
	EventToilet     = "toilet_flush"
)

var eventTypes = map[string]bool{
	EventSOS: true, EventSOSCancel: true, EventFall: true, EventFallCancel: true,
	EventSmoke: true, EventGas: true, EventCO: true, EventWaterLeak: true,
	EventDoorOpen: true, EventDoorClose: true, EventMotion: true, EventBedExit: true,
	EventBedEnter: true, EventTamper: true, EventToilet: true,
}

// ValidEventType reports whether t is one of the contract's event types.
func ValidEventType(t string) bool { return eventTypes[t] }

// Device kinds. A kind says what a device is, which matters to rules such as
// "cannot monitor" (every motion-type sensor of a home offline).
const (
	KindMotion     = "motion"     // PIR motion sensor
	KindRadar      = "radar"      // mmWave radar: presence, heart and respiration rate, falls
	KindDoor       = "door"       // door contact
	KindBed        = "bed"        // bed pad
	KindSmoke      = "smoke"      // smoke detector
	KindGas        = "gas"        // gas detector
	KindCO         = "co"         // carbon monoxide detector
	KindSOS        = "sos"        // emergency button
	KindWearable   = "wearable"   // band or ring
	KindBP         = "bp"         // blood-pressure monitor
	KindGlucometer = "glucometer" // glucose meter
	KindScale      = "scale"      // weight scale
	KindEnv        = "env"        // room climate / air quality
	KindPower      = "power"      // smart plug, power meter
	KindWaterLeak  = "water_leak" // leak sensor
	KindGateway    = "gateway"    // home gateway publishing for others
)

var kinds = map[string]bool{
	KindMotion: true, KindRadar: true, KindDoor: true, KindBed: true, KindSmoke: true,
	KindGas: true, KindCO: true, KindSOS: true, KindWearable: true, KindBP: true,
	KindGlucometer: true, KindScale: true, KindEnv: true, KindPower: true,
	KindWaterLeak: true, KindGateway: true,
}

// ValidKind reports whether k is a known device kind.
func ValidKind(k string) bool { return kinds[k] }

// Kinds returns every device kind, sorted.
func Kinds() []string {
	out := make([]string, 0, len(kinds))
	for k := range kinds {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// MotionType reports whether a device of kind k tells carehub that a resident
// moves: the sensors the inactivity and "cannot monitor" rules depend on.
func MotionType(k string) bool {
	switch k {
	case KindMotion, KindRadar, KindDoor, KindBed:
		return true
	}
	return false
}

// BootstrapAdminID is the principal of the bootstrap admin token
// (CARE_ADMIN_TOKEN) in the audit trail and on alerts. The leading "@" is
// outside the id alphabet, so no user can ever have it.
const BootstrapAdminID = "@bootstrap-admin"

// ValidActor reports whether s may be recorded as who acted: a user id or
// the bootstrap admin.
func ValidActor(s string) bool { return s == BootstrapAdminID || ValidID(s) }

// ValidID reports whether s is a valid resident, home, device or user id
// (contract: ^[a-z0-9][a-z0-9_-]{0,63}$). It is on the ingest hot path, so it
// is written out rather than a regular expression.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// kindEvents lists the event types each device kind can produce (issue 9
// item 11; the table is in docs/device-protocol.md). It is generous where
// a real device of the kind plausibly emits the event (a smoke alarm with
// a CO cell, a bed pad that senses movement); a gateway publishes for the
// sensors behind it and may send any. Every kind may report tamper.
var kindEvents = map[string][]string{
	KindMotion:     {EventMotion, EventToilet},
	KindRadar:      {EventMotion, EventFall, EventFallCancel, EventBedExit, EventBedEnter},
	KindDoor:       {EventDoorOpen, EventDoorClose},
	KindBed:        {EventBedExit, EventBedEnter, EventMotion},
	KindSmoke:      {EventSmoke, EventCO},
	KindGas:        {EventGas, EventCO},
	KindCO:         {EventCO},
	KindSOS:        {EventSOS, EventSOSCancel, EventFall, EventFallCancel},
	KindWearable:   {EventSOS, EventSOSCancel, EventFall, EventFallCancel},
	KindBP:         nil,
	KindGlucometer: nil,
	KindScale:      nil,
	KindEnv:        nil,
	KindPower:      nil,
	KindWaterLeak:  {EventWaterLeak, EventToilet},
}

// KindEmits reports whether a device of kind may send events of type t:
// ingest rejects the others as event_not_for_kind, so that a hijacked
// door contact cannot raise a smoke alarm that escalates to 119.
func KindEmits(kind, t string) bool {
	if !eventTypes[t] {
		return false
	}
	if kind == KindGateway || t == EventTamper {
		return kinds[kind]
	}
	for _, e := range kindEvents[kind] {
		if e == t {
			return true
		}
	}
	return false
}
