package ingest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/internal/model"
)

// DefaultBatchDelay is how long a partition's batch waits for more
// readings after its first (Options.BatchDelay).
const DefaultBatchDelay = 2 * time.Millisecond

// batcher collects the readings of many device messages into one
// JetStream message per partition (model.ReadingPartition, subject
// model.ReadingPartitionSubject), flushed when it holds max readings or
// delay after its first. Every device message whose readings went into a
// batch is acknowledged to its device only once the batch's PubAck
// arrived (Pending.Confirm): nothing is acknowledged before it is durable,
// and a batch that cannot be stored leaves all of its messages
// unacknowledged, so that the broker redelivers them.
//
// One resident's readings are in one partition, and a partition's batches
// are published in the order they were filled, under the partition's
// lock, on one connection: JetStream stores them in that order, so the
// consumers see each resident's readings in arrival order.
type batcher struct {
	in    *Intake
	max   int
	delay time.Duration
	idPfx string        // this intake's Nats-Msg-Id prefix
	seq   atomic.Uint64 // the last batch id
	parts [model.ReadingPartitions]partition
}

type partition struct {
	mu  sync.Mutex
	cur *readingBatch // being filled; nil when none is
}

// readingBatch is one partition's batch: filled, then published, then
// confirmed (done closed, err set when it was not stored).
type readingBatch struct {
	part  int
	rs    []model.Reading
	timer *time.Timer
	due   time.Time // when the timer flushes it
	pubs  []pendingPub
	done  chan struct{}
	err   error
}

func newBatcher(in *Intake, size int, delay time.Duration) *batcher {
	if delay <= 0 {
		delay = DefaultBatchDelay
	}
	var id [6]byte
	_, _ = rand.Read(id[:])
	return &batcher{in: in, max: size, delay: delay, idPfx: "rb-" + hex.EncodeToString(id[:]) + "-"}
}

// add puts one device message's readings, all of one resident, into their
// partition's batch and returns the batch, which is flushed when full or
// after the delay. ctx is the intake's: a full batch is published by the
// caller that filled it, and the publish waits for room in the window.
func (b *batcher) add(ctx context.Context, rs []model.Reading) *readingBatch {
	n := model.ReadingPartition(rs[0].ResidentID)
	p := &b.parts[n]
	p.mu.Lock()
	defer p.mu.Unlock()
	cb := p.cur
	if cb == nil {
		cb = &readingBatch{part: n, rs: make([]model.Reading, 0, min(b.max, 16)), done: make(chan struct{}), due: time.Now().Add(b.delay)}
		p.cur = cb
		cb.timer = time.AfterFunc(b.delay, func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.cur == cb {
				p.cur = nil
				b.flush(ctx, cb)
			}
		})
	}
	cb.rs = append(cb.rs, rs...)
	if len(cb.rs) >= b.max {
		cb.timer.Stop()
		p.cur = nil
		b.flush(ctx, cb)
	}
	return cb
}

// hurry makes a batch still being filled flush within DefaultBatchDelay
// (or its own delay, when shorter). The embedded broker's publish hook
// (Intake.Ingest) holds the device's connection until the message is
// stored: while the batch waits, that connection sends nothing more, and at
// a 40 ms delay one connection would get 25 acknowledgements a second.
// Other connections' readings still join the batch in the time left.
func (b *batcher) hurry(cb *readingBatch) {
	d := min(b.delay, DefaultBatchDelay)
	p := &b.parts[cb.part]
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur != cb || time.Until(cb.due) <= d {
		return // flushed already, or due soon enough
	}
	cb.due = time.Now().Add(d)
	// The timer's function checks p.cur under p.mu: should it be running
	// already, behind this lock, one of the two runs flushes the batch and
	// the other finds it gone.
	cb.timer.Reset(d)
}

// flush publishes a batch taken off its partition; the caller holds the
// partition's lock, so that the partition's batches reach JetStream in
// order. A goroutine then waits for the PubAcks, republishing on failure
// (with the same Nats-Msg-Id, so that JetStream drops a copy it already
// stored), and closes done.
func (b *batcher) flush(ctx context.Context, cb *readingBatch) {
	subject := model.ReadingPartitionSubject(cb.part)
	cb.pubs = partitionMsgs(cb.pubs, subject, cb.rs)
	for i := range cb.pubs {
		msg := cb.pubs[i].msg
		msg.Header = nats.Header{}
		msg.Header.Set(jetstream.MsgIDHeader, b.idPfx+strconv.FormatUint(b.seq.Add(1), 36))
		cb.pubs[i].fut = b.in.publish(ctx, b.in.js, msg)
	}
	b.in.m.batchReadings.Observe(float64(len(cb.rs)))
	go func() {
		for i := range cb.pubs {
			if !b.in.confirm(ctx, b.in.js, &cb.pubs[i]) {
				cb.err = context.Cause(ctx)
				if cb.err == nil {
					cb.err = context.Canceled
				}
				break
			}
		}
		cb.rs = nil
		close(cb.done)
	}()
}

// wait returns nil once the batch is stored, or the error that left it
// unstored: the device message is then to be left unacknowledged, and the
// broker redelivers it. Like Pending.Confirm, it does not give up on a
// publish in flight when the intake's context ends: the confirmation
// goroutine ends once JetStream answered or the publish timed out.
func (cb *readingBatch) wait() error {
	<-cb.done
	return cb.err
}

// partitionMsgs appends the batch messages of rs on subject, split in
// order when one would exceed maxBatchBytes.
func partitionMsgs(pubs []pendingPub, subject string, rs []model.Reading) []pendingPub {
	data := model.ReadingBatchJSON(rs)
	if len(data) > maxBatchBytes && len(rs) > 1 {
		mid := len(rs) / 2
		return partitionMsgs(partitionMsgs(pubs, subject, rs[:mid]), subject, rs[mid:])
	}
	return append(pubs, pendingPub{msg: &nats.Msg{Subject: subject, Data: data}})
}
