package decode

// Decoding and validating what devices publish (contract §1) is split by
// what is read: topic.go, telemetry.go (carehub's own JSON), senml.go
// (RFC 8428), event.go, status.go, validate.go (times and values against
// the catalogue) and jsonwalk.go. This file holds what they share: the
// decoder's bounds, the per-message decoder and its list of Rejects, and
// the helpers that write Details. Everything here is a pure function on
// the hot path of ingest: no I/O, no reflection for the common case, a
// handful of allocations per message. JSON is first checked with
// json.Valid (which gives the error offset to report), then walked by hand.

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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
		d.rj.add(model.ReasonEmpty, "", "the payload is empty")
		return false
	case len(payload) > maxBytes:
		d.rj.add(model.ReasonTooLarge, "", fmt.Sprintf("the payload is %d bytes; at most %d are accepted", len(payload), maxBytes))
		return false
	case !json.Valid(payload):
		d.rj.add(model.ReasonMalformed, "", jsonError(payload))
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
