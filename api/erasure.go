package api

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/natsx"
)

// SeriesEraser deletes a resident's time series (influx.Client).
type SeriesEraser interface {
	EraseResident(ctx context.Context, residentID string, deviceIDs []string) (string, error)
}

// AlertEraser removes a resident's alerts from the alert store
// (alerts.Manager).
type AlertEraser interface {
	EraseResident(ctx context.Context, residentID string) (int, error)
}

// ResidentKeyEraser removes a resident's record from one KV store with its
// history (alerts.SettingsStore, alerts.KVChains).
type ResidentKeyEraser interface {
	Erase(ctx context.Context, residentID string) error
}

// PresenceForgetter removes a device's presence (devices.PresenceTracker).
type PresenceForgetter interface {
	Forget(ctx context.Context, deviceID string) error
}

// DeviceKicker closes a device's MQTT session (mqttbroker.Broker).
type DeviceKicker interface {
	Disconnect(clientID string) bool
}

// ErasureMarker marks a resident erased for good before anything of theirs
// is deleted, so that what is still on its way (a reading in the streams,
// a batch in the writer's hands) is dropped rather than stored or alerted
// on (devices.Registry.MarkErased; carehub also waits for the InfluxDB
// writes in progress).
type ErasureMarker interface {
	MarkErased(ctx context.Context, residentID string) error
}

// EngineEraser forgets a resident's rule state and saves the evaluator's
// snapshot without them (alerts.Engine): otherwise the clock would go on
// finding their devices offline and them inactive.
type EngineEraser interface {
	EraseResident(ctx context.Context, residentID string) error
}

// StreamSource finds a JetStream stream to purge (jetstream.JetStream).
type StreamSource interface {
	Stream(ctx context.Context, name string) (jetstream.Stream, error)
}

// Erasure is what DELETE /residents/{id} erases besides the registry. Series
// is required (without it the endpoint answers 503: an erasure that leaves
// the readings behind is not one); the others are skipped when nil, and the
// answer says so. Retention gives the streams' ages for the answer's
// retained_until (natsx.DefaultStreamOptions when zero).
type Erasure struct {
	Tombstone ErasureMarker
	Engine    EngineEraser
	Series    SeriesEraser
	Alerts    AlertEraser
	Settings  ResidentKeyEraser
	Chains    ResidentKeyEraser
	Presence  PresenceForgetter
	Broker    DeviceKicker
	Streams   StreamSource
	Retention natsx.StreamOptions
}

// erasureTimeout bounds one erasure: InfluxDB's DROP SERIES rewrites the
// index and can take seconds on a large database.
const erasureTimeout = 2 * time.Minute

type eraseBody struct {
	Reason string `json:"reason"`
}

type erasedCounts struct {
	Devices     int    `json:"devices"`
	Alerts      int    `json:"alerts"`
	Series      string `json:"series"`
	Messages    uint64 `json:"buffered_messages"`
	Assignments int    `json:"caregiver_assignments"`
}

type retainedData struct {
	What  string    `json:"what"`
	Why   string    `json:"why"`
	Until time.Time `json:"until"`
}

type erasureResult struct {
	ResidentID string         `json:"resident_id"`
	Erased     erasedCounts   `json:"erased"`
	Skipped    []string       `json:"skipped,omitempty"`
	Retained   []retainedData `json:"retained"`
	// RetainedUntil is when the last copy of each retained kind is gone.
	RetainedUntil map[string]time.Time `json:"retained_until"`
}

// eraseResident: DELETE /residents/{id}?reason= (or body {"reason"}) (admin)
// erases a resident's data everywhere (domain.md privacy: erasure per
// resident when the purpose ends; PIPA Art. 21). The reason is required
// (422) and audited before anything is erased.
//
// The order makes a failed erasure safe to run again: the resident is
// marked erased first (a tombstone kept for good: from then on their
// messages still on their way are dropped by the writer and the alert
// engine, and nothing is raised or escalated for them), the devices are
// disabled and disconnected next (no new data; a disabled device fails
// login on every instance), then the resident's messages still buffered in
// JetStream are purged (so the writer cannot put them back into InfluxDB),
// then the time series, alerts, rule settings, escalation chain and device
// presence go, and the registry records (devices, then the resident) last:
// until then the resident is still there to erase again. What stays is said
// in the answer: the audit trail, kept at least 2 years by law, and
// rejected points set aside in the dead-letter stream, which ages out.
func (s *Server) eraseResident(c *fiber.Ctx) error {
	e := s.o.Erasure
	if e.Series == nil {
		return ErrUnavailable.with("erasure is not configured on this instance (no InfluxDB eraser)")
	}
	r, err := s.visibleResident(c)
	if err != nil {
		return err
	}
	reason := c.Query("reason")
	if reason == "" && len(c.Body()) > 0 {
		var b eraseBody
		if err := decode(c, &b); err != nil {
			return err
		}
		reason = b.Reason
	}
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return invalid("reason_required", "reason is required (query ?reason= or body {\"reason\"}): an erasure is audited with its reason")
	}
	if len(reason) > maxNoteBytes {
		return invalid("reason_required", "reason longer than "+strconv.Itoa(maxNoteBytes)+" bytes")
	}
	if err := s.audit(c, r.ID, "resident.erase", reason); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), erasureTimeout)
	defer cancel()
	res, err := s.erase(ctx, r.ID)
	if err != nil {
		s.log.Error().Err(err).Str("resident_id", r.ID).Msg("erasure incomplete; it can be run again")
		return ErrUnavailable.with("the erasure did not complete (" + truncate(err.Error(), 300) + "); run it again")
	}
	s.log.Info().Str("resident_id", r.ID).Int("devices", res.Erased.Devices).Int("alerts", res.Erased.Alerts).Msg("resident erased")
	return c.JSON(res)
}

// erase runs the steps of eraseResident.
func (s *Server) erase(ctx context.Context, rid string) (erasureResult, error) {
	e := s.o.Erasure
	res := erasureResult{ResidentID: rid, Skipped: []string{}}
	kick := func(deviceID string) {
		if e.Broker != nil {
			e.Broker.Disconnect(deviceID)
		}
	}
	if e.Broker == nil {
		res.Skipped = append(res.Skipped, "mqtt_disconnect")
	}
	if e.Tombstone != nil {
		if err := e.Tombstone.MarkErased(ctx, rid); err != nil {
			return res, err
		}
	} else {
		res.Skipped = append(res.Skipped, "tombstone")
	}
	devs := s.o.Registry.Devices(func(d devices.Device) bool { return d.ResidentID == rid })
	ids := make([]string, len(devs))
	for i, d := range devs {
		ids[i] = d.ID
		if !d.Disabled {
			if _, err := s.o.Registry.SetDeviceDisabled(ctx, d.ID, true); err != nil && !errors.Is(err, devices.ErrNotFound) {
				return res, err
			}
		}
		kick(d.ID)
	}
	if e.Engine != nil {
		if err := e.Engine.EraseResident(ctx, rid); err != nil {
			return res, err
		}
	} else {
		res.Skipped = append(res.Skipped, "alert_engine")
	}
	if e.Streams != nil {
		n, err := purgeResidentMessages(ctx, e.Streams, rid)
		if err != nil {
			return res, err
		}
		res.Erased.Messages = n
	} else {
		res.Skipped = append(res.Skipped, "buffered_messages")
	}
	series, err := e.Series.EraseResident(ctx, rid, ids)
	if err != nil {
		return res, err
	}
	res.Erased.Series = series
	if e.Alerts != nil {
		if res.Erased.Alerts, err = e.Alerts.EraseResident(ctx, rid); err != nil {
			return res, err
		}
	} else {
		res.Skipped = append(res.Skipped, "alerts")
	}
	for _, step := range []struct {
		name string
		k    ResidentKeyEraser
	}{{"settings", e.Settings}, {"escalation_chain", e.Chains}} {
		if step.k == nil {
			res.Skipped = append(res.Skipped, step.name)
			continue
		}
		if err := step.k.Erase(ctx, rid); err != nil {
			return res, err
		}
	}
	if e.Presence != nil {
		for _, id := range ids {
			if err := e.Presence.Forget(ctx, id); err != nil {
				return res, err
			}
		}
	} else {
		res.Skipped = append(res.Skipped, "presence")
	}
	// Caregivers' assignment lists name the resident: take it off them.
	if ru, ok := s.o.Users.(interface {
		RemoveResident(ctx context.Context, residentID string) (int, error)
	}); ok && s.o.Users != nil {
		if res.Erased.Assignments, err = ru.RemoveResident(ctx, rid); err != nil {
			return res, err
		}
	} else {
		res.Skipped = append(res.Skipped, "assignments")
	}
	erased, err := s.o.Registry.EraseResident(ctx, rid, kick)
	if err != nil {
		return res, err
	}
	res.Erased.Devices = len(erased)
	for _, id := range erased {
		// A device registered during the erasure: its presence too.
		if e.Presence != nil && !containsString(ids, id) {
			if err := e.Presence.Forget(ctx, id); err != nil {
				return res, err
			}
		}
	}
	ret := e.Retention
	if ret.BufferAge == 0 {
		ret = natsx.DefaultStreamOptions
	}
	now := s.o.Clock().UTC()
	res.Retained = []retainedData{
		{What: "audit trail (" + model.StreamAudit + ")", Why: "PIPA: every access to a resident's data is logged and kept at least 2 years; it holds ids, not names", Until: now.Add(ret.AuditAge)},
		{What: "points InfluxDB refused, set aside (" + model.StreamDeadLetter + ")", Why: "not indexed by resident; ages out", Until: now.Add(ret.BufferAge)},
	}
	res.RetainedUntil = map[string]time.Time{
		model.StreamAudit: now.Add(ret.AuditAge), model.StreamDeadLetter: now.Add(ret.BufferAge),
	}
	if e.Streams == nil {
		// Not purged: the buffers age out.
		for _, st := range []string{model.StreamReadings, model.StreamEvents, model.StreamStatus} {
			res.RetainedUntil[st] = now.Add(ret.BufferAge)
		}
		res.RetainedUntil[model.StreamAlerts] = now.Add(ret.AlertsAge)
		res.RetainedUntil[model.StreamEscalation] = now.Add(ret.AlertsAge)
	}
	return res, nil
}

func containsString(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// purgeResidentMessages purges a resident's messages from the buffers and
// the alert history and returns how many there were.
func purgeResidentMessages(ctx context.Context, js StreamSource, rid string) (uint64, error) {
	var total uint64
	type streamSubject struct{ stream, subject string }
	var targets []streamSubject
	for name, subject := range model.ResidentFilters(rid) {
		targets = append(targets, streamSubject{name, subject})
	}
	// The resident's batched readings (contract §3): carehub's batch
	// partition is the resident id.
	targets = append(targets, streamSubject{model.StreamReadings, model.ReadingBatchSubject(rid)})
	for _, t := range targets {
		name, subject := t.stream, t.subject
		st, err := js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return total, err
		}
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(subject))
		if err != nil {
			return total, err
		}
		for _, n := range info.State.Subjects {
			total += n
		}
		if err := st.Purge(ctx, jetstream.WithPurgeSubject(subject)); err != nil {
			return total, err
		}
	}
	return total, nil
}
