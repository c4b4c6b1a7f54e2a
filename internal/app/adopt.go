package app

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/ingest"
	"github.com/carehub/carehub/ingest/mqttsub"
	"github.com/carehub/carehub/internal/kv"
	"github.com/carehub/carehub/internal/lease"
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

// member is what model.BucketInstances holds per instance.
type member struct {
	MQTTConnections int `json:"mqtt_connections"`
}

// adoption is the sessions of one instance that is down, drained here.
type adoption struct {
	sub     *mqttsub.Subscriber
	cancel  context.CancelFunc
	done    chan struct{}
	unready int // consecutive checks with a connection down
}

func (ad *adoption) stop() { ad.cancel(); <-ad.done }

// startSessionAdoption announces this instance and, while it is the alert
// leader, drains the MQTT sessions of instances that are down. With the
// embedded broker there is nothing to share and it does nothing.
func (a *App) startSessionAdoption(ctx context.Context, js jetstream.JetStream, alertLease *lease.Lease, b *broker, clientTLS *tls.Config, intake *ingest.Intake) (func(context.Context), error) {
	if b.embedded != nil {
		return func(context.Context) {}, nil
	}
	cfg := a.Config
	members, err := kv.Open(ctx, js, kv.Bucket{Name: model.BucketInstances,
		Description: "carehub instances and what another needs to drain their MQTT sessions while they are down"})
	if err != nil {
		return nil, err
	}
	me, _ := json.Marshal(member{MQTTConnections: cfg.MQTTConnections})
	if _, err := members.Put(ctx, cfg.InstanceID, me); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	up := lease.New(a.leases, instanceLease(cfg.InstanceID), cfg.InstanceID, cfg.AlertLeaseTTL, a.Log)
	upDone := a.goRun("instance-lease", func() error { up.Run(runCtx, func(ctx context.Context) { <-ctx.Done() }); return nil })

	ad := &adopter{a: a, members: members, leader: alertLease, broker: b, tls: clientTLS, intake: intake, adopted: map[string]*adoption{}}
	a.Metrics.GaugeFunc("carehub_mqtt_adopted_instances", "Instances that are down whose MQTT sessions this instance drains (the alert leader does).", func() float64 {
		ad.mu.Lock()
		defer ad.mu.Unlock()
		return float64(len(ad.adopted))
	})
	adDone := a.goRun("session-adoption", func() error {
		tick := time.NewTicker(cfg.AlertLeaseTTL / 3)
		defer tick.Stop()
		defer ad.stopAll()
		for {
			select {
			case <-runCtx.Done():
				return nil
			case <-tick.C:
				ad.reconcile(runCtx)
			}
		}
	})
	return func(ctx context.Context) { cancel(); waitDone(ctx, adDone); waitDone(ctx, upDone) }, nil
}

func instanceLease(id string) string { return "instance." + id }

// adopter keeps the set of adopted sessions in line with who is down.
type adopter struct {
	a       *App
	members jetstream.KeyValue
	leader  *lease.Lease
	broker  *broker
	tls     *tls.Config
	intake  *ingest.Intake

	mu      sync.Mutex
	adopted map[string]*adoption // by instance id
}

// reconcile adopts the sessions of instances that are down, lets go of
// those whose owner is back (or of all, when this instance no longer
// leads), and adopts again sessions whose connection was lost.
func (ad *adopter) reconcile(ctx context.Context) {
	if !ad.leader.Held() {
		ad.stopAll()
		return
	}
	ids, err := ad.members.Keys(ctx)
	if err != nil {
		return // none yet, or NATS away: try again next time
	}
	for _, id := range ids {
		if id == ad.a.Config.InstanceID {
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
			ad.a.Log.Info().Str("instance", id).Msg("instance is back; its MQTT sessions are its own again")
			ad.release(id, cur)
		case down && cur == nil:
			ad.adopt(ctx, id)
		case down && cur.sub.Ready() != nil:
			// An adopted connection does not reconnect (its owner's
			// return takes it over); lost for another reason (a broker
			// restart), the sessions are adopted again.
			if cur.unready++; cur.unready >= 3 {
				ad.release(id, cur)
			}
		case down:
			cur.unready = 0
		}
	}
}

// down reports whether instance id's lease is gone; known is false when
// NATS did not answer (nothing is decided then).
func (ad *adopter) down(ctx context.Context, id string) (down, known bool) {
	_, err := ad.a.leases.Get(ctx, instanceLease(id))
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
		ad.a.Log.Warn().Str("instance", id).Msg("instance record unreadable; its MQTT sessions are not adopted")
		return
	}
	cfg, b := ad.a.Config, ad.broker
	sub, err := mqttsub.New(mqttsub.Options{BrokerURL: b.url, BrokerURLs: b.urls, Username: b.user, Password: b.password,
		ShareGroup: cfg.MQTTShareGroup, Connections: m.MQTTConnections, InstanceID: id, TLS: ad.tls, Adopted: true,
		Intake: ad.intake, Log: ad.a.Log.With().Str("component", "ingest").Str("adopted", id).Logger()})
	if err != nil {
		ad.a.Log.Warn().Err(err).Str("instance", id).Msg("MQTT sessions not adopted")
		return
	}
	runCtx, cancel := context.WithCancel(context.Background())
	cur := &adoption{sub: sub, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(cur.done); _ = sub.Run(runCtx) }()
	ad.mu.Lock()
	ad.adopted[id] = cur
	ad.mu.Unlock()
	ad.a.Log.Warn().Str("instance", id).Msg("instance is down; draining its MQTT sessions until it is back")
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
