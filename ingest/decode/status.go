package decode

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/carehub/carehub/internal/model"
)

// Status decodes a status report {"online":true, "battery_pct":87,
// "rssi_dbm":-61, "fw":"1.4.2"} that arrived at now; a Last Will is
// {"online":false} (contract §1). Only "online" is required. A bad optional
// field is dropped with a Reject and the rest is kept, so a device with a
// faulty battery gauge is still seen online. The report is unusable, and TS
// is zero, when the payload is empty, larger than 4 KiB, not JSON, or has no
// boolean "online".
func Status(payload []byte, now time.Time) (DeviceStatus, []Reject) {
	d := msgDecoder{now: now.UTC()}
	if !d.precheck(payload, maxStatusPayload) {
		return DeviceStatus{}, d.rj.result()
	}
	w := jsonWalker{b: payload, mark: -1}
	if w.peek() != '{' {
		d.rj.add(model.ReasonMalformed, "", `a status is a JSON object {"online":true,...}, got `+jsonKind(w.peek()))
		return DeviceStatus{}, d.rj.result()
	}
	st := DeviceStatus{TS: d.now}
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
					d.rj.add(model.ReasonBadValue, "fw", fmt.Sprintf("fw must be printableText text of at most %d bytes, got %d bytes", maxFW, len(fw)))
					continue
				}
				st.FW = string(fw)
			default:
				d.rj.add(model.ReasonBadValue, "fw", "fw is "+jsonKind(c)+`, want a string such as "1.4.2"`)
				w.skip()
			}
		default:
			w.skip()
		}
	}
	if !hasOnline {
		d.rj.add(model.ReasonMalformed, "", `status needs "online": true or false`)
		return DeviceStatus{}, d.rj.result()
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
			d.rj.add(model.ReasonBadValue, name, name+" is not a number")
			return nil
		}
		if v < lo || v > hi || math.IsInf(v, 0) {
			d.rj.add(model.ReasonOutOfRange, name, fmt.Sprintf("%s=%s outside %s–%s %s", name, fmtNum(v), fmtNum(lo), fmtNum(hi), unit))
			return nil
		}
		return &v
	default:
		d.rj.add(model.ReasonBadValue, name, name+" is "+jsonKind(c)+", want a number")
		w.skip()
		return nil
	}
}
