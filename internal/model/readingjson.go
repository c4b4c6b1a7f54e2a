package model

import (
	"bytes"
	"encoding/json"
	"math"
	"sort"
	"strconv"
	"time"
)

// ReadingJSON is AppendReadingJSON into a buffer of the right size: grown
// from nil it took five allocations and twice the bytes for a reading.
func ReadingJSON(r *Reading) []byte {
	n := len(`{"resident_id":"","home_id":"","device_id":"","device_kind":"","ts":"","values":{}}`) +
		len(r.ResidentID) + len(r.HomeID) + len(r.DeviceID) + len(r.DeviceKind) + len(time.RFC3339Nano)
	for k := range r.Values {
		n += len(k) + len(`"":,`) + 24 // the longest float64 strconv writes
	}
	return AppendReadingJSON(make([]byte, 0, n), r)
}

// AppendReadingJSON appends r as the contract §3 JSON, the same bytes
// encoding/json would produce, without reflection: it runs for every value
// carehub ingests.
func AppendReadingJSON(b []byte, r *Reading) []byte {
	b = append(b, `{"resident_id":"`...)
	b = append(b, r.ResidentID...) // ids are [a-z0-9_-]: nothing to escape
	b = append(b, `","home_id":"`...)
	b = append(b, r.HomeID...)
	b = append(b, `","device_id":"`...)
	b = append(b, r.DeviceID...)
	b = append(b, `","device_kind":"`...)
	b = append(b, r.DeviceKind...)
	b = append(b, `","ts":"`...)
	b = r.TS.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","values":{`...)
	var keys [8]string
	names := keys[:0]
	for k := range r.Values {
		names = append(names, k)
	}
	sort.Strings(names)
	for i, k := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, k...) // catalogue names: nothing to escape
		b = append(b, `":`...)
		b = appendJSONFloat(b, r.Values[k])
	}
	return append(b, "}}"...)
}

// appendJSONFloat formats f as encoding/json does (ES6 number formatting).
func appendJSONFloat(b []byte, f float64) []byte {
	abs, format := math.Abs(f), byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// 1e-07 → 1e-7, as encoding/json writes it.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// UnmarshalReading decodes a reading. Readings carehub published itself
// (AppendReadingJSON's exact layout) take a fast path without reflection:
// the InfluxDB writer and the alert engine each decode every reading. Any
// other layout (another publisher, escapes, extra fields) goes through
// encoding/json, so the result never depends on which path ran.
func UnmarshalReading(data []byte, r *Reading) error {
	if fastReading(data, r) {
		return nil
	}
	*r = Reading{}
	return json.Unmarshal(data, r)
}

func fastReading(d []byte, r *Reading) bool {
	rest, ok := fastReadingPrefix(d, r)
	return ok && len(rest) == 0
}

// fastReadingPrefix reads one reading in AppendReadingJSON's layout at the
// start of d and returns what follows it.
func fastReadingPrefix(d []byte, r *Reading) ([]byte, bool) {
	var ok bool
	if d, ok = cut(d, `{"resident_id":"`); !ok {
		return d, false
	}
	if r.ResidentID, d, ok = plainString(d); !ok {
		return d, false
	}
	if d, ok = cut(d, `,"home_id":"`); !ok {
		return d, false
	}
	if r.HomeID, d, ok = plainString(d); !ok {
		return d, false
	}
	if d, ok = cut(d, `,"device_id":"`); !ok {
		return d, false
	}
	if r.DeviceID, d, ok = plainString(d); !ok {
		return d, false
	}
	if d, ok = cut(d, `,"device_kind":"`); !ok {
		return d, false
	}
	if r.DeviceKind, d, ok = plainString(d); !ok {
		return d, false
	}
	if d, ok = cut(d, `,"ts":"`); !ok {
		return d, false
	}
	var ts string
	if ts, d, ok = plainString(d); !ok {
		return d, false
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return d, false
	}
	r.TS = t
	if d, ok = cut(d, `,"values":{`); !ok {
		return d, false
	}
	r.Values = make(map[string]float64, 4)
	if len(d) > 0 && d[0] == '}' {
		return closeReading(d)
	}
	for {
		if d, ok = cut(d, `"`); !ok {
			return d, false
		}
		var k string
		if k, d, ok = plainString(d); !ok {
			return d, false
		}
		if d, ok = cut(d, `:`); !ok {
			return d, false
		}
		end := bytes.IndexAny(d, ",}")
		if end <= 0 {
			return d, false
		}
		v, err := strconv.ParseFloat(string(d[:end]), 64)
		if err != nil {
			return d, false
		}
		if _, dup := r.Values[k]; dup {
			return d, false // encoding/json keeps the last; let it decide
		}
		r.Values[k] = v
		d = d[end:]
		if d[0] == '}' {
			return closeReading(d)
		}
		d = d[1:]
	}
}

// closeReading consumes the "}}" that ends a reading's values and the
// reading.
func closeReading(d []byte) ([]byte, bool) {
	if len(d) < 2 || d[1] != '}' {
		return d, false
	}
	return d[2:], true
}

func cut(d []byte, prefix string) ([]byte, bool) {
	if len(d) < len(prefix) || string(d[:len(prefix)]) != prefix {
		return d, false
	}
	return d[len(prefix):], true
}

// plainString reads up to the closing quote of a string without escapes or
// control characters; anything else is left to encoding/json.
func plainString(d []byte) (string, []byte, bool) {
	for i := 0; i < len(d); i++ {
		switch c := d[i]; {
		case c == '"':
			return string(d[:i]), d[i+1:], true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return "", d, false
		}
	}
	return "", d, false
}
