// Package erasure erases one resident's data everywhere carehub keeps it
// (domain.md privacy: erasure per resident when the purpose ends; PIPA
// Art. 21): the registry, InfluxDB, the JetStream buffers and alert
// history, the KV stores and the alert engine's state. Each place is
// reached through a small interface its owner implements; the API's
// DELETE /residents/{id} calls Eraser.Erase after checking and auditing
// the request.
package erasure

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/internal/model"
)

// Registry is what an erasure needs of the device registry
// (devices.Registry).
type Registry interface {
	Devices(keep func(devices.Device) bool) []devices.Device
	SetDeviceDisabled(ctx context.Context, id string, disabled bool) (devices.Device, error)
	EraseResident(ctx context.Context, id string, kick func(deviceID string)) ([]string, error)
}

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
// history (settings.Store, escalation.Store).
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

// Marker marks a resident erased for good before anything of theirs is
// deleted, so that what is still on its way (a reading in the streams, a
// batch in the writer's hands) is dropped rather than stored or alerted on
// (devices.Registry.MarkErased; see MarkThenFence).
type Marker interface {
	MarkErased(ctx context.Context, residentID string) error
}

// EngineEraser forgets a resident's rule state and saves the evaluator's
// snapshot without them (engine.Engine): otherwise the clock would go on
// finding their devices offline and them inactive.
type EngineEraser interface {
	EraseResident(ctx context.Context, residentID string) error
}

// AssignmentRemover takes a resident off every caregiver's assignment list
// and says how many lists named them (users.Store).
type AssignmentRemover interface {
	RemoveResident(ctx context.Context, residentID string) (int, error)
}

// StreamSource finds a JetStream stream to purge (jetstream.JetStream).
type StreamSource interface {
	Stream(ctx context.Context, name string) (jetstream.Stream, error)
}

// ErrNotConfigured: an Eraser without Registry, Series or Retention erases
// nothing, since an erasure that leaves the readings behind is not one, and
// one that cannot say what it leaves is not either.
var ErrNotConfigured = errors.New("erasure is not configured (no registry, InfluxDB eraser or retention ages)")

// Retention is how long the streams keep what an erasure leaves in them
// (natsx.StreamOptions' ages: CARE_BUFFER_AGE, CARE_AUDIT_RETENTION).
type Retention struct {
	Buffers time.Duration // readings, events, status and the dead letters
	Alerts  time.Duration // alert transitions and escalations
	Audit   time.Duration // the audit trail
}

// Eraser erases residents. Registry, Series and Retention are required;
// the others are skipped when nil, and the Result says so.
type Eraser struct {
	Registry    Registry
	Tombstone   Marker
	Engine      EngineEraser
	Series      SeriesEraser
	Alerts      AlertEraser
	Settings    ResidentKeyEraser
	Chains      ResidentKeyEraser
	Presence    PresenceForgetter
	Broker      DeviceKicker
	Streams     StreamSource
	Assignments AssignmentRemover
	Retention   Retention
	Clock       func() time.Time // time.Now when nil
	// BatchWait bounds how long an erasure waits for the consumers of
	// CARE_READINGS to pass the resident's reading partition
	// (purgePartition); 0 means DefaultBatchWait.
	BatchWait time.Duration
}

// DefaultBatchWait is Eraser.BatchWait's default: the writer's batch
// interval and the engine's fetch many times over.
const DefaultBatchWait = 10 * time.Second

// Result is what one erasure did and what it left, and why.
type Result struct {
	ResidentID string
	// Devices, Alerts, Series, Messages and Assignments are what was
	// erased: registered devices, stored alerts, InfluxDB's description of
	// the series dropped, messages purged from the streams, and caregivers'
	// assignment lists the resident was taken off.
	Devices     int
	Alerts      int
	Series      string
	Messages    uint64
	Assignments int
	// Skipped names the steps without a configured dependency.
	Skipped []string
	// Retained is what stays, by law or because it ages out.
	Retained []Retained
	// RetainedUntil is when the last copy of each retained kind is gone,
	// by stream name.
	RetainedUntil map[string]time.Time

	batchesLeft bool // partition batches not yet consumed by every consumer
}

// Retained is one kind of data an erasure leaves, why, and until when.
type Retained struct {
	What  string
	Why   string
	Until time.Time
}

// Erase erases the resident rid.
//
// The order makes a failed erasure safe to run again: the resident is
// marked erased first (a tombstone kept for good: from then on their
// messages still on their way are dropped by the writer and the alert
// engine, and nothing is raised or escalated for them), the devices are
// disabled and disconnected next (no new data; a disabled device fails
// login on every instance), then the resident's messages still buffered in
// JetStream are purged (so the writer cannot put them back into InfluxDB),
// then the time series, alerts, rule settings, escalation chain, device
// presence and caregivers' assignments go, and the registry records
// (devices, then the resident) last: until then the resident is still
// there to erase again. What stays is said in the Result: the audit trail,
// kept at least 2 years by law, and rejected points set aside in the
// dead-letter stream, which ages out.
func (e *Eraser) Erase(ctx context.Context, rid string) (Result, error) {
	res := Result{ResidentID: rid, Skipped: []string{}}
	if e.Registry == nil || e.Series == nil || e.Retention.Buffers <= 0 || e.Retention.Alerts <= 0 || e.Retention.Audit <= 0 {
		return res, ErrNotConfigured
	}
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
	devs := e.Registry.Devices(func(d devices.Device) bool { return d.ResidentID == rid })
	ids := make([]string, len(devs))
	for i, d := range devs {
		ids[i] = d.ID
		if !d.Disabled {
			if _, err := e.Registry.SetDeviceDisabled(ctx, d.ID, true); err != nil && !errors.Is(err, devices.ErrNotFound) {
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
		res.Messages = n
		wait := e.BatchWait
		if wait <= 0 {
			wait = DefaultBatchWait
		}
		n, left, err := purgePartition(ctx, e.Streams, rid, wait)
		if err != nil {
			return res, err
		}
		res.Messages += n
		res.batchesLeft = left
	} else {
		res.Skipped = append(res.Skipped, "buffered_messages")
	}
	series, err := e.Series.EraseResident(ctx, rid, ids)
	if err != nil {
		return res, err
	}
	res.Series = series
	if e.Alerts != nil {
		if res.Alerts, err = e.Alerts.EraseResident(ctx, rid); err != nil {
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
	if e.Assignments != nil {
		if res.Assignments, err = e.Assignments.RemoveResident(ctx, rid); err != nil {
			return res, err
		}
	} else {
		res.Skipped = append(res.Skipped, "assignments")
	}
	erased, err := e.Registry.EraseResident(ctx, rid, kick)
	if err != nil {
		return res, err
	}
	res.Devices = len(erased)
	for _, id := range erased {
		// A device registered during the erasure: its presence too.
		if e.Presence != nil && !slices.Contains(ids, id) {
			if err := e.Presence.Forget(ctx, id); err != nil {
				return res, err
			}
		}
	}
	e.retained(&res)
	return res, nil
}

// retained says what the erasure leaves and until when.
func (e *Eraser) retained(res *Result) {
	ret := e.Retention
	now := time.Now
	if e.Clock != nil {
		now = e.Clock
	}
	at := now().UTC()
	res.Retained = []Retained{
		{What: "audit trail (" + model.StreamAudit + ")", Why: "PIPA: every access to a resident's data is logged and kept at least 2 years; it holds ids, not names", Until: at.Add(ret.Audit)},
		{What: "points InfluxDB refused, set aside (" + model.StreamDeadLetter + ")", Why: "not indexed by resident; ages out", Until: at.Add(ret.Buffers)},
	}
	res.RetainedUntil = map[string]time.Time{
		model.StreamAudit: at.Add(ret.Audit), model.StreamDeadLetter: at.Add(ret.Buffers),
	}
	if res.batchesLeft {
		res.Retained = append(res.Retained, Retained{What: "reading batches of the resident's partition not yet consumed (" + model.StreamReadings + ")",
			Why:   "they hold other residents' readings a consumer has not yet acknowledged; the writer and the alert engine drop the erased resident's readings (tombstone), and the batches age out",
			Until: at.Add(ret.Buffers)})
		res.RetainedUntil[model.StreamReadings] = at.Add(ret.Buffers)
	}
	if e.Streams == nil {
		// Not purged: the buffers age out.
		for _, st := range []string{model.StreamReadings, model.StreamEvents, model.StreamStatus} {
			res.RetainedUntil[st] = at.Add(ret.Buffers)
		}
		res.RetainedUntil[model.StreamAlerts] = at.Add(ret.Alerts)
		res.RetainedUntil[model.StreamEscalation] = at.Add(ret.Alerts)
	}
}

// Fencer waits until the InfluxDB writes in progress when it was called
// are done (ingest.Writer).
type Fencer interface {
	Fence(ctx context.Context) error
}

// MarkThenFence marks a resident erased with m, then waits for this
// instance's InfluxDB writes in progress with f: each checks the marks
// after it began, so once they are done nothing of the resident is written
// behind the erasure's back. Other instances' writers see the mark through
// their registry watcher within milliseconds.
func MarkThenFence(m Marker, f Fencer) Marker { return fencedMarker{m, f} }

type fencedMarker struct {
	m Marker
	f Fencer
}

func (fm fencedMarker) MarkErased(ctx context.Context, residentID string) error {
	if err := fm.m.MarkErased(ctx, residentID); err != nil {
		return err
	}
	return fm.f.Fence(ctx)
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
