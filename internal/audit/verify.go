package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/internal/model"
)

// Break is the first place where the chain does not hold.
type Break struct {
	Seq    uint64 `json:"seq"` // stream sequence of the entry whose link is wrong
	Reason string `json:"reason"`
}

// Verification is what Verify found.
type Verification struct {
	Entries  int    `json:"entries"`   // entries read
	FirstSeq uint64 `json:"first_seq"` // the oldest entry still kept (older ones expired)
	LastSeq  uint64 `json:"last_seq"`
	// Unchained counts entries at the start written before the chain
	// existed (no prev): they are not covered.
	Unchained int `json:"unchained"`
	// Head is the hash of the last entry: write it down elsewhere, and a
	// later Verify that ends on the same entry with another hash shows
	// that the last entries were rewritten.
	Head  string `json:"head"`
	Break *Break `json:"break,omitempty"`
}

// Verify reads CARE_AUDIT from its oldest kept entry to its last and checks
// every link: each entry's prev must be the hash of the entry stored just
// before it, with no sequence missing in between. It stops at the first
// broken link. The oldest kept entry is the anchor: its own prev points at
// an entry that expired (MaxAge), which cannot be checked.
func (l *Log) Verify(ctx context.Context) (Verification, error) {
	var v Verification
	st, err := l.js.Stream(ctx, model.StreamAudit)
	if err != nil {
		return v, fmt.Errorf("audit stream: %w", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return v, fmt.Errorf("audit stream: %w", err)
	}
	if info.State.Msgs == 0 {
		return v, nil
	}
	v.FirstSeq, v.LastSeq = info.State.FirstSeq, info.State.LastSeq
	cons, err := l.js.OrderedConsumer(ctx, model.StreamAudit, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return v, fmt.Errorf("audit consumer: %w", err)
	}
	var prevSeq uint64
	prevHash, chained := "", false
	for {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			return v, fmt.Errorf("audit read: %w", err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return v, err
		}
		seq := md.Sequence.Stream
		v.Entries++
		var e Entry
		switch {
		case json.Unmarshal(msg.Data(), &e) != nil:
			v.Break = &Break{Seq: seq, Reason: "not an audit entry (not JSON): inserted or overwritten"}
		case prevSeq != 0 && seq != prevSeq+1:
			v.Break = &Break{Seq: seq, Reason: fmt.Sprintf("entries %d to %d are missing: deleted", prevSeq+1, seq-1)}
		case e.Prev == "" && !chained:
			v.Unchained++ // written before the chain existed
		case e.Prev == "":
			v.Break = &Break{Seq: seq, Reason: "no prev hash after chained entries: inserted or rewritten"}
		case prevSeq != 0 && e.Prev != prevHash:
			v.Break = &Break{Seq: seq, Reason: fmt.Sprintf("prev %.12s… is not the hash %.12s… of entry %d: entry %d or this one was changed, or this one was inserted", e.Prev, prevHash, prevSeq, prevSeq)}
		default:
			chained = true
		}
		if v.Break != nil {
			return v, nil
		}
		prevSeq, prevHash = seq, Hash(msg.Data())
		v.Head = prevHash
		if seq >= info.State.LastSeq || md.NumPending == 0 {
			return v, nil
		}
	}
}
