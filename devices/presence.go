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
// care_presence bucket, and Close flushes a last time. The bucket's copy in
// memory (stored, kept current by its watch) seeds a device's entry the
// first time this instance hears it, so a restart keeps last_seen, and
// answers for devices other instances heard more recently.
type PresenceTracker struct {
	kv      jetstream.KeyValue
	stored  *kv.Cache[Presence]
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
	if t.stored, err = kv.NewCache(ctx, js.Conn(), bucket, kv.CacheOptions[Presence]{Log: t.log}); err != nil {
		return nil, fmt.Errorf("presence load: %w", err)
	}
	return t, nil
}

// entry returns the device's entry, creating it for a registered device
// from what the bucket holds of it.
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
		if p, ok := t.stored.Get(deviceID); ok {
			e = &presenceEntry{p: p, flushedLS: p.LastSeen}
			if !p.Online {
				e.offlineAt = p.LastSeen
			}
		}
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

// Presence returns the device's latest presence: this instance's, or the
// bucket's when another instance heard the device later.
func (t *PresenceTracker) Presence(deviceID string) (Presence, bool) {
	t.mu.RLock()
	e := t.m[deviceID]
	t.mu.RUnlock()
	stored, inKV := t.stored.Get(deviceID)
	if e == nil {
		return stored, inKV
	}
	e.mu.Lock()
	p := e.p
	e.mu.Unlock()
	if inKV && stored.LastSeen.After(p.LastSeen) {
		return stored, true
	}
	return p, true
}

// All returns every device's latest presence (as Presence does), sorted by
// device id.
func (t *PresenceTracker) All() []Presence {
	t.mu.RLock()
	es := make([]*presenceEntry, 0, len(t.m))
	for _, e := range t.m {
		es = append(es, e)
	}
	t.mu.RUnlock()
	latest := map[string]Presence{}
	for _, p := range t.stored.List(nil) {
		latest[p.DeviceID] = p
	}
	for _, e := range es {
		e.mu.Lock()
		p := e.p
		e.mu.Unlock()
		if s, ok := latest[p.DeviceID]; !ok || !s.LastSeen.After(p.LastSeen) {
			latest[p.DeviceID] = p
		}
	}
	out := make([]Presence, 0, len(latest))
	for _, p := range latest {
		out = append(out, p)
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

// Close writes the entries that changed since the last flush and stops
// watching the bucket.
func (t *PresenceTracker) Close(ctx context.Context) error {
	_, err := t.Flush(ctx)
	t.stored.Close()
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
