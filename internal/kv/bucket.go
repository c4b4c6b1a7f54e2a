// Package kv is how carehub uses JetStream key-value buckets: one way to
// open a bucket (Open, one policy for every bucket) and one in-memory copy
// of a bucket kept current by a watch that survives reconnects (Cache).
// The bucket names themselves are in internal/model.
package kv

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Replicas is how many copies JetStream keeps of a carehub bucket unless
// the JetStream handle says otherwise (WithReplicas): on a cluster,
// CARE_NATS_REPLICAS raises it for every bucket at once.
const Replicas = 1

// Bucket is what differs between carehub's buckets; everything else is
// the project's policy (Open).
type Bucket struct {
	Name        string // one of the model.Bucket* names
	Description string
	// History is how many values per key are kept: 1 for records whose
	// past is of no use, more where an operator may want to see what a
	// setting was before the last change.
	History uint8
	// TTL, when set, expires values this long after they were written
	// (bearer tokens).
	TTL time.Duration
}

// Open creates the bucket, or updates an existing one to carehub's
// configuration: on disk (it must survive a NATS restart) with Replicas
// copies. A bucket created by hand or by an older carehub is brought to the
// same settings instead of being used as found.
func Open(ctx context.Context, js jetstream.JetStream, b Bucket) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      b.Name,
		Description: b.Description,
		History:     max(b.History, 1),
		TTL:         b.TTL,
		Storage:     jetstream.FileStorage,
		Replicas:    Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("kv bucket %s: %w", b.Name, err)
	}
	return kv, nil
}

// WithReplicas returns js with every key-value bucket it creates or updates
// kept in n copies (CARE_NATS_REPLICAS), whichever package opens it: the
// composition root hands the result to every component, so Open's policy
// holds on a cluster without each caller knowing the replica count.
// Updating an existing bucket to n applies a changed count at start.
func WithReplicas(js jetstream.JetStream, n int) jetstream.JetStream {
	if n <= 1 {
		return js
	}
	return replicated{JetStream: js, n: n}
}

type replicated struct {
	jetstream.JetStream
	n int
}

func (r replicated) CreateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	cfg.Replicas = r.n
	return r.JetStream.CreateKeyValue(ctx, cfg)
}

func (r replicated) UpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	cfg.Replicas = r.n
	return r.JetStream.UpdateKeyValue(ctx, cfg)
}

func (r replicated) CreateOrUpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	cfg.Replicas = r.n
	return r.JetStream.CreateOrUpdateKeyValue(ctx, cfg)
}
