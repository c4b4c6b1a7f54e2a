package decode

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/model"
)

// Event decodes an event {"ts":..., "type":"sos", "data":{...}} that
// arrived at now (contract §1). The event is good iff no Reject is returned;
// "data" is optional, must be an object of at most 4 KiB, and is kept as the
// raw JSON the device sent.
func Event(payload []byte, now time.Time, lim Limits) (DeviceEvent, []Reject) {
	d := msgDecoder{now: now.UTC(), lim: lim}
	if !d.precheck(payload, lim.MaxPayload) {
		return DeviceEvent{}, d.rj.result()
	}
	w := jsonWalker{b: payload, mark: -1}
	if w.peek() != '{' {
		d.rj.add(model.ReasonMalformed, "", "an event is a JSON object {\"ts\":...,\"type\":...,\"data\":{...}}, got "+jsonKind(w.peek()))
		return DeviceEvent{}, d.rj.result()
	}
	ev := DeviceEvent{TS: d.now}
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
				d.rj.add(model.ReasonMalformed, "", `event "type" is `+jsonKind(w.peek())+", want a string such as \"sos\"")
				w.skip()
				continue
			}
			t := w.stringBytes()
			if !catalog.ValidEventType(string(t)) {
				d.rj.add(model.ReasonEventType, "", "event type "+quoteEcho(t)+" is not one of: sos, sos_cancel, fall, fall_cancel, smoke, gas, co, water_leak, door_open, door_close, motion, bed_exit, bed_enter, tamper, toilet_flush")
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
					d.rj.add(model.ReasonTooLarge, "", fmt.Sprintf("event data is %d bytes; at most %d", len(raw), maxEventData))
				case !utf8.Valid(raw):
					d.rj.add(model.ReasonMalformed, "", "event data is not valid UTF-8")
				default:
					ev.Data = json.RawMessage(bytes.Clone(raw))
				}
			default:
				d.rj.add(model.ReasonMalformed, "", `event "data" is `+jsonKind(c)+", want a JSON object")
				w.skip()
			}
		default:
			w.skip()
		}
	}
	if !hasType {
		d.rj.add(model.ReasonMalformed, "", `event has no "type"; send e.g. {"type":"sos"}`)
	}
	return ev, d.rj.result()
}
