package influx

import (
	"errors"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/carehub/carehub/internal/model"
)

// Measurement names of the schema (contract §2).
const (
	MeasurementReadings = "readings"
	MeasurementEvents   = "events"
	MeasurementStatus   = "device_status"
	MeasurementAlerts   = "alerts"
)

// Why a message cannot become a point. The writer dead-letters such messages
// with the error text as the reason.
var (
	ErrNoTime   = errors.New("point has no timestamp")
	ErrNoFields = errors.New("point has no finite field value")
	ErrBadKey   = errors.New("tag or field key or value holds a backslash, a control character or invalid UTF-8")
)

// minTime and maxTime bound what InfluxDB stores (int64 nanoseconds since
// 1677-09-21 .. 2262-04-11); a time outside cannot be written at all.
var (
	minTime = time.Unix(0, math.MinInt64+1)
	maxTime = time.Unix(0, math.MaxInt64)
)

// AlertPoint is one alert transition as stored in the alerts measurement
// (contract §2). Only ids and rule vocabulary: never names.
type AlertPoint struct {
	ResidentID         string
	Rule               string
	Severity           string
	Transition         string
	TS                 time.Time
	Value              float64
	SecondsSinceRaised float64
}

// AppendReading appends r as one line of the readings measurement (one float
// field per metric, fields sorted by name) and returns the extended buffer.
// When r cannot be a point (see EncodeReading) buf is returned unchanged.
func AppendReading(buf []byte, r model.Reading) []byte {
	out, err := EncodeReading(buf, r)
	if err != nil {
		return buf
	}
	return out
}

// EncodeReading is AppendReading that says why r cannot be a point. Values
// that are NaN or ±Inf are left out (line protocol cannot carry them); a
// reading left with none is ErrNoFields. On error buf is returned unchanged.
func EncodeReading(buf []byte, r model.Reading) ([]byte, error) {
	start := len(buf)
	if err := checkTime(r.TS); err != nil {
		return buf, err
	}
	// Sort the metric names without allocating for the usual few metrics.
	var stack [24]string
	names := stack[:0]
	for k, v := range r.Values {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		names = append(names, k)
	}
	if len(names) == 0 {
		return buf, ErrNoFields
	}
	insertionSort(names)
	buf = appendMeasurement(buf, MeasurementReadings)
	var ok bool
	// Tags in key order: device_id, device_kind, home_id, resident_id.
	if buf, ok = appendTag(buf, "device_id", r.DeviceID); !ok {
		return buf[:start], ErrBadKey
	}
	if buf, ok = appendTag(buf, "device_kind", r.DeviceKind); !ok {
		return buf[:start], ErrBadKey
	}
	if buf, ok = appendTag(buf, "home_id", r.HomeID); !ok {
		return buf[:start], ErrBadKey
	}
	if buf, ok = appendTag(buf, "resident_id", r.ResidentID); !ok {
		return buf[:start], ErrBadKey
	}
	for i, name := range names {
		if i == 0 {
			buf = append(buf, ' ')
		} else {
			buf = append(buf, ',')
		}
		if buf, ok = appendKey(buf, name); !ok {
			return buf[:start], ErrBadKey
		}
		buf = append(buf, '=')
		buf = appendFloat(buf, r.Values[name])
	}
	return appendTime(buf, r.TS), nil
}

// AppendEvent appends e as one line of the events measurement with field
// value=1; buf is returned unchanged when e cannot be a point.
func AppendEvent(buf []byte, e model.Event) []byte {
	out, err := EncodeEvent(buf, e)
	if err != nil {
		return buf
	}
	return out
}

// EncodeEvent is AppendEvent that says why e cannot be a point.
func EncodeEvent(buf []byte, e model.Event) ([]byte, error) {
	start := len(buf)
	if err := checkTime(e.TS); err != nil {
		return buf, err
	}
	buf = appendMeasurement(buf, MeasurementEvents)
	var ok bool
	for _, t := range [...][2]string{{"device_id", e.DeviceID}, {"home_id", e.HomeID}, {"resident_id", e.ResidentID}, {"type", e.Type}} {
		if buf, ok = appendTag(buf, t[0], t[1]); !ok {
			return buf[:start], ErrBadKey
		}
	}
	buf = append(buf, " value=1"...)
	return appendTime(buf, e.TS), nil
}

// AppendStatus appends s as one line of the device_status measurement;
// battery_pct and rssi_dbm are written only when the device sent them.
func AppendStatus(buf []byte, s model.Status) []byte {
	out, err := EncodeStatus(buf, s)
	if err != nil {
		return buf
	}
	return out
}

// EncodeStatus is AppendStatus that says why s cannot be a point.
func EncodeStatus(buf []byte, s model.Status) ([]byte, error) {
	start := len(buf)
	if err := checkTime(s.TS); err != nil {
		return buf, err
	}
	buf = appendMeasurement(buf, MeasurementStatus)
	var ok bool
	if buf, ok = appendTag(buf, "device_id", s.DeviceID); !ok {
		return buf[:start], ErrBadKey
	}
	if buf, ok = appendTag(buf, "home_id", s.HomeID); !ok {
		return buf[:start], ErrBadKey
	}
	if s.BatteryPct != nil && finite(*s.BatteryPct) {
		buf = append(buf, " battery_pct="...)
		buf = appendFloat(buf, *s.BatteryPct)
		buf = append(buf, ',')
	} else {
		buf = append(buf, ' ')
	}
	if s.Online {
		buf = append(buf, "online=true"...)
	} else {
		buf = append(buf, "online=false"...)
	}
	if s.RSSIdBm != nil && finite(*s.RSSIdBm) {
		buf = append(buf, ",rssi_dbm="...)
		buf = appendFloat(buf, *s.RSSIdBm)
	}
	return appendTime(buf, s.TS), nil
}

// AppendAlert appends a as one line of the alerts measurement; buf is
// returned unchanged when a cannot be a point.
func AppendAlert(buf []byte, a AlertPoint) []byte {
	out, err := EncodeAlert(buf, a)
	if err != nil {
		return buf
	}
	return out
}

// EncodeAlert is AppendAlert that says why a cannot be a point.
func EncodeAlert(buf []byte, a AlertPoint) ([]byte, error) {
	start := len(buf)
	if err := checkTime(a.TS); err != nil {
		return buf, err
	}
	if !finite(a.Value) || !finite(a.SecondsSinceRaised) {
		return buf, ErrNoFields
	}
	buf = appendMeasurement(buf, MeasurementAlerts)
	var ok bool
	for _, t := range [...][2]string{{"resident_id", a.ResidentID}, {"rule", a.Rule}, {"severity", a.Severity}, {"transition", a.Transition}} {
		if buf, ok = appendTag(buf, t[0], t[1]); !ok {
			return buf[:start], ErrBadKey
		}
	}
	buf = append(buf, " seconds_since_raised="...)
	buf = appendFloat(buf, a.SecondsSinceRaised)
	buf = append(buf, ",value="...)
	buf = appendFloat(buf, a.Value)
	return appendTime(buf, a.TS), nil
}

func checkTime(t time.Time) error {
	if t.IsZero() || t.Before(minTime) || t.After(maxTime) {
		return ErrNoTime
	}
	return nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// appendMeasurement escapes commas and spaces (line protocol: measurement).
func appendMeasurement(buf []byte, m string) []byte {
	for i := 0; i < len(m); i++ {
		switch c := m[i]; c {
		case ',', ' ':
			buf = append(buf, '\\', c)
		default:
			buf = append(buf, c)
		}
	}
	return buf
}

// appendTag appends ",key=value"; an empty value is left out, as line
// protocol has no empty tag values (a missing tag reads as empty).
func appendTag(buf []byte, key, value string) ([]byte, bool) {
	if value == "" {
		return buf, true
	}
	buf = append(buf, ',')
	var ok bool
	if buf, ok = appendKey(buf, key); !ok {
		return buf, false
	}
	buf = append(buf, '=')
	return appendKey(buf, value)
}

// appendKey escapes a tag key, tag value or field key: commas, equals signs
// and spaces get a backslash (line protocol spec, "Special characters").
// A backslash itself is refused, not escaped: InfluxDB 1.8 keeps "\\" as two
// characters while 2.x reads it as one, so no escaping is portable. Control
// characters (a newline ends the line) and invalid UTF-8 are refused too.
// Ids (contract: [a-z0-9_-]) never hit either case.
func appendKey(buf []byte, s string) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ',' || c == '=' || c == ' ':
			buf = append(buf, '\\', c)
		case c == '\\' || c < 0x20 || c == 0x7f:
			return buf, false
		case c < utf8.RuneSelf:
			buf = append(buf, c)
		default:
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n <= 1 {
				return buf, false
			}
			buf = append(buf, s[i:i+n]...)
			i += n - 1
		}
	}
	return buf, true
}

// appendFloat writes the shortest decimal that reads back as f; integers get
// no suffix, so they are floats in InfluxDB (contract §2: float fields).
func appendFloat(buf []byte, f float64) []byte {
	return strconv.AppendFloat(buf, f, 'g', -1, 64)
}

// appendTime appends " <unix ms>\n" (contract §2: precision ms).
func appendTime(buf []byte, t time.Time) []byte {
	buf = append(buf, ' ')
	buf = strconv.AppendInt(buf, t.UnixMilli(), 10)
	return append(buf, '\n')
}

func insertionSort(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
