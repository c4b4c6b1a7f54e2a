package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/ingest/decode"
	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/model"
)

// Take validates and decodes one device message and starts the JetStream
// publishes of what it holds; the caller acknowledges the message to the
// device once the returned Pending is confirmed. A message with nothing to
// store is reported and nil is returned: the caller acknowledges it at
// once, since resending it cannot help. contentType is the MQTT 5 content
// type, which only the embedded broker hands over; through an external
// broker SenML is recognised by its shape (contract §1). When the publish
// window is full Take waits, until ctx ends.
func (in *Intake) Take(ctx context.Context, topic string, payload []byte, contentType string) *Pending {
	now := in.o.Clock()
	deviceID, kind, ok := decode.Topic(topic)
	if !ok || kind == model.TopicConfig {
		in.reject(deviceIDOrUnknown(topic), topic, kindOf(kind), decode.Reject{Reason: model.ReasonBadTopic, Detail: "topic is not care/v1/dev/{device_id}/telemetry|event|status"}, now)
		return nil
	}
	dev, known := in.o.Devices.Device(deviceID)
	switch {
	case !known:
		in.reject(deviceID, topic, kind, decode.Reject{Reason: model.ReasonUnknownDevice, Detail: "device " + deviceID + " is not registered"}, now)
		return nil
	case dev.Disabled:
		in.reject(deviceID, topic, kind, decode.Reject{Reason: model.ReasonDisabledDevice, Detail: "device " + deviceID + " is disabled"}, now)
		return nil
	}
	if len(payload) > in.o.Limits.MaxPayload {
		in.reject(deviceID, topic, kind, decode.Reject{Reason: model.ReasonTooLarge, Detail: fmt.Sprintf("%d bytes, the limit is %d", len(payload), in.o.Limits.MaxPayload)}, now)
		return nil
	}

	// Telemetry and status are refused before decoding once the device
	// has used its quota: a flood costs a scan and a map lookup a
	// message. An array over the record cap is refused as such, and
	// still costs the device the cap. Status reports share the everyday
	// events' bucket, so that a device's telemetry flood does not also
	// hide its going offline.
	if kind == model.TopicTelemetry {
		records, maxRec := decode.Records(payload), in.o.Limits.MaxRecords
		if maxRec <= 0 {
			maxRec = decode.DefaultMaxRecords
		}
		if records > maxRec {
			in.quota.take(deviceID, float64(maxRec), now)
			in.reject(deviceID, topic, kind, decode.Reject{Reason: model.ReasonTooManyRecords,
				Detail: fmt.Sprintf("the array holds %d records; at most %d are accepted in one message: send a long catch-up in several messages", records, maxRec)}, now)
			in.m.messages.With(kind, "rejected").Inc()
			return nil
		}
		if !in.quota.take(deviceID, float64(records), now) {
			in.rateLimited(deviceID, topic, kind, now)
			return nil
		}
	}
	if kind == model.TopicStatus && !in.evQuota.admit(deviceID, now) {
		in.rateLimited(deviceID, topic, kind, now)
		return nil
	}

	pd := &Pending{in: in, js: in.js, start: now}
	var rejects []decode.Reject
	var readings []model.Reading
	switch kind {
	case model.TopicTelemetry:
		samples, rej := decode.Telemetry(deviceID, payload, contentType, now, in.o.Limits)
		rejects = rej
		var latest time.Time
		readings = make([]model.Reading, 0, len(samples))
		for _, s := range samples {
			readings = append(readings, model.Reading{ResidentID: dev.ResidentID, HomeID: dev.HomeID, DeviceID: dev.ID, DeviceKind: dev.Kind, TS: s.TS, Values: s.Values})
			in.m.values.Add(float64(len(s.Values)))
			if s.TS.After(latest) {
				latest = s.TS
			}
		}
		if in.batch == nil {
			pd.pubs = readingMsgs(pd.pubs, readings)
		}
		if !latest.IsZero() {
			in.o.Presence.Seen(deviceID, now)
		}
		pd.latest = latest
	case model.TopicEvent:
		ev, rej := decode.Event(payload, now, in.o.Limits)
		rejects = rej
		if len(rej) == 0 && !catalog.KindEmits(dev.Kind, ev.Type) {
			rejects = append(rejects, decode.Reject{Reason: model.ReasonEventNotForKind,
				Detail: "a " + dev.Kind + " device does not send " + ev.Type + " events (docs/device-protocol.md lists what each kind may send)"})
		}
		// A valid alarm is never refused for quota. Everything else sent
		// on the event topic, bad events included, counts against the
		// bucket of everyday events, so that a flood of them is cheap to
		// turn away too.
		if (len(rejects) > 0 || !IsAlarm(ev.Type)) && !in.evQuota.admit(deviceID, now) {
			in.rateLimited(deviceID, topic, kind, now)
			return nil
		}
		pd.js = in.ejs
		if len(rejects) == 0 {
			e := model.Event{ResidentID: dev.ResidentID, HomeID: dev.HomeID, DeviceID: dev.ID, DeviceKind: dev.Kind, TS: ev.TS, Type: ev.Type, Data: ev.Data}
			data, _ := json.Marshal(e)
			msg := &nats.Msg{Subject: model.EventSubject(dev.ResidentID, dev.ID), Data: data, Header: nats.Header{}}
			// A device that resends an event after a lost PUBACK must not
			// raise a second SOS: JetStream drops the duplicate by id.
			msg.Header.Set(jetstream.MsgIDHeader, dev.ID+":"+ev.Type+":"+strconv.FormatInt(ev.TS.UnixMilli(), 10))
			pd.pubs = append(pd.pubs, pendingPub{msg: msg})
			in.o.Presence.Seen(deviceID, now)
		}
	case model.TopicStatus:
		st, rej := decode.Status(payload, now)
		rejects = rej
		// A bad optional field (battery 101 %) is rejected on its own; the
		// report still says whether the device is online.
		if !st.TS.IsZero() {
			s := model.Status{ResidentID: dev.ResidentID, HomeID: dev.HomeID, DeviceID: dev.ID, DeviceKind: dev.Kind, TS: st.TS,
				Online: st.Online, BatteryPct: st.BatteryPct, RSSIdBm: st.RSSIdBm, FW: st.FW}
			data, _ := json.Marshal(s)
			pd.pubs = append(pd.pubs, pendingPub{msg: &nats.Msg{Subject: model.StatusSubject(dev.ResidentID, dev.ID), Data: data}})
			in.o.Presence.Report(devices.Presence{DeviceID: dev.ID, HomeID: dev.HomeID, Online: st.Online, LastSeen: now,
				BatteryPct: st.BatteryPct, RSSIdBm: st.RSSIdBm, FW: st.FW})
		}
	}
	for _, r := range rejects {
		in.reject(deviceID, topic, kind, r, now)
	}
	batched := in.batch != nil && len(readings) > 0
	switch {
	case len(pd.pubs) == 0 && !batched:
		in.m.messages.With(kind, "rejected").Inc()
		return nil
	case len(rejects) > 0:
		in.m.messages.With(kind, "partial").Inc()
	default:
		in.m.messages.With(kind, "accepted").Inc()
	}
	for i := range pd.pubs {
		pd.pubs[i].fut = in.publish(ctx, pd.js, pd.pubs[i].msg)
	}
	if batched {
		pd.batch = in.batch.add(ctx, readings)
	}
	return pd
}

// rateLimited reports a message refused for the device's quota, which is
// then acknowledged: the device is told nothing it could retry into.
func (in *Intake) rateLimited(deviceID, topic, kind string, now time.Time) {
	in.reject(deviceID, topic, kind, decode.Reject{Reason: model.ReasonRateLimited,
		Detail: "the device sent more than its quota (CARE_DEVICE_RATE / CARE_DEVICE_EVENT_RATE); send less often or batch records"}, now)
	in.m.messages.With(kind, "rejected").Inc()
}
