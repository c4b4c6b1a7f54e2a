package writer

// The encoders: one per stream, each turning a message's body into its
// line(s) of line protocol and naming the ids its subject must carry.

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/influx"
	"github.com/carehub/carehub/internal/model"
)

var (
	errNotJSONObject = errors.New("message is not a JSON object")
	errPointID       = errors.New("resident, home or device id is not a valid id")
)

func checkPointIDs(ids ...string) error {
	for i, id := range ids {
		// The first id (resident or device) is required; others may be empty.
		if (id != "" || i == 0) && !catalog.ValidID(id) {
			return errPointID
		}
	}
	return nil
}

func decodeJSONObject(data []byte, v any) error {
	if len(data) == 0 || data[0] != '{' {
		return errNotJSONObject
	}
	return json.Unmarshal(data, v)
}

// readingLines returns the encoder of CARE_READINGS messages, a single
// reading or a batch (contract §3), as one line per reading. A batch is
// stored or set aside whole: one reading of it that makes no point
// dead-letters the message, as the message is what JetStream acks. The
// readings of residents erased says are left out (a partition batch holds
// several residents'); a message left with none names its first resident,
// whom admit then drops as erased. The ids name the first reading kept;
// ids.others the other residents, and ids.manyDevices says whether several
// devices' readings are in it, which only a batch subject admits.
func readingLines(erased func(string) bool) func(buf, data []byte, _ nats.Header) ([]byte, pointIDs, error) {
	return func(buf, data []byte, _ nats.Header) ([]byte, pointIDs, error) {
		if len(data) == 0 || data[0] != '{' {
			return buf, pointIDs{}, errNotJSONObject
		}
		rs, err := model.UnmarshalReadings(data, nil)
		if err != nil {
			return buf, pointIDs{}, err
		}
		start := len(buf)
		var ids pointIDs
		for _, r := range rs {
			if err := checkPointIDs(r.ResidentID, r.HomeID, r.DeviceID); err != nil {
				return buf[:start], pointIDs{}, err
			}
			if erased != nil && erased(r.ResidentID) {
				continue
			}
			switch {
			case ids.resident == "":
				ids.resident, ids.device = r.ResidentID, r.DeviceID
			case r.ResidentID != ids.resident && !slices.Contains(ids.others, r.ResidentID):
				ids.others = append(ids.others, r.ResidentID)
				ids.manyDevices = true
			case r.DeviceID != ids.device:
				ids.manyDevices = true
			}
			if buf, err = influx.EncodeReading(buf, r); err != nil {
				return buf[:start], pointIDs{}, err
			}
		}
		if ids.resident == "" && len(rs) > 0 { // every reading was an erased resident's
			ids.resident, ids.device = rs[0].ResidentID, rs[0].DeviceID
		}
		return buf, ids, nil
	}
}

func eventLine(buf, data []byte, _ nats.Header) ([]byte, pointIDs, error) {
	var e model.Event
	if err := decodeJSONObject(data, &e); err != nil {
		return buf, pointIDs{}, err
	}
	if err := checkPointIDs(e.ResidentID, e.HomeID, e.DeviceID); err != nil {
		return buf, pointIDs{}, err
	}
	if !catalog.ValidEventType(e.Type) {
		return buf, pointIDs{}, fmt.Errorf("event type %q is not in the contract", e.Type)
	}
	buf, err := influx.EncodeEvent(buf, e)
	return buf, pointIDs{resident: e.ResidentID, device: e.DeviceID}, err
}

func statusLine(buf, data []byte, _ nats.Header) ([]byte, pointIDs, error) {
	var st model.Status
	if err := decodeJSONObject(data, &st); err != nil {
		return buf, pointIDs{}, err
	}
	if err := checkPointIDs(st.DeviceID, st.HomeID, st.ResidentID); err != nil {
		return buf, pointIDs{}, err
	}
	buf, err := influx.EncodeStatus(buf, st)
	return buf, pointIDs{resident: st.ResidentID, device: st.DeviceID}, err
}

// alertMsg is what the writer reads of an alert transition on CARE_ALERTS
// (contract §3, "Alert JSON"): what its point needs, nothing more.
type alertMsg struct {
	ResidentID string    `json:"resident_id"`
	Rule       string    `json:"rule"`
	Severity   string    `json:"severity"`
	Transition string    `json:"transition"`
	Value      float64   `json:"value"`
	RaisedAt   time.Time `json:"raised_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// alertLine encodes an alert transition as its point in the alerts
// measurement (contract §2): tags resident_id, rule, severity, transition;
// fields value and seconds_since_raised (from the raise to this
// transition); time the HeaderPointTime header, or updated_at when a
// publisher did not set it. Everything comes from the message, so a
// redelivered or republished transition is the same point.
func alertLine(buf, data []byte, h nats.Header) ([]byte, pointIDs, error) {
	var a alertMsg
	if err := decodeJSONObject(data, &a); err != nil {
		return buf, pointIDs{}, err
	}
	if err := checkPointIDs(a.ResidentID); err != nil {
		return buf, pointIDs{}, err
	}
	if a.Rule == "" || a.Severity == "" || a.Transition == "" || a.RaisedAt.IsZero() || a.UpdatedAt.IsZero() {
		return buf, pointIDs{}, errors.New("alert transition lacks rule, severity, transition, raised_at or updated_at")
	}
	ts := a.UpdatedAt
	if v := h.Get(model.HeaderPointTime); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return buf, pointIDs{}, fmt.Errorf("%s header %q is not Unix milliseconds", model.HeaderPointTime, v)
		}
		ts = time.UnixMilli(ms)
	}
	buf, err := influx.EncodeAlert(buf, influx.AlertPoint{
		ResidentID: a.ResidentID, Rule: a.Rule, Severity: a.Severity, Transition: a.Transition,
		TS: ts, Value: a.Value, SecondsSinceRaised: a.UpdatedAt.Sub(a.RaisedAt).Seconds(),
	})
	return buf, pointIDs{resident: a.ResidentID, severity: a.Severity}, err
}
