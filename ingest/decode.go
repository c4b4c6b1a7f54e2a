package ingest

// This file decodes and validates what devices publish (contract §1): the
// topic, telemetry in carehub's own JSON or SenML (RFC 8428), events and
// status reports. Everything here is a pure function on the hot path of
// ingest: no I/O, no reflection for the common case, a handful of
// allocations per message. JSON is first checked with json.Valid (which
// gives the error offset to report), then walked by hand.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/model"
)

// Bounds of the decoder. They keep a hostile device from turning one
// message into much work or many words elsewhere.
const (
	// maxRejects bounds the Rejects of one message: each becomes a NATS
	// message on care.ingest.rejected.{device_id}, so 64 KiB of junk keys must
	// not become thousands. Past it, one last Reject says how many more there
	// were, with the reason of the first one left out.
	maxRejects = 32
	// maxEcho is how many bytes of device-sent text a Detail may quote: enough
	// to recognise the mistake, never more than a fragment of the payload.
	maxEcho = 40
	// maxMetricLabel bounds Reject.Metric when it names an unknown metric.
	maxMetricLabel = 64
	// maxEventData bounds an event's "data" object, which is stored and
	// republished as it came: details of an event, not a data channel.
	maxEventData = 4 << 10
	// maxStatusPayload bounds a status report, which has four short fields.
	maxStatusPayload = 4 << 10
	// maxFW is the longest firmware version string kept (contract §1 "fw").
	maxFW = 64
	// senmlRelative is RFC 8428 §4.5.3: a resolved time below 2^28 seconds is
	// relative to the time of arrival.
	senmlRelative = 1 << 28
	// maxUnixSeconds (year 2286) and maxRelSeconds (about 126 years) bound
	// device times before they are turned into a time.Time, so no arithmetic
	// overflows; anything past them is in the future or too old anyway.
	maxUnixSeconds = 1e10
	maxRelSeconds  = 4e9
	// SenMLContentType is the MQTT 5 content type (RFC 8428 §6) that makes a
	// telemetry payload SenML whatever its shape.
	SenMLContentType = "application/senml+json"
	// senmlPrefix is the start of a carehub SenML base name,
	// urn:dev:care:{device_id}: (contract §1).
	senmlPrefix = "urn:dev:care:"
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

// ParseTopic splits care/v1/dev/{device_id}/{kind} (contract §1). ok is false
// (reason bad_topic) for anything else, including an invalid device id or a
// kind other than telemetry, event, status and config.
func ParseTopic(topic string) (deviceID, kind string, ok bool) {
	rest, found := strings.CutPrefix(topic, model.TopicPrefix)
	if !found {
		return "", "", false
	}
	deviceID, kind, found = strings.Cut(rest, "/")
	if !found || !catalog.ValidID(deviceID) {
		return "", "", false
	}
	switch kind {
	case model.TopicTelemetry, model.TopicEvent, model.TopicStatus, model.TopicConfig:
		return deviceID, kind, true
	}
	return "", "", false
}

// DecodeTelemetry decodes a telemetry payload of deviceID that arrived at
// now: a JSON object {"ts":..., "values":{...}}, a JSON array of such
// objects, or a SenML pack (RFC 8428), recognised by its shape or by
// contentType application/senml+json. It returns the samples that passed the
// metric catalogue and one Reject per thing it dropped: the valid values of
// a half-valid message are kept (contract §1 "What happens to bad input").
//
// Limits: MaxPayload <= 0 means the contract default of 64 KiB; MaxAge <= 0
// means no age limit; MaxFuture is taken as given. A ts of null is taken as
// absent (arrival time), as is a missing one.
func DecodeTelemetry(deviceID string, payload []byte, contentType string, now time.Time, lim Limits) ([]Sample, []Reject) {
	d := msgDecoder{deviceID: deviceID, now: now.UTC(), lim: lim}
	if !d.precheck(payload, lim.MaxPayload) {
		return nil, d.rj.result()
	}
	w := jsonWalker{b: payload, mark: -1}
	senml := isSenMLType(contentType)
	switch w.peek() {
	case '{':
		if senml {
			d.rj.add(ReasonMalformed, "", "a SenML pack is a JSON array of records (RFC 8428 §4), got an object")
			break
		}
		d.record(&w, -1)
	case '[':
		maxRec := lim.MaxRecords
		if maxRec <= 0 {
			maxRec = DefaultMaxRecords
		}
		if n := countElements(payload); n > maxRec {
			d.rj.add(ReasonTooManyRecords, "", fmt.Sprintf("the array holds %d records; at most %d are accepted in one message: send a long catch-up in several messages", n, maxRec))
			break
		}
		if senml || looksSenML(payload) {
			d.senml(&w)
		} else {
			d.array(&w)
		}
	default:
		d.rj.add(ReasonMalformed, "", "telemetry is "+jsonKind(w.peek())+`; send {"ts":...,"values":{...}}, an array of those, or a SenML pack`)
	}
	return d.samples, d.rj.result()
}

// DecodeEvent decodes an event {"ts":..., "type":"sos", "data":{...}} that
// arrived at now (contract §1). The event is good iff no Reject is returned;
// "data" is optional, must be an object of at most 4 KiB, and is kept as the
// raw JSON the device sent.
func DecodeEvent(payload []byte, now time.Time, lim Limits) (DecodedEvent, []Reject) {
	d := msgDecoder{now: now.UTC(), lim: lim}
	if !d.precheck(payload, lim.MaxPayload) {
		return DecodedEvent{}, d.rj.result()
	}
	w := jsonWalker{b: payload, mark: -1}
	if w.peek() != '{' {
		d.rj.add(ReasonMalformed, "", "an event is a JSON object {\"ts\":...,\"type\":...,\"data\":{...}}, got "+jsonKind(w.peek()))
		return DecodedEvent{}, d.rj.result()
	}
	ev := DecodedEvent{TS: d.now}
	hasType := false
	w.open()
	for w.next() {
		switch key := w.key(); string(key) {
		case "ts":
			ts, reason, detail := d.timestamp(&w)
			if reason != "" {
				d.rj.add(reason, "", detail)
			} else {
				ev.TS = ts
			}
		case "type":
			hasType = true
			if w.peek() != '"' {
				d.rj.add(ReasonMalformed, "", `event "type" is `+jsonKind(w.peek())+", want a string such as \"sos\"")
				w.skip()
				continue
			}
			t := w.stringBytes()
			if !catalog.ValidEventType(string(t)) {
				d.rj.add(ReasonEventType, "", "event type "+quoteEcho(t)+" is not one of: sos, sos_cancel, fall, fall_cancel, smoke, gas, co, water_leak, door_open, door_close, motion, bed_exit, bed_enter, tamper, toilet_flush")
				continue
			}
			ev.Type = string(t)
		case "data":
			switch c := w.peek(); c {
			case 'n':
				w.skip() // null: no data
			case '{':
				raw := w.skip()
				switch {
				case len(raw) > maxEventData:
					d.rj.add(ReasonTooLarge, "", fmt.Sprintf("event data is %d bytes; at most %d", len(raw), maxEventData))
				case !utf8.Valid(raw):
					d.rj.add(ReasonMalformed, "", "event data is not valid UTF-8")
				default:
					ev.Data = json.RawMessage(bytes.Clone(raw))
				}
			default:
				d.rj.add(ReasonMalformed, "", `event "data" is `+jsonKind(c)+", want a JSON object")
				w.skip()
			}
		default:
			w.skip()
		}
	}
	if !hasType {
		d.rj.add(ReasonMalformed, "", `event has no "type"; send e.g. {"type":"sos"}`)
	}
	return ev, d.rj.result()
}

// DecodeStatus decodes a status report {"online":true, "battery_pct":87,
// "rssi_dbm":-61, "fw":"1.4.2"} that arrived at now; a Last Will is
// {"online":false} (contract §1). Only "online" is required. A bad optional
// field is dropped with a Reject and the rest is kept, so a device with a
// faulty battery gauge is still seen online. The report is unusable, and TS
// is zero, when the payload is empty, larger than 4 KiB, not JSON, or has no
// boolean "online".
func DecodeStatus(payload []byte, now time.Time) (DecodedStatus, []Reject) {
	d := msgDecoder{now: now.UTC()}
	if !d.precheck(payload, maxStatusPayload) {
		return DecodedStatus{}, d.rj.result()
	}
	w := jsonWalker{b: payload, mark: -1}
	if w.peek() != '{' {
		d.rj.add(ReasonMalformed, "", `a status is a JSON object {"online":true,...}, got `+jsonKind(w.peek()))
		return DecodedStatus{}, d.rj.result()
	}
	st := DecodedStatus{TS: d.now}
	hasOnline := false
	w.open()
	for w.next() {
		switch key := w.key(); string(key) {
		case "online":
			switch lit := w.skip(); string(lit) {
			case "true":
				st.Online, hasOnline = true, true
			case "false":
				st.Online, hasOnline = false, true
			}
		case "battery_pct":
			st.BatteryPct = d.statusNumber(&w, "battery_pct", 0, 100, "%")
		case "rssi_dbm":
			st.RSSIdBm = d.statusNumber(&w, "rssi_dbm", -150, 0, "dBm")
		case "fw":
			switch c := w.peek(); c {
			case 'n':
				w.skip()
			case '"':
				fw := w.stringBytes()
				if len(fw) > maxFW || !printableText(fw) {
					d.rj.add(ReasonBadValue, "fw", fmt.Sprintf("fw must be printableText text of at most %d bytes, got %d bytes", maxFW, len(fw)))
					continue
				}
				st.FW = string(fw)
			default:
				d.rj.add(ReasonBadValue, "fw", "fw is "+jsonKind(c)+`, want a string such as "1.4.2"`)
				w.skip()
			}
		default:
			w.skip()
		}
	}
	if !hasOnline {
		d.rj.add(ReasonMalformed, "", `status needs "online": true or false`)
		return DecodedStatus{}, d.rj.result()
	}
	return st, d.rj.result()
}

// statusNumber reads an optional numeric status field; null is absent.
func (d *msgDecoder) statusNumber(w *jsonWalker, name string, lo, hi float64, unit string) *float64 {
	switch c := w.peek(); {
	case c == 'n':
		w.skip()
		return nil
	case c == '-' || (c >= '0' && c <= '9'):
		lit := w.skip()
		v, err := strconv.ParseFloat(string(lit), 64)
		if (err != nil && !errors.Is(err, strconv.ErrRange)) || math.IsNaN(v) {
			d.rj.add(ReasonBadValue, name, name+" is not a number")
			return nil
		}
		if v < lo || v > hi || math.IsInf(v, 0) {
			d.rj.add(ReasonOutOfRange, name, fmt.Sprintf("%s=%s outside %s–%s %s", name, fmtNum(v), fmtNum(lo), fmtNum(hi), unit))
			return nil
		}
		return &v
	default:
		d.rj.add(ReasonBadValue, name, name+" is "+jsonKind(c)+", want a number")
		w.skip()
		return nil
	}
}

// msgDecoder carries one message's context and results.
type msgDecoder struct {
	deviceID string
	now      time.Time // arrival, UTC
	lim      Limits
	samples  []Sample
	rj       rejectList
}

// precheck applies the checks made before any parsing (contract §1): empty,
// too large, not JSON. It reports whether parsing may go on.
func (d *msgDecoder) precheck(payload []byte, maxBytes int) bool {
	if maxBytes <= 0 {
		maxBytes = model.MaxPayloadBytes
	}
	switch {
	case len(payload) == 0:
		d.rj.add(ReasonEmpty, "", "the payload is empty")
		return false
	case len(payload) > maxBytes:
		d.rj.add(ReasonTooLarge, "", fmt.Sprintf("the payload is %d bytes; at most %d are accepted", len(payload), maxBytes))
		return false
	case !json.Valid(payload):
		d.rj.add(ReasonMalformed, "", jsonError(payload))
		return false
	}
	return true
}

// jsonError describes why payload is not JSON, with the byte offset of the
// error so a device maker can find it.
func jsonError(payload []byte) string {
	var raw json.RawMessage
	err := json.Unmarshal(payload, &raw)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("invalid JSON at byte offset %d: %s", se.Offset, se.Error())
	}
	return "invalid JSON"
}

// countElements counts the members of the JSON array payload, which
// json.Valid has accepted, without decoding them: a message over the
// record cap is turned away before its records cost anything.
func countElements(payload []byte) int {
	w := jsonWalker{b: payload, mark: -1}
	w.open()
	n := 0
	for w.next() {
		n++
		w.skip()
	}
	return n
}

// array decodes a JSON array of carehub telemetry objects: a device catching
// up after an outage.
func (d *msgDecoder) array(w *jsonWalker) {
	w.open()
	n := 0
	for ; w.next(); n++ {
		if c := w.peek(); c != '{' {
			d.rj.add(ReasonMalformed, "", fmt.Sprintf(`record %d is %s; each record is {"ts":...,"values":{...}}`, n, jsonKind(c)))
			w.skip()
			continue
		}
		d.record(w, n)
	}
	if n == 0 {
		d.rj.add(ReasonNoValues, "", "the array holds no records")
	}
}

// record decodes one {"ts":..., "values":{...}} object at w; idx is its
// position in an array, or -1 when it is the whole message. A bad ts drops
// the whole record with one Reject; bad values drop only themselves.
func (d *msgDecoder) record(w *jsonWalker, idx int) {
	ts := d.now
	var tsReason, tsDetail string
	values := -1 // offset of the "values" object, once seen
	w.open()
	for w.next() {
		switch key := w.key(); string(key) {
		case "ts":
			ts, tsReason, tsDetail = d.timestamp(w)
		case "values":
			if c := w.peek(); c != '{' {
				d.rj.add(ReasonMalformed, "", recordAt(idx)+`"values" is `+jsonKind(c)+`, want an object such as {"heart_rate":72}`)
				w.skip()
				values = -2
				continue
			}
			values = w.i
			w.skip()
		default:
			w.skip() // unknown members are ignored, so devices may add their own
		}
	}
	if tsReason != "" {
		d.rj.add(tsReason, "", recordAt(idx)+tsDetail)
		return
	}
	switch values {
	case -2:
		return // already rejected
	case -1:
		d.rj.add(ReasonNoValues, "", recordAt(idx)+`no "values" object; send {"values":{"heart_rate":72}}`)
		return
	}
	end := w.i
	w.i = values
	var vals map[string]float64
	seen := 0
	w.open()
	for ; w.next(); seen++ {
		key := w.key()
		m, ok := catalog.LookupMetric(string(key))
		if !ok {
			d.rj.add(ReasonUnknownMetric, metricLabel(key), recordAt(idx)+"unknown metric "+quoteEcho(key)+"; see the metric catalogue (contract §1)")
			w.skip()
			continue
		}
		v, reason, detail := readMetricValue(w, m.Name)
		if reason == "" {
			reason, detail = checkMetricRange(m, v, "")
		}
		if reason != "" {
			d.rj.add(reason, m.Name, recordAt(idx)+detail)
			continue
		}
		if vals == nil {
			vals = make(map[string]float64, 4)
		}
		vals[m.Name] = v
	}
	w.i = end
	if seen == 0 {
		d.rj.add(ReasonNoValues, "", recordAt(idx)+`"values" is empty`)
		return
	}
	if vals != nil {
		d.samples = append(d.samples, Sample{TS: ts, Values: vals})
	}
}

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
			d.rj.add(ReasonMalformed, "", fmt.Sprintf("SenML record %d is %s, want an object (RFC 8428 §4)", n, jsonKind(c)))
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
			d.rj.add(ReasonMalformed, "", fmt.Sprintf("SenML record %d: %s", n, r.bad))
			continue
		}
		metric, foreign, name := senmlMetric(bn, r.n, d.deviceID)
		if len(name) == 0 {
			d.rj.add(ReasonMalformed, "", fmt.Sprintf("SenML record %d has no name; set n (and bn)", n))
			continue
		}
		if foreign {
			d.rj.add(ReasonTopicNotOwn, "", fmt.Sprintf("SenML record %d: name %s is not of device %s; bn is urn:dev:care:%s: or absent", n, quoteEcho(name), d.deviceID, d.deviceID))
			continue
		}
		if r.badTimestamp != "" {
			d.rj.add(ReasonBadTimestamp, "", fmt.Sprintf("SenML record %d: %s", n, r.badTimestamp))
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
			d.rj.add(ReasonUnknownMetric, metricLabel(metric), fmt.Sprintf("SenML record %d: unknown metric %s; names are bn+n with bn urn:dev:care:{device_id}: or absent, and n a catalogue metric (contract §1)", n, quoteEcho(metric)))
			continue
		}
		var v float64
		switch {
		case r.values > 1:
			d.rj.add(ReasonBadValue, m.Name, fmt.Sprintf("SenML record %d: more than one of v, vb, vs, vd, s", n))
			continue
		case r.hasV:
			v = bv + r.v
		case r.hasVB:
			if r.vb {
				v = 1
			}
		case r.other != "":
			d.rj.add(ReasonBadValue, m.Name, fmt.Sprintf("SenML record %d: %s carries %q; carehub takes numbers (v) or booleans (vb)", n, m.Name, r.other))
			continue
		default:
			d.rj.add(ReasonBadValue, m.Name, fmt.Sprintf("SenML record %d: %s has no value; set v or vb", n, m.Name))
			continue
		}
		unit := bu
		if r.hasU {
			unit = r.u
		}
		v, ok = convertUnit(unit, m, v)
		if !ok {
			d.rj.add(ReasonUnitMismatch, m.Name, fmt.Sprintf("SenML record %d: %s in %s; send %s", n, m.Name, quoteEcho(unit), m.Unit))
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
		d.rj.add(ReasonNoValues, "", "the SenML pack holds no records")
	} else if len(d.samples) == 0 && len(d.rj.list) == 0 {
		d.rj.add(ReasonNoValues, "", "the SenML pack holds only base fields, no values")
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
		return time.Time{}, ReasonBadTimestamp, "time is not a number"
	}
	if t < senmlRelative {
		if t < -maxRelSeconds {
			return time.Time{}, ReasonTooOld, fmt.Sprintf("relative time %s s is older than any reading", fmtNum(t))
		}
		return d.now.Add(time.Duration(math.Round(t*1e6)) * time.Microsecond), "", ""
	}
	if t > maxUnixSeconds {
		return time.Time{}, ReasonFuture, fmt.Sprintf("time %s s is far in the future", fmtNum(t))
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

// timestamp reads a "ts" value: an RFC 3339 string or Unix milliseconds
// (contract: times on the wire), null meaning absent. It returns the time, or
// the reason and detail of a rejection.
func (d *msgDecoder) timestamp(w *jsonWalker) (time.Time, string, string) {
	var ts time.Time
	switch c := w.peek(); {
	case c == 'n':
		w.skip()
		return d.now, "", ""
	case c == '"':
		s := w.stringBytes()
		if err := ts.UnmarshalText(s); err != nil {
			return time.Time{}, ReasonBadTimestamp, "ts " + quoteEcho(s) + " is not RFC 3339 (2025-06-01T12:00:00Z) or Unix milliseconds (a JSON number)"
		}
		ts = ts.UTC()
	case c == '-' || (c >= '0' && c <= '9'):
		lit := w.skip()
		ms, err := strconv.ParseFloat(string(lit), 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return time.Time{}, ReasonBadTimestamp, "ts " + quoteEcho(lit) + " is not a number"
		}
		switch {
		case ms > maxUnixSeconds*1e3:
			return time.Time{}, ReasonFuture, "ts " + quoteEcho(lit) + " ms is far in the future"
		case ms < -maxUnixSeconds*1e3:
			return time.Time{}, ReasonTooOld, "ts " + quoteEcho(lit) + " ms is older than any reading"
		}
		sec, frac := math.Modf(ms / 1e3)
		ts = time.Unix(int64(sec), int64(math.Round(frac*1e6))*1e3).UTC()
		if ms >= 1e9 && ms < 1e11 {
			// Looks like Unix seconds sent by mistake; say so.
			if reason, detail := d.checkTime(ts); reason != "" {
				return time.Time{}, reason, detail + "; ts " + quoteEcho(lit) + " looks like Unix seconds, ts is Unix milliseconds"
			}
		}
	default:
		w.skip()
		return time.Time{}, ReasonBadTimestamp, "ts is " + jsonKind(c) + "; send an RFC 3339 string or Unix milliseconds"
	}
	if reason, detail := d.checkTime(ts); reason != "" {
		return time.Time{}, reason, detail
	}
	return ts, "", ""
}

// checkTime applies the window of contract §1: no more than MaxFuture ahead
// of arrival, no older than the raw-data retention (MaxAge).
func (d *msgDecoder) checkTime(ts time.Time) (string, string) {
	if ts.After(d.now.Add(d.lim.MaxFuture)) {
		return ReasonFuture, fmt.Sprintf("time %s is %s ahead of arrival; at most %s is accepted", ts.Format(time.RFC3339), ts.Sub(d.now).Round(time.Second), d.lim.MaxFuture)
	}
	if d.lim.MaxAge > 0 && ts.Before(d.now.Add(-d.lim.MaxAge)) {
		return ReasonTooOld, fmt.Sprintf("time %s is older than the %s kept", ts.Format(time.RFC3339), d.lim.MaxAge)
	}
	return "", ""
}

// readMetricValue reads a metric value: a JSON number, or true/false as 1/0
// (contract §1). Anything else is a rejection reason and detail; the strings
// "NaN" and "Inf" in their spellings are not_finite, as JSON has no such
// numbers and devices spell them as strings.
func readMetricValue(w *jsonWalker, metric string) (float64, string, string) {
	switch c := w.peek(); {
	case c == '-' || (c >= '0' && c <= '9'):
		lit := w.skip()
		v, err := strconv.ParseFloat(string(lit), 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return 0, ReasonBadValue, metric + "=" + quoteEcho(lit) + " is not a number"
		}
		return v, "", "" // ±Inf from overflow fails the range check
	case c == 't' || c == 'f':
		if string(w.skip()) == "true" {
			return 1, "", ""
		}
		return 0, "", ""
	case c == '"':
		s := w.stringBytes()
		if nonFinite(s) {
			return 0, ReasonNotFinite, metric + "=" + quoteEcho(s) + "; values must be finite numbers"
		}
		return 0, ReasonBadValue, metric + " is the string " + quoteEcho(s) + "; send a JSON number"
	default:
		w.skip()
		return 0, ReasonBadValue, metric + " is " + jsonKind(c) + "; send a JSON number (true/false for 0/1)"
	}
}

// nonFinite reports whether s spells NaN or an infinity, in any case.
func nonFinite(s []byte) bool {
	for _, n := range [...]string{"nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"} {
		if len(s) == len(n) && strings.EqualFold(string(s), n) {
			return true
		}
	}
	return false
}

// checkMetricRange rejectList a value outside the plausible range of the catalogue
// (contract §1), saying what the range is. conv notes a unit conversion.
func checkMetricRange(m catalog.Metric, v float64, conv string) (string, string) {
	if math.IsNaN(v) { // bv+v of opposite infinities; ±Inf is out of range
		return ReasonNotFinite, m.Name + " is not a finite number"
	}
	if v < m.Min || v > m.Max {
		return ReasonOutOfRange, fmt.Sprintf("%s=%s%s outside %s–%s %s", m.Name, fmtNum(v), conv, fmtNum(m.Min), fmtNum(m.Max), m.Unit)
	}
	return "", ""
}

// rejectList collects the Rejects of one message, at most maxRejects of them.
type rejectList struct {
	list       []Reject
	more       int
	moreReason string
}

func (r *rejectList) add(reason, metric, detail string) {
	if len(r.list) >= maxRejects {
		if r.more == 0 {
			r.moreReason = reason
		}
		r.more++
		return
	}
	r.list = append(r.list, Reject{Reason: reason, Detail: detail, Metric: metric})
}

// result returns the Rejects, the last one summing up those left out.
func (r *rejectList) result() []Reject {
	if r.more > 0 {
		return append(r.list, Reject{Reason: r.moreReason, Detail: fmt.Sprintf("%d more problems in this message are not listed", r.more)})
	}
	return r.list
}

// recordAt prefixes a detail with the record's position in an array.
func recordAt(idx int) string {
	if idx < 0 {
		return ""
	}
	return "record " + strconv.Itoa(idx) + ": "
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

// printableText reports whether s is valid UTF-8 without control characters.
func printableText(s []byte) bool {
	if !utf8.Valid(s) {
		return false
	}
	for _, r := range string(s) {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// quoteEcho quotes at most maxEcho bytes of device-sent text for a Detail.
func quoteEcho(b []byte) string {
	if len(b) > maxEcho {
		return strconv.Quote(string(b[:maxEcho])) + "…"
	}
	return strconv.Quote(string(b))
}

// metricLabel makes device-sent text fit to be Reject.Metric: bounded and UTF-8.
func metricLabel(b []byte) string {
	if len(b) > maxMetricLabel {
		b = b[:maxMetricLabel]
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// fmtNum formats a number as briefly as it reads.
func fmtNum(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// jsonKind names the JSON kind of a value from its first byte, for details.
func jsonKind(c byte) string {
	switch c {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	case 0:
		return "nothing"
	}
	return "a number"
}

// jsonWalker reads JSON that json.Valid has already accepted, without building
// values. It relies on that check for structure, but bounds-checks every
// index and stops when it makes no progress, so that no input can make it
// panic or loop.
type jsonWalker struct {
	b    []byte
	i    int
	mark int // position of the last member next reported, to detect no progress
}

func (w *jsonWalker) ws() {
	for w.i < len(w.b) {
		switch w.b[w.i] {
		case ' ', '\t', '\n', '\r':
			w.i++
		default:
			return
		}
	}
}

// peek returns the first byte of the next token, 0 at the end.
func (w *jsonWalker) peek() byte {
	w.ws()
	if w.i < len(w.b) {
		return w.b[w.i]
	}
	return 0
}

// open consumes the '{' or '[' that starts an object or array.
func (w *jsonWalker) open() {
	w.ws()
	if w.i < len(w.b) {
		w.i++
	}
}

// next reports whether the object or array being walked has another member,
// consuming the ',' before it or the closing bracket after the last.
func (w *jsonWalker) next() bool {
	switch w.peek() {
	case ',':
		w.i++
		return true
	case '}', ']':
		w.i++
		return false
	case 0:
		return false
	}
	if w.i == w.mark { // the last member was not consumed: stop
		w.i = len(w.b)
		return false
	}
	w.mark = w.i
	return true
}

// key reads an object member's name and the ':' after it.
func (w *jsonWalker) key() []byte {
	k := w.stringBytes()
	if w.peek() == ':' {
		w.i++
	}
	return k
}

// str reads a string value; ok is false, with nothing consumed, when the
// next value is not a string.
func (w *jsonWalker) str() ([]byte, bool) {
	if w.peek() != '"' {
		return nil, false
	}
	return w.stringBytes(), true
}

// num reads a number value; ok is false when it is not a number (the value
// is consumed either way).
func (w *jsonWalker) num() (float64, bool) {
	c := w.peek()
	lit := w.skip()
	if c != '-' && (c < '0' || c > '9') {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(lit), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, false
	}
	return v, true
}

// stringBytes reads a string and returns its content, unescaped. Strings
// without escapes, the usual case, are returned in place without copying.
func (w *jsonWalker) stringBytes() []byte {
	raw, escaped := w.rawString()
	if !escaped {
		return raw
	}
	var s string
	q := make([]byte, 0, len(raw)+2)
	q = append(append(append(q, '"'), raw...), '"')
	if json.Unmarshal(q, &s) != nil {
		return raw
	}
	return []byte(s)
}

// rawString reads a string token and returns the bytes between its quotes.
func (w *jsonWalker) rawString() (raw []byte, escaped bool) {
	w.ws()
	if w.i >= len(w.b) || w.b[w.i] != '"' {
		return nil, false
	}
	j := w.i + 1
	for j < len(w.b) {
		c := w.b[j]
		if c == '\\' {
			escaped = true
			j += 2
			continue
		}
		if c == '"' {
			break
		}
		j++
	}
	j = min(j, len(w.b))
	raw = w.b[w.i+1 : j]
	w.i = j + 1
	return raw, escaped
}

// skip consumes one value of any kind and returns its bytes.
func (w *jsonWalker) skip() []byte {
	w.ws()
	start := w.i
	if w.i >= len(w.b) {
		return nil
	}
	switch w.b[w.i] {
	case '"':
		w.rawString()
	case '{', '[':
		depth := 0
	scan:
		for w.i < len(w.b) {
			switch w.b[w.i] {
			case '"':
				w.rawString()
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					w.i++
					break scan
				}
			}
			w.i++
		}
	default:
		for w.i < len(w.b) {
			switch w.b[w.i] {
			case ',', '}', ']', ':', ' ', '\t', '\n', '\r':
				return w.b[start:w.i]
			}
			w.i++
		}
	}
	return w.b[start:min(w.i, len(w.b))]
}
