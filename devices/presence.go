package devices

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/kv"
	"github.com/carehub/carehub/internal/model"
)

// DeviceLookup is what the presence tracker needs from the registry: the
// home of a device, and whether it is registered at all (unregistered ids are
// not tracked, so hostile input cannot grow the table).
type DeviceLookup interface {
	Device(id string) (Device, bool)
}

// PresenceOptions tunes the tracker.
type PresenceOptions struct {
	// FlushEvery is how often changed entries are written to KV. Default 5s:
	// a restart loses at most this much of last_seen, which the "device
	// offline" rules measure in minutes.
	FlushEvery time.Duration
	// LastSeenResolution is how far last_seen must have moved since it was
	// last written before a Seen alone makes an entry dirty. Default 30s:
	// without it every active device would be rewritten every flush.
	LastSeenResolution time.Duration
}

func (o PresenceOptions) withDefaults() PresenceOptions {
	if o.FlushEvery <= 0 {
		o.FlushEvery = 5 * time.Second
	}
	if o.LastSeenResolution <= 0 {
		o.LastSeenResolution = 30 * time.Second
	}
	return o
}

// PresenceTracker keeps what carehub last heard from each device. Ingest
// calls Seen for every accepted message and Report for every status message
// or Last Will; both only touch memory. Run flushes changed entries to the
// care_presence bucket, and Close flushes a last time.
type PresenceTracker struct {
	kv      jetstream.KeyValue
	devices DeviceLookup
	log     zerolog.Logger
	opts    PresenceOptions

	mu sync.RWMutex
	m  map[string]*presenceEntry

	flushMu sync.Mutex // one flush at a time (Run and Close)
}

type presenceEntry struct {
	mu        sync.Mutex
	p         Presence
	offlineAt time.Time // when the last offline report arrived
	flushedLS time.Time // last_seen as last written to KV
	dirty     bool
}

// NewPresenceTracker opens (creating if missing) the care_presence bucket and
// loads it, so a restart keeps last_seen.
func NewPresenceTracker(ctx context.Context, js jetstream.JetStream, devices DeviceLookup, log zerolog.Logger, opts PresenceOptions) (*PresenceTracker, error) {
	bucket, err := kv.Open(ctx, js, kv.Bucket{Name: model.BucketPresence, Description: "carehub device presence by device id", History: 1})
	if err != nil {
		return nil, err
	}
	t := &PresenceTracker{
		kv: bucket, devices: devices, opts: opts.withDefaults(),
		log: log.With().Str("component", "presence").Logger(),
		m:   make(map[string]*presenceEntry),
	}
	if err := t.load(ctx); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *PresenceTracker) load(ctx context.Context) error {
	w, err := t.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("presence load: %w", err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("presence load: %w", ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("presence load: watcher closed")
			}
			if e == nil {
				return nil
			}
			if e.Operation() != jetstream.KeyValuePut {
				continue
			}
			var p Presence
			if err := json.Unmarshal(e.Value(), &p); err != nil {
				t.log.Error().Err(err).Str("key", e.Key()).Msg("presence record is not valid JSON; ignored")
				continue
			}
			pe := &presenceEntry{p: p, flushedLS: p.LastSeen}
			if !p.Online {
				pe.offlineAt = p.LastSeen
			}
			t.m[e.Key()] = pe
		}
	}
}

// entry returns the device's entry, creating it for a registered device.
func (t *PresenceTracker) entry(deviceID string) *presenceEntry {
	t.mu.RLock()
	e := t.m[deviceID]
	t.mu.RUnlock()
	if e != nil {
		return e
	}
	d, ok := t.devices.Device(deviceID)
	if !ok {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if e = t.m[deviceID]; e == nil {
		e = &presenceEntry{p: Presence{DeviceID: deviceID, HomeID: d.HomeID}}
		t.m[deviceID] = e
	}
	return e
}

// Seen records that an accepted message arrived from the device at at. A
// message after an offline report means the device is back online.
func (t *PresenceTracker) Seen(deviceID string, at time.Time) {
	e := t.entry(deviceID)
	if e == nil {
		return
	}
	e.mu.Lock()
	if at.After(e.p.LastSeen) {
		e.p.LastSeen = at
		if at.Sub(e.flushedLS) >= t.opts.LastSeenResolution {
			e.dirty = true
		}
	}
	if !e.p.Online && at.After(e.offlineAt) {
		e.p.Online = true
		e.dirty = true
	}
	e.mu.Unlock()
}

// Report records a status message or Last Will (contract §1: status payload;
// the Last Will is {"online":false}); p.LastSeen is when it arrived. Online
// is what the report says. Optional fields that are absent keep their last
// known value.
func (t *PresenceTracker) Report(p Presence) {
	e := t.entry(p.DeviceID)
	if e == nil {
		return
	}
	at := p.LastSeen
	e.mu.Lock()
	defer e.mu.Unlock()
	if at.Before(e.offlineAt) {
		return // older than the offline report already applied
	}
	e.p.Online = p.Online
	if !p.Online {
		e.offlineAt = at
	}
	if at.After(e.p.LastSeen) {
		e.p.LastSeen = at
	}
	if p.BatteryPct != nil {
		v := *p.BatteryPct
		e.p.BatteryPct = &v
	}
	if p.RSSIdBm != nil {
		v := *p.RSSIdBm
		e.p.RSSIdBm = &v
	}
	if p.FW != "" {
		e.p.FW = p.FW
	}
	e.dirty = true
}

// Presence returns the device's latest presence.
func (t *PresenceTracker) Presence(deviceID string) (Presence, bool) {
	t.mu.RLock()
	e := t.m[deviceID]
	t.mu.RUnlock()
	if e == nil {
		return Presence{}, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.p, true
}

// All returns every device's latest presence, sorted by device id.
func (t *PresenceTracker) All() []Presence {
	t.mu.RLock()
	es := make([]*presenceEntry, 0, len(t.m))
	for _, e := range t.m {
		es = append(es, e)
	}
	t.mu.RUnlock()
	out := make([]Presence, 0, len(es))
	for _, e := range es {
		e.mu.Lock()
		out = append(out, e.p)
		e.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].DeviceID < out[j].DeviceID })
	return out
}

// Run flushes changed entries every FlushEvery until ctx ends.
func (t *PresenceTracker) Run(ctx context.Context) {
	tick := time.NewTicker(t.opts.FlushEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if n, err := t.Flush(ctx); err != nil {
				t.log.Warn().Err(err).Int("written", n).Msg("presence flush incomplete; will retry")
			}
		}
	}
}

// Close writes the entries that changed since the last flush.
func (t *PresenceTracker) Close(ctx context.Context) error {
	_, err := t.Flush(ctx)
	return err
}

// Flush writes every changed entry to KV and returns how many it wrote. An
// entry whose write fails stays dirty for the next flush.
func (t *PresenceTracker) Flush(ctx context.Context) (int, error) {
	t.flushMu.Lock()
	defer t.flushMu.Unlock()
	t.mu.RLock()
	es := make([]*presenceEntry, 0, len(t.m))
	for _, e := range t.m {
		es = append(es, e)
	}
	t.mu.RUnlock()

	written := 0
	var errs []error
	for _, e := range es {
		e.mu.Lock()
		if !e.dirty {
			e.mu.Unlock()
			continue
		}
		p := e.p
		e.dirty = false
		e.mu.Unlock()

		b, err := json.Marshal(p)
		if err == nil {
			_, err = t.kv.Put(ctx, p.DeviceID, b)
		}
		e.mu.Lock()
		if err != nil {
			e.dirty = true
			errs = append(errs, fmt.Errorf("presence %s: %w", p.DeviceID, err))
		} else if p.LastSeen.After(e.flushedLS) {
			e.flushedLS = p.LastSeen
		}
		e.mu.Unlock()
		if err != nil && ctx.Err() != nil {
			break
		}
		if err == nil {
			written++
		}
	}
	return written, errors.Join(errs...)
}
