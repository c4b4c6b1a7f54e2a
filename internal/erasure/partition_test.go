package erasure_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/testenv"
)

// partitionMate returns a resident id in r1's reading partition, and one in
// another.
func partitionMate() (mate, other string) {
	p := model.ReadingPartition("r1")
	for mate == "" || other == "" {
		id := testenv.ID("r")
		if model.ReadingPartition(id) == p {
			mate = id
		} else {
			other = id
		}
	}
	return mate, other
}

func subjectMsgs(t *testing.T, js jetstream.JetStream, subject string) uint64 {
	t.Helper()
	st, err := js.Stream(context.Background(), model.StreamReadings)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}

// TestErasePartitionBatches (issue 14 item 2): the intake's partition
// batches hold several residents' readings, so an erasure cannot purge
// them by resident. It waits for the consumers of CARE_READINGS to
// acknowledge the resident's partition (they drop the erased resident's
// readings by the tombstone), then purges the partition's consumed
// batches: none of the resident's readings is left, another partition's
// batches are untouched. A consumer that does not get there in time
// leaves the batches, and the result says so and until when.
func TestErasePartitionBatches(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, js := testenv.JetStream(t, testenv.NATS(t))
	mate, other := partitionMate()
	part := model.ReadingPartitionSubject(model.ReadingPartition("r1"))
	otherPart := model.ReadingPartitionSubject(model.ReadingPartition(other))
	publish := func(subject string, rids ...string) {
		t.Helper()
		var b strings.Builder
		b.WriteString(`{"readings":[`)
		for i, r := range rids {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"resident_id":"` + r + `"}`)
		}
		b.WriteString(`]}`)
		if _, err := js.Publish(ctx, subject, []byte(b.String())); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, model.StreamReadings, jetstream.ConsumerConfig{Durable: "reader", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}

	// A consumer that stops before r1's batches: they stay, and the result
	// says until when.
	publish(otherPart, other)
	publish(part, mate, "r1")
	publish(part, "r1")
	e := fakeEraser(&steps{})
	e.Streams, e.BatchWait = js, 300*time.Millisecond
	res, err := e.Erase(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if n := subjectMsgs(t, js, part); n != 2 {
		t.Fatalf("%d batches of the partition left while nobody consumed them, want 2", n)
	}
	if _, ok := res.RetainedUntil[model.StreamReadings]; !ok || len(res.Retained) != 3 {
		t.Fatalf("batches left unconsumed, not said: %+v", res)
	}

	// A consumer that goes on: the erasure waits for it, then purges.
	go func() {
		for ctx.Err() == nil {
			batch, err := cons.Fetch(10, jetstream.FetchMaxWait(100*time.Millisecond))
			if err != nil {
				continue
			}
			for m := range batch.Messages() {
				_ = m.Ack()
			}
		}
	}()
	e.BatchWait = 20 * time.Second
	res, err = e.Erase(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if n := subjectMsgs(t, js, part); n != 0 {
		t.Fatalf("%d batches of r1's partition left after the consumer passed them", n)
	}
	if n := subjectMsgs(t, js, otherPart); n != 1 {
		t.Fatalf("%d batches of another partition, want 1 untouched", n)
	}
	if res.Messages != 2 || len(res.Retained) != 2 {
		t.Fatalf("result: %+v", res)
	}
}
