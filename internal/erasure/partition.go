package erasure

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/retry"
)

// purgePartition erases the resident's readings that the intake batched
// with other residents' (CARE_INGEST_BATCH; contract §3): they are in the
// batches of the resident's reading partition,
// model.ReadingPartitionSubject, which cannot be purged by resident. The
// resident is marked erased before this runs, so every consumer that
// reads a batch from then on leaves their readings out (the tombstone
// check). purgePartition waits, up to wait, until every consumer of
// CARE_READINGS that acknowledges has acknowledged the partition's last
// batch, then purges the partition's batches below the consumers' lowest
// acknowledgement floor: what no consumer still needs, the erased
// resident's readings with the others'. It returns how many batches it
// purged and whether batches are left that a consumer has not yet
// acknowledged (a consumer stopped or far behind); those age out with the
// stream (CARE_BUFFER_AGE).
func purgePartition(ctx context.Context, js StreamSource, rid string, wait time.Duration) (uint64, bool, error) {
	subject := model.ReadingPartitionSubject(model.ReadingPartition(rid))
	st, err := js.Stream(ctx, model.StreamReadings)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	last, err := st.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, false, nil // no batch of the partition is left
	}
	if err != nil {
		return 0, false, err
	}
	deadline := time.Now().Add(wait)
	var floor uint64
	for {
		if floor, err = ackFloor(ctx, st, last.Sequence); err != nil {
			return 0, false, err
		}
		if floor >= last.Sequence || time.Now().After(deadline) {
			break
		}
		if err := retry.Sleep(ctx, 50*time.Millisecond); err != nil { // polling the consumers' progress
			return 0, false, err
		}
	}
	if floor == 0 {
		return 0, true, nil
	}
	floor = min(floor, last.Sequence)
	before, err := subjectCount(ctx, st, subject)
	if err != nil {
		return 0, false, err
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSubject(subject), jetstream.WithPurgeSequence(floor+1)); err != nil {
		return 0, false, err
	}
	after, err := subjectCount(ctx, st, subject)
	if err != nil {
		return 0, false, err
	}
	return before - after, after > 0, nil
}

// ackFloor is the lowest stream sequence below which every consumer of st
// that acknowledges has acknowledged everything. A consumer with nothing
// pending and nothing unacknowledged that has been delivered last (the
// stream's newest message of interest) needs nothing in the stream, and
// does not hold it back (math.MaxUint64 when none does). 0: there is no
// such consumer, and nothing is known to be consumed. The delivered check
// matters: the server counts a consumer's pending messages after the
// publish is acknowledged, so for a moment a consumer that has not seen a
// new batch shows nothing pending (an erasure under load purged two
// unconsumed batches that way).
func ackFloor(ctx context.Context, st jetstream.Stream, last uint64) (uint64, error) {
	var floor uint64
	found := false
	cl := st.ListConsumers(ctx)
	for ci := range cl.Info() {
		if ci.Config.AckPolicy == jetstream.AckNonePolicy {
			continue
		}
		f := ci.AckFloor.Stream
		if ci.NumPending == 0 && ci.NumAckPending == 0 && ci.Delivered.Stream >= last {
			f = math.MaxUint64
		}
		if !found || f < floor {
			floor, found = f, true
		}
	}
	if err := cl.Err(); err != nil {
		return 0, err
	}
	return floor, nil
}

func subjectCount(ctx context.Context, st jetstream.Stream, subject string) (uint64, error) {
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n, nil
}
