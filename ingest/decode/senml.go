package decode

// This file decodes telemetry sent as SenML (RFC 8428, contract §1).

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/model"
)

// unitConversions lists the SenML units carehub converts to a catalogue
// unit instead of rejecting (contract §1 "or be a unit carehub converts").
// Names are those of the SenML units registry (RFC 8428 §12.1, RFC 8798).
// It is kept small on purpose: a device maker who needs another unit asks.
// metric, when set, restricts a conversion to one metric: "%RH" is a
// humidity, not an SpO2.
var unitConversions = []struct {
	from, to, metric string
	conv             func(float64) float64
}{
	{from: "Far", to: "Cel", conv: func(f float64) float64 { return (f - 32) * 5 / 9 }},
	{from: "K", to: "Cel", conv: func(k float64) float64 { return k - 273.15 }},
	{from: "1/min", to: "/min", conv: sameValue},
	{from: "beat/min", to: "/min", metric: "heart_rate", conv: sameValue},
	{from: "%RH", to: "%", metric: "humidity", conv: sameValue},
	{from: "%EL", to: "%", metric: "battery_pct", conv: sameValue},
}

func sameValue(v float64) float64 { return v }

// senmlRecord holds the fields of one SenML record that are not base fields.
type senmlRecord struct {
	n, u         []byte
	hasN, hasU   bool
	v            float64
	hasV, hasVB  bool
	vb           bool
	t            float64
	hasT         bool
	other        string // "vs", "vd" or "s": a value carehub does not take
	values       int    // how many of v, vb, vs, vd, s
	bad          string // first malformed-field detail
	badTimestamp string // detail of a non-numeric t or bt
}

// senml decodes a SenML pack (RFC 8428 §4): an array of records whose base
// fields bn, bt, bu and bv apply to that record and every later one.
// Consecutive records that resolve to the same time become one Sample.
func (d *msgDecoder) senml(w *jsonWalker) {
	var bn, bu []byte
	var bt, bv float64
	var last time.Time // time of the last sample appended by this pack
	lastIdx := -1
	w.open()
	n := 0
	for ; w.next(); n++ {
		if c := w.peek(); c != '{' {
			d.rj.add(model.ReasonMalformed, "", fmt.Sprintf("SenML record %d is %s, want an object (RFC 8428 §4)", n, jsonKind(c)))
			w.skip()
			continue
		}
		var r senmlRecord
		w.open()
		for w.next() {
			key := w.key()
			switch string(key) {
			case "bn":
				if s, ok := w.str(); ok {
					bn = s
				} else {
					r.bad = "bn is " + jsonKind(w.peek()) + ", want a string"
					w.skip()
				}
			case "bu":
				if s, ok := w.str(); ok {
					bu = s
				} else {
					r.bad = "bu is " + jsonKind(w.peek()) + ", want a string"
					w.skip()
				}
			case "bt":
				if f, ok := w.num(); ok {
					bt = f
				} else {
					r.badTimestamp = "bt is not a number of seconds"
				}
			case "bv":
				if f, ok := w.num(); ok {
					bv = f
				} else {
					r.bad = "bv is not a number"
				}
			case "n":
				if s, ok := w.str(); ok {
					r.n, r.hasN = s, true
				} else {
					r.bad = "n is " + jsonKind(w.peek()) + ", want a string"
					w.skip()
				}
			case "u":
				if s, ok := w.str(); ok {
					r.u, r.hasU = s, len(s) > 0
				} else {
					r.bad = "u is " + jsonKind(w.peek()) + ", want a string"
					w.skip()
				}
			case "v":
				r.values++
				if f, ok := w.num(); ok {
					r.v, r.hasV = f, true
				} else {
					r.bad = "v is not a number"
				}
			case "vb":
				r.values++
				switch lit := w.skip(); string(lit) {
				case "true":
					r.vb, r.hasVB = true, true
				case "false":
					r.vb, r.hasVB = false, true
				default:
					r.bad = "vb is not true or false"
				}
			case "vs", "vd", "s":
				r.values++
				r.other = string(key)
				w.skip()
			case "t":
				if f, ok := w.num(); ok {
					r.t, r.hasT = f, true
				} else {
					r.badTimestamp = "t is not a number of seconds"
				}
			default:
				// RFC 8428 §4.4: a field whose name ends in "_" must be
				// understood, so a record carrying an unknown one is dropped.
				// Other unknown fields (bver, ut, ...) are ignored.
				if len(key) > 0 && key[len(key)-1] == '_' {
					r.bad = "must-understand field " + quoteEcho(key) + " is not supported (RFC 8428 §4.4)"
				}
				w.skip()
			}
		}
		if !r.hasN && r.values == 0 && !r.hasT && !r.hasU && r.bad == "" && r.badTimestamp == "" {
			continue // only base fields: they apply to the records that follow
		}
		if r.bad != "" {
			d.rj.add(model.ReasonMalformed, "", fmt.Sprintf("SenML record %d: %s", n, r.bad))
			continue
		}
		metric, foreign, name := senmlMetric(bn, r.n, d.deviceID)
		if len(name) == 0 {
			d.rj.add(model.ReasonMalformed, "", fmt.Sprintf("SenML record %d has no name; set n (and bn)", n))
			continue
		}
		if foreign {
			d.rj.add(model.ReasonTopicNotAllowed, "", fmt.Sprintf("SenML record %d: name %s is not of device %s; bn is urn:dev:care:%s: or absent", n, quoteEcho(name), d.deviceID, d.deviceID))
			continue
		}
		if r.badTimestamp != "" {
			d.rj.add(model.ReasonBadTimestamp, "", fmt.Sprintf("SenML record %d: %s", n, r.badTimestamp))
			continue
		}
		ts, reason, detail := d.senmlTime(bt + r.t)
		if reason == "" {
			reason, detail = d.checkTime(ts)
		}
		if reason != "" {
			d.rj.add(reason, "", fmt.Sprintf("SenML record %d: %s", n, detail))
			continue
		}
		m, ok := catalog.LookupMetric(string(metric))
		if !ok {
			d.rj.add(model.ReasonUnknownMetric, metricLabel(metric), fmt.Sprintf("SenML record %d: unknown metric %s; names are bn+n with bn urn:dev:care:{device_id}: or absent, and n a catalogue metric (contract §1)", n, quoteEcho(metric)))
			continue
		}
		var v float64
		switch {
		case r.values > 1:
			d.rj.add(model.ReasonBadValue, m.Name, fmt.Sprintf("SenML record %d: more than one of v, vb, vs, vd, s", n))
			continue
		case r.hasV:
			v = bv + r.v
		case r.hasVB:
			if r.vb {
				v = 1
			}
		case r.other != "":
			d.rj.add(model.ReasonBadValue, m.Name, fmt.Sprintf("SenML record %d: %s carries %q; carehub takes numbers (v) or booleans (vb)", n, m.Name, r.other))
			continue
		default:
			d.rj.add(model.ReasonBadValue, m.Name, fmt.Sprintf("SenML record %d: %s has no value; set v or vb", n, m.Name))
			continue
		}
		unit := bu
		if r.hasU {
			unit = r.u
		}
		v, ok = convertUnit(unit, m, v)
		if !ok {
			d.rj.add(model.ReasonUnitMismatch, m.Name, fmt.Sprintf("SenML record %d: %s in %s; send %s", n, m.Name, quoteEcho(unit), m.Unit))
			continue
		}
		conv := ""
		if len(unit) > 0 && string(unit) != m.Unit {
			conv = " (converted from " + string(unit) + ")"
		}
		if reason, detail := checkMetricRange(m, v, conv); reason != "" {
			d.rj.add(reason, m.Name, fmt.Sprintf("SenML record %d: %s", n, detail))
			continue
		}
		if lastIdx >= 0 && ts.Equal(last) {
			d.samples[lastIdx].Values[m.Name] = v
			continue
		}
		d.samples = append(d.samples, Sample{TS: ts, Values: map[string]float64{m.Name: v}})
		last, lastIdx = ts, len(d.samples)-1
	}
	if n == 0 {
		d.rj.add(model.ReasonNoValues, "", "the SenML pack holds no records")
	} else if len(d.samples) == 0 && len(d.rj.list) == 0 {
		d.rj.add(model.ReasonNoValues, "", "the SenML pack holds only base fields, no values")
	}
}

// senmlMetric resolves a SenML record name bn+n (RFC 8428 §4.5.1) to the
// metric it names for deviceID: the part after urn:dev:care:{device_id}:, or
// the whole name when it has no such prefix. foreign is true when the name
// is that of another carehub device (contract §1: a device publishes only
// its own data).
func senmlMetric(bn, n []byte, deviceID string) (metric []byte, foreign bool, name []byte) {
	if ownBaseName(bn, deviceID) {
		return n, false, n // the common case, without building the name
	}
	name = n
	if len(bn) > 0 {
		name = append(bn[:len(bn):len(bn)], n...)
	}
	rest, ok := bytes.CutPrefix(name, []byte(senmlPrefix))
	if !ok {
		return name, false, name
	}
	dev, metric, ok := bytes.Cut(rest, []byte{':'})
	if !ok {
		return name, false, name
	}
	return metric, string(dev) != deviceID, name
}

// ownBaseName reports whether bn is exactly urn:dev:care:{deviceID}:.
func ownBaseName(bn []byte, deviceID string) bool {
	return len(bn) == len(senmlPrefix)+len(deviceID)+1 &&
		string(bn[:len(senmlPrefix)]) == senmlPrefix &&
		string(bn[len(senmlPrefix):len(bn)-1]) == deviceID &&
		bn[len(bn)-1] == ':'
}

// senmlTime turns a resolved SenML time in seconds into a time: below 2^28
// it is relative to arrival (RFC 8428 §4.5.3), else seconds since the epoch.
func (d *msgDecoder) senmlTime(t float64) (time.Time, string, string) {
	if math.IsNaN(t) { // bt and t of opposite infinities
		return time.Time{}, model.ReasonBadTimestamp, "time is not a number"
	}
	if t < senmlRelative {
		if t < -maxRelSeconds {
			return time.Time{}, model.ReasonTooOld, fmt.Sprintf("relative time %s s is older than any reading", fmtNum(t))
		}
		return d.now.Add(time.Duration(math.Round(t*1e6)) * time.Microsecond), "", ""
	}
	if t > maxUnixSeconds {
		return time.Time{}, model.ReasonFuture, fmt.Sprintf("time %s s is far in the future", fmtNum(t))
	}
	sec, frac := math.Modf(t)
	return time.Unix(int64(sec), int64(math.Round(frac*1e6))*1e3).UTC(), "", ""
}

// convertUnit returns v in the catalogue unit of m, given the SenML unit it
// came in (empty: the catalogue unit). ok is false for a unit that is neither
// the catalogue's nor one carehub converts (reason unit_mismatch).
func convertUnit(unit []byte, m catalog.Metric, v float64) (float64, bool) {
	if len(unit) == 0 || string(unit) == m.Unit {
		return v, true
	}
	for _, c := range unitConversions {
		if string(unit) == c.from && c.to == m.Unit && (c.metric == "" || c.metric == m.Name) {
			return c.conv(v), true
		}
	}
	return v, false
}

// isSenMLType reports whether an MQTT 5 content type is SenML JSON, with or
// without parameters.
func isSenMLType(ct string) bool {
	ct, _, _ = strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(ct), SenMLContentType)
}

// looksSenML recognises a SenML pack by its shape (contract §1): an array
// whose first record has a SenML field and no "values".
func looksSenML(payload []byte) bool {
	w := jsonWalker{b: payload, mark: -1}
	w.open()
	if !w.next() || w.peek() != '{' {
		return false
	}
	senml := false
	w.open()
	for w.next() {
		switch string(w.key()) {
		case "values":
			return false
		case "bn", "bt", "bu", "bv", "bs", "bver", "n", "u", "v", "vs", "vb", "vd", "s", "t", "ut":
			senml = true
		}
		w.skip()
	}
	return senml
}
