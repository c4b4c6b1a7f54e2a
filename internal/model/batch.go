package model

import (
	"encoding/json"
	"errors"
	"time"
)

// ReadingBatch is several readings in one message on
// care.readings.batch.{partition} (contract §3): JSON {"readings": [...]}
// with each element in the single-reading shape. carehub publishes one for
// every telemetry message that holds more than one record, so that a
// device's catch-up array is one JetStream message instead of thousands.
type ReadingBatch struct {
	Readings []Reading `json:"readings"`
}

// ReadingBatchJSON encodes rs as {"readings":[...]}, each element as
// AppendReadingJSON writes it.
func ReadingBatchJSON(rs []Reading) []byte {
	n := len(`{"readings":[]}`)
	for i := range rs {
		n += len(`{"resident_id":"","home_id":"","device_id":"","device_kind":"","ts":"","values":{}},`) +
			len(rs[i].ResidentID) + len(rs[i].HomeID) + len(rs[i].DeviceID) + len(rs[i].DeviceKind) + len(time.RFC3339Nano)
		for k := range rs[i].Values {
			n += len(k) + len(`"":,`) + 24
		}
	}
	b := make([]byte, 0, n)
	b = append(b, `{"readings":[`...)
	for i := range rs {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendReadingJSON(b, &rs[i])
	}
	return append(b, "]}"...)
}

// ErrEmptyBatch is returned for a batch without readings.
var ErrEmptyBatch = errors.New("reading batch holds no readings")

// UnmarshalReadings decodes a message of CARE_READINGS in either shape of
// contract §3, a single reading or a batch {"readings": [...]}, appending
// the readings to dst in the order they were published. The shape is told
// by the body, not the subject: a resident may be called "batch".
func UnmarshalReadings(data []byte, dst []Reading) ([]Reading, error) {
	if d, ok := cut(data, `{"readings":[`); ok {
		if out, ok := fastBatch(d, dst); ok {
			return out, nil
		}
	} else {
		var r Reading
		if fastReading(data, &r) {
			return append(dst, r), nil
		}
	}
	var probe struct {
		Readings json.RawMessage `json:"readings"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return dst, err
	}
	if probe.Readings == nil || string(probe.Readings) == "null" {
		var r Reading
		if err := json.Unmarshal(data, &r); err != nil {
			return dst, err
		}
		return append(dst, r), nil
	}
	var b ReadingBatch
	if err := json.Unmarshal(data, &b); err != nil {
		return dst, err
	}
	if len(b.Readings) == 0 {
		return dst, ErrEmptyBatch
	}
	return append(dst, b.Readings...), nil
}

// fastBatch reads the elements of a batch carehub wrote itself; d starts
// after `{"readings":[`.
func fastBatch(d []byte, dst []Reading) ([]Reading, bool) {
	start := len(dst)
	for {
		var r Reading
		rest, ok := fastReadingPrefix(d, &r)
		if !ok {
			return dst[:start], false
		}
		dst = append(dst, r)
		switch {
		case string(rest) == "]}":
			return dst, true
		case len(rest) > 0 && rest[0] == ',':
			d = rest[1:]
		default:
			return dst[:start], false
		}
	}
}
