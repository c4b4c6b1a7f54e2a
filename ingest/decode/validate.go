package decode

// This file validates the times and values of device input against the
// contract's limits and the metric catalogue.

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/model"
)

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
			return time.Time{}, model.ReasonBadTimestamp, "ts " + quoteEcho(s) + " is not RFC 3339 (2025-06-01T12:00:00Z) or Unix milliseconds (a JSON number)"
		}
		ts = ts.UTC()
	case c == '-' || (c >= '0' && c <= '9'):
		lit := w.skip()
		ms, err := strconv.ParseFloat(string(lit), 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return time.Time{}, model.ReasonBadTimestamp, "ts " + quoteEcho(lit) + " is not a number"
		}
		switch {
		case ms > maxUnixSeconds*1e3:
			return time.Time{}, model.ReasonFuture, "ts " + quoteEcho(lit) + " ms is far in the future"
		case ms < -maxUnixSeconds*1e3:
			return time.Time{}, model.ReasonTooOld, "ts " + quoteEcho(lit) + " ms is older than any reading"
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
		return time.Time{}, model.ReasonBadTimestamp, "ts is " + jsonKind(c) + "; send an RFC 3339 string or Unix milliseconds"
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
		return model.ReasonFuture, fmt.Sprintf("time %s is %s ahead of arrival; at most %s is accepted", ts.Format(time.RFC3339), ts.Sub(d.now).Round(time.Second), d.lim.MaxFuture)
	}
	if d.lim.MaxAge > 0 && ts.Before(d.now.Add(-d.lim.MaxAge)) {
		return model.ReasonTooOld, fmt.Sprintf("time %s is older than the %s kept", ts.Format(time.RFC3339), d.lim.MaxAge)
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
			return 0, model.ReasonBadValue, metric + "=" + quoteEcho(lit) + " is not a number"
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
			return 0, model.ReasonNotFinite, metric + "=" + quoteEcho(s) + "; values must be finite numbers"
		}
		return 0, model.ReasonBadValue, metric + " is the string " + quoteEcho(s) + "; send a JSON number"
	default:
		w.skip()
		return 0, model.ReasonBadValue, metric + " is " + jsonKind(c) + "; send a JSON number (true/false for 0/1)"
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
		return model.ReasonNotFinite, m.Name + " is not a finite number"
	}
	if v < m.Min || v > m.Max {
		return model.ReasonOutOfRange, fmt.Sprintf("%s=%s%s outside %s–%s %s", m.Name, fmtNum(v), conv, fmtNum(m.Min), fmtNum(m.Max), m.Unit)
	}
	return "", ""
}
