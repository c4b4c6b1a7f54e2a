package decode

import (
	"strings"

	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/model"
)

// Topic splits care/v1/dev/{device_id}/{kind} (contract §1). ok is false
// (reason bad_topic) for anything else, including an invalid device id or a
// kind other than telemetry, event, status and config.
func Topic(topic string) (deviceID, kind string, ok bool) {
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
