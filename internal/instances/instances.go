// Package instances keeps track of the carehub instances sharing one NATS
// and the same MQTT brokers, and drains the broker sessions of those that
// are down.
package instances

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/ingest/mqttsub"
	"github.com/carehub/carehub/internal/kv"
	"github.com/carehub/carehub/internal/lease"
	"github.com/carehub/carehub/internal/metrics"
	"github.com/carehub/carehub/internal/model"
)

// Several instances split each broker's devices through one shared
// subscription, each with persistent sessions of its own. Mosquitto keeps
// giving a stopped instance's sessions their share of the messages and
// holds them until it is back (MQTT allows that for shared
// subscriptions), so a dead instance would hold up its share of the
// readings, SOS presses among them, for as long as it is down. The alert
// leader therefore drains the sessions of every instance that is down:
// it connects under their client ids (mqttsub.Options.Adopted) and lets go
// when the owner is back. Each instance proves it is up with a lease of
// its own ("instance.{id}" in model.BucketLeases) and records in
// model.BucketInstances what another needs to take its sessions over.

// An instance removed for good is retired (Retire, `carehub instances
// retire`): its record is marked, and the alert leader, once it drains the
// instance's sessions, unsubscribes them, takes what the broker still
// held, ends them at the broker (a clean-session connect) and deletes the
// record. Without that, Mosquitto would keep giving the removed instance
// its share for ever and the leader would hold its connections.

// member is what model.BucketInstances holds per instance.
type member struct {
	MQTTConnections int  `json:"mqtt_connections"`
	Retire          bool `json:"retire,omitempty"` // removed for good: end its sessions
}

// adoption is the sessions of one instance that is down, drained here.
type adoption struct {
	sub      *mqttsub.Subscriber
	cancel   context.CancelFunc
	done     chan struct{}
	unready  int  // consecutive checks with a connection down
	retiring bool // retire is under way
}

func (ad *adoption) stop() { ad.cancel(); <-ad.done }

// Options are what session adoption needs from the instance.
type Options struct {
	Self            string // CARE_INSTANCE_ID
	MQTTConnections int    // this instance's subscriber connections per broker
	TTL             time.Duration
	// Leases is model.BucketLeases (lease.Open); Leader is the alert
	// lease: only its holder adopts.
	Leases jetstream.KeyValue
	Leader *lease.Lease
	// Subscriber builds the subscriber of another instance's sessions
	// (mqttsub.Options with Adopted set and that instance's id and
	// connection count).
	Subscriber func(instanceID string, connections int) (*mqttsub.Subscriber, error)
	Log        zerolog.Logger
	Metrics    *metrics.Registry
}

// Run announces this instance (its record in model.BucketInstances and
// its lease) and, while it is the alert leader, drains the MQTT sessions
// of instances that are down, until ctx ends.
func Run(ctx context.Context, js jetstream.JetStream, o Options) error {
	members, err := kv.Open(ctx, js, kv.Bucket{Name: model.BucketInstances,
		Description: "carehub instances and what another needs to drain their MQTT sessions while they are down"})
	if err != nil {
		return err
	}
	me, _ := json.Marshal(member{MQTTConnections: o.MQTTConnections})
	if _, err := members.Put(ctx, o.Self, me); err != nil {
		return err
	}
	up := lease.New(o.Leases, instanceLease(o.Self), o.Self, o.TTL, o.Log)
	upDone := make(chan struct{})
	go func() { defer close(upDone); up.Run(ctx, func(ctx context.Context) { <-ctx.Done() }) }()
	defer func() { <-upDone }()

	ad := &adopter{o: o, members: members, adopted: map[string]*adoption{}}
	o.Metrics.GaugeFunc("carehub_mqtt_adopted_instances", "Instances that are down whose MQTT sessions this instance drains (the alert leader does).", func() float64 {
		ad.mu.Lock()
		defer ad.mu.Unlock()
		return float64(len(ad.adopted))
	})
	tick := time.NewTicker(o.TTL / 3)
	defer tick.Stop()
	defer ad.stopAll()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			ad.reconcile(ctx)
		}
	}
}

func instanceLease(id string) string { return "instance." + id }

// adopter keeps the set of adopted sessions in line with who is down.
type adopter struct {
	o       Options
	members jetstream.KeyValue

	mu      sync.Mutex
	adopted map[string]*adoption // by instance id
}

// reconcile adopts the sessions of instances that are down, lets go of
// those whose owner is back (or of all, when this instance no longer
// leads), and adopts again sessions whose connection was lost.
func (ad *adopter) reconcile(ctx context.Context) {
	if !ad.o.Leader.Held() {
		ad.stopAll()
		return
	}
	ids, err := ad.members.Keys(ctx)
	if err != nil {
		return // none yet, or NATS away: try again next time
	}
	for _, id := range ids {
		if id == ad.o.Self {
			continue
		}
		down, known := ad.down(ctx, id)
		if !known {
			continue
		}
		ad.mu.Lock()
		cur := ad.adopted[id]
		ad.mu.Unlock()
		switch {
		case !down && cur != nil:
			ad.o.Log.Info().Str("instance", id).Msg("instance is back; its MQTT sessions are its own again")
			ad.release(id, cur)
		case down && cur == nil:
			ad.adopt(ctx, id)
		case down && cur.retiring:
		case down && cur.sub.Ready() != nil:
			// An adopted connection does not reconnect (its owner's
			// return takes it over); lost for another reason (a broker
			// restart), the sessions are adopted again.
			if cur.unready++; cur.unready >= 3 {
				ad.release(id, cur)
			}
		case down:
			cur.unready = 0
			if rev, retire := ad.retired(ctx, id); retire {
				cur.retiring = true
				go ad.retire(id, cur, rev)
			}
		}
	}
}

// RetireQuiet is how long a retired instance's unsubscribed sessions must
// have brought nothing before they are ended.
var RetireQuiet = 2 * time.Second

// retired reports whether instance id is marked to retire, with its
// record's revision.
func (ad *adopter) retired(ctx context.Context, id string) (uint64, bool) {
	e, err := ad.members.Get(ctx, id)
	if err != nil {
		return 0, false
	}
	var m member
	return e.Revision(), json.Unmarshal(e.Value(), &m) == nil && m.Retire
}

// retire ends a retired instance's sessions (see Retire) and forgets it.
// The adoption stays in ad.adopted meanwhile, so that reconcile does not
// adopt the sessions again. If the instance comes back (its start rewrites
// its record) or this instance stops leading, its sessions are left as
// they are.
func (ad *adopter) retire(id string, cur *adoption, rev uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	defer func() {
		cur.stop()
		ad.mu.Lock()
		if ad.adopted[id] == cur {
			delete(ad.adopted, id)
		}
		ad.mu.Unlock()
	}()
	log := ad.o.Log.With().Str("instance", id).Logger()
	log.Warn().Msg("instance retired: unsubscribing its MQTT sessions and taking what the broker still holds for them")
	if err := cur.sub.Unsubscribe(ctx, RetireQuiet); err != nil {
		log.Warn().Err(err).Msg("retiring instance: unsubscribe failed; trying again")
		return
	}
	// Still ours, still leading, every connection up all along: the
	// sessions are drained and get nothing more.
	ad.mu.Lock()
	ours := ad.adopted[id] == cur
	ad.mu.Unlock()
	if !ours || !ad.o.Leader.Held() || cur.sub.Ready() != nil {
		return
	}
	cur.stop()
	if down, known := ad.down(ctx, id); !known || !down {
		return
	}
	if r, retire := ad.retired(ctx, id); !retire || r != rev {
		return // back, or changed: not ours to end
	}
	if err := cur.sub.EndSessions(ctx); err != nil {
		log.Warn().Err(err).Msg("retiring instance: its sessions could not all be ended; trying again")
		return
	}
	if err := ad.members.Delete(ctx, id, jetstream.LastRevision(rev)); err != nil {
		log.Warn().Err(err).Msg("retiring instance: its record could not be removed; trying again")
		return
	}
	log.Warn().Msg("instance retired: its MQTT sessions are ended and it is forgotten")
}

// ErrUnknownInstance: no instance of that id has run on this NATS.
var ErrUnknownInstance = errors.New("no carehub instance of that id is known")

// ErrInstanceUp: the instance to retire is running; stop it first.
var ErrInstanceUp = errors.New("the instance is up: stop it for good first, then retire it")

// Instance is one carehub instance known on this NATS.
type Instance struct {
	ID       string `json:"id"`
	Up       bool   `json:"up"`
	Retiring bool   `json:"retiring"`
}

// List is the instances known on this NATS, whether each is up, and
// whether it is being retired.
func List(ctx context.Context, js jetstream.JetStream) ([]Instance, error) {
	members, leases, err := buckets(ctx, js)
	if err != nil {
		return nil, err
	}
	ids, err := members.Keys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]Instance, 0, len(ids))
	for _, id := range ids {
		in := Instance{ID: id}
		if e, err := members.Get(ctx, id); err == nil {
			var m member
			in.Retiring = json.Unmarshal(e.Value(), &m) == nil && m.Retire
		}
		_, err := leases.Get(ctx, instanceLease(id))
		in.Up = err == nil
		out = append(out, in)
	}
	return out, nil
}

// Retire marks instance id, removed for good, to be retired: the alert
// leader ends its MQTT sessions and forgets it. It refuses an instance
// that is up. An instance started again under that id clears the mark.
func Retire(ctx context.Context, js jetstream.JetStream, id string) error {
	members, leases, err := buckets(ctx, js)
	if err != nil {
		return err
	}
	e, err := members.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return ErrUnknownInstance
	}
	if err != nil {
		return err
	}
	if _, err := leases.Get(ctx, instanceLease(id)); err == nil {
		return ErrInstanceUp
	}
	var m member
	if err := json.Unmarshal(e.Value(), &m); err != nil {
		return fmt.Errorf("instance record of %s: %w", id, err)
	}
	m.Retire = true
	b, _ := json.Marshal(m)
	_, err = members.Update(ctx, id, b, e.Revision())
	return err
}

func buckets(ctx context.Context, js jetstream.JetStream) (members, leases jetstream.KeyValue, err error) {
	if members, err = js.KeyValue(ctx, model.BucketInstances); err != nil {
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			err = ErrUnknownInstance
		}
		return nil, nil, err
	}
	if leases, err = js.KeyValue(ctx, model.BucketLeases); err != nil {
		return nil, nil, err
	}
	return members, leases, nil
}

// down reports whether instance id's lease is gone; known is false when
// NATS did not answer (nothing is decided then).
func (ad *adopter) down(ctx context.Context, id string) (down, known bool) {
	_, err := ad.o.Leases.Get(ctx, instanceLease(id))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
		return true, true
	case err != nil:
		return false, false
	}
	return false, true
}

func (ad *adopter) adopt(ctx context.Context, id string) {
	e, err := ad.members.Get(ctx, id)
	if err != nil {
		return
	}
	var m member
	if json.Unmarshal(e.Value(), &m) != nil || m.MQTTConnections < 1 {
		ad.o.Log.Warn().Str("instance", id).Msg("instance record unreadable; its MQTT sessions are not adopted")
		return
	}
	sub, err := ad.o.Subscriber(id, m.MQTTConnections)
	if err != nil {
		ad.o.Log.Warn().Err(err).Str("instance", id).Msg("MQTT sessions not adopted")
		return
	}
	runCtx, cancel := context.WithCancel(context.Background())
	cur := &adoption{sub: sub, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(cur.done); _ = sub.Run(runCtx) }()
	ad.mu.Lock()
	ad.adopted[id] = cur
	ad.mu.Unlock()
	ad.o.Log.Warn().Str("instance", id).Msg("instance is down; draining its MQTT sessions until it is back")
}

func (ad *adopter) release(id string, cur *adoption) {
	cur.stop()
	ad.mu.Lock()
	delete(ad.adopted, id)
	ad.mu.Unlock()
}

func (ad *adopter) stopAll() {
	ad.mu.Lock()
	all := ad.adopted
	ad.adopted = map[string]*adoption{}
	ad.mu.Unlock()
	for _, cur := range all {
		cur.stop()
	}
}
