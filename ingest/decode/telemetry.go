package decode

// This file decodes telemetry in carehub's own JSON: one record or an array
// of them (contract §1).

import (
	"fmt"
	"time"

	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/model"
)

// Telemetry decodes a telemetry payload of deviceID that arrived at
// now: a JSON object {"ts":..., "values":{...}}, a JSON array of such
// objects, or a SenML pack (RFC 8428), recognised by its shape or by
// contentType application/senml+json. It returns the samples that passed the
// metric catalogue and one Reject per thing it dropped: the valid values of
// a half-valid message are kept (contract §1 "What happens to bad input").
//
// Limits: MaxPayload <= 0 means the contract default of 64 KiB; MaxAge <= 0
// means no age limit; MaxFuture is taken as given. A ts of null is taken as
// absent (arrival time), as is a missing one.
func Telemetry(deviceID string, payload []byte, contentType string, now time.Time, lim Limits) ([]Sample, []Reject) {
	d := msgDecoder{deviceID: deviceID, now: now.UTC(), lim: lim}
	if !d.precheck(payload, lim.MaxPayload) {
		return nil, d.rj.result()
	}
	w := jsonWalker{b: payload, mark: -1}
	senml := isSenMLType(contentType)
	switch w.peek() {
	case '{':
		if senml {
			d.rj.add(model.ReasonMalformed, "", "a SenML pack is a JSON array of records (RFC 8428 §4), got an object")
			break
		}
		d.record(&w, -1)
	case '[':
		maxRec := lim.MaxRecords
		if maxRec <= 0 {
			maxRec = DefaultMaxRecords
		}
		if n := countElements(payload); n > maxRec {
			d.rj.add(model.ReasonTooManyRecords, "", fmt.Sprintf("the array holds %d records; at most %d are accepted in one message: send a long catch-up in several messages", n, maxRec))
			break
		}
		if senml || looksSenML(payload) {
			d.senml(&w)
		} else {
			d.array(&w)
		}
	default:
		d.rj.add(model.ReasonMalformed, "", "telemetry is "+jsonKind(w.peek())+`; send {"ts":...,"values":{...}}, an array of those, or a SenML pack`)
	}
	return d.samples, d.rj.result()
}

// Records is what a telemetry message costs against the device's quota:
// the records of an array or SenML pack, counted without decoding them,
// or one. The intake calls it before decoding, so a flood is turned away
// for the price of a scan.
func Records(payload []byte) int {
	w := jsonWalker{b: payload, mark: -1}
	if w.peek() != '[' {
		return 1
	}
	return max(countElements(payload), 1)
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
			d.rj.add(model.ReasonMalformed, "", fmt.Sprintf(`record %d is %s; each record is {"ts":...,"values":{...}}`, n, jsonKind(c)))
			w.skip()
			continue
		}
		d.record(w, n)
	}
	if n == 0 {
		d.rj.add(model.ReasonNoValues, "", "the array holds no records")
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
				d.rj.add(model.ReasonMalformed, "", recordAt(idx)+`"values" is `+jsonKind(c)+`, want an object such as {"heart_rate":72}`)
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
		d.rj.add(model.ReasonNoValues, "", recordAt(idx)+`no "values" object; send {"values":{"heart_rate":72}}`)
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
			d.rj.add(model.ReasonUnknownMetric, metricLabel(key), recordAt(idx)+"unknown metric "+quoteEcho(key)+"; see the metric catalogue (contract §1)")
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
		d.rj.add(model.ReasonNoValues, "", recordAt(idx)+`"values" is empty`)
		return
	}
	if vals != nil {
		d.samples = append(d.samples, Sample{TS: ts, Values: vals})
	}
}
