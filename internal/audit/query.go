package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/internal/model"
)

// Query selects audit entries: one resident's (or everyone's when
// ResidentID is empty) recorded in [From, To), at most Limit of them.
type Query struct {
	ResidentID string
	From, To   time.Time
	Limit      int
}

// MaxQueryLimit bounds one answer.
const MaxQueryLimit = 1000

// Result is a page of entries, oldest first; Truncated says that more
// matched than Limit (ask again from the last entry's time).
type Result struct {
	Entries   []Entry `json:"entries"`
	Truncated bool    `json:"truncated"`
}

// Query reads CARE_AUDIT with a short-lived ordered consumer that starts at
// q.From (JetStream finds the start by time) and filters by the resident's
// subject (and the entries naming several residents), so the cost is the
// matching entries, not the whole trail.
func (l *Log) Query(ctx context.Context, q Query) (Result, error) {
	out := Result{Entries: []Entry{}}
	if q.Limit <= 0 || q.Limit > MaxQueryLimit {
		q.Limit = MaxQueryLimit
	}
	subjects := []string{model.SubjectAuditAll}
	if q.ResidentID != "" {
		subjects = []string{model.AuditSubject(q.ResidentID), model.SubjectAuditMulti}
	}
	st, err := l.js.Stream(ctx, model.StreamAudit)
	if err != nil {
		return out, fmt.Errorf("audit stream: %w", err)
	}
	// The last entry that may match: nothing to read when it is older than
	// q.From, and the read stops there.
	var lastSeq uint64
	var lastTime time.Time
	for _, subject := range subjects {
		last, err := st.GetLastMsgForSubject(ctx, subject)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return out, fmt.Errorf("audit stream: %w", err)
		}
		if last.Sequence > lastSeq {
			lastSeq, lastTime = last.Sequence, last.Time
		}
	}
	if lastSeq == 0 || lastTime.Before(q.From) {
		return out, nil
	}
	from := q.From
	cons, err := l.js.OrderedConsumer(ctx, model.StreamAudit, jetstream.OrderedConsumerConfig{
		FilterSubjects: subjects, DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &from,
	})
	if err != nil {
		return out, fmt.Errorf("audit consumer: %w", err)
	}
	for {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			return out, fmt.Errorf("audit read: %w", err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return out, err
		}
		var e Entry
		if json.Unmarshal(msg.Data(), &e) == nil && (q.ResidentID == "" || e.Names(q.ResidentID)) {
			if !e.At.Before(q.To) {
				return out, nil
			}
			if !e.At.Before(q.From) {
				if len(out.Entries) == q.Limit {
					out.Truncated = true
					return out, nil
				}
				out.Entries = append(out.Entries, e)
			}
		}
		if md.Sequence.Stream >= lastSeq || md.NumPending == 0 {
			return out, nil
		}
	}
}
