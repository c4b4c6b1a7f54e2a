// Package outbox publishes the alert transitions that package alerts
// stored before sending them (each alert's KV record keeps its outbox until
// they are out): on care.alerts.{resident_id}.{severity} with Nats-Msg-Id
// (contract §3) and the time of their InfluxDB point
// (model.HeaderPointTime), and on the 119 subject when one reached the
// emergency tier.
package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/internal/model"
)

// Timeout bounds one publish: JetStream's ack, then the flush of a 119
// message.
const Timeout = 2 * time.Second

// Entry is one transition waiting to be published, as the alert's KV
// record keeps it.
type Entry struct {
	Seq     uint64          `json:"seq"`
	MsgID   string          `json:"msg_id"`
	Subject string          `json:"subject"`
	Data    json.RawMessage `json:"data"`
	PointMs int64           `json:"point_ms"`         // its model.HeaderPointTime
	To119   string          `json:"to_119,omitempty"` // the 119 subject, when this transition reached the emergency tier
	// Published is set only in records of earlier versions, which kept a
	// published transition until InfluxDB had its point; load drops them.
	Published bool `json:"published,omitempty"`
}

// Publish publishes entries in order and returns how many went out. It
// stops at the first failure, which it returns, so a phone never sees seq
// n+1 before n. nc carries the 119 subject (core NATS).
func Publish(ctx context.Context, js jetstream.JetStream, nc *nats.Conn, entries []Entry) (int, error) {
	for i := range entries {
		if err := publish(ctx, js, nc, &entries[i]); err != nil {
			return i, fmt.Errorf("seq %d: %w", entries[i].Seq, err)
		}
	}
	return len(entries), nil
}

func publish(ctx context.Context, js jetstream.JetStream, nc *nats.Conn, p *Entry) error {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	msg := nats.NewMsg(p.Subject)
	msg.Data = p.Data
	msg.Header.Set(jetstream.MsgIDHeader, p.MsgID)
	msg.Header.Set(model.HeaderPointTime, strconv.FormatInt(p.PointMs, 10))
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("publish %s: %w", p.Subject, err)
	}
	if p.To119 == "" {
		return nil
	}
	em := nats.NewMsg(p.To119)
	em.Data = p.Data
	em.Header.Set(jetstream.MsgIDHeader, p.MsgID)
	if err := nc.PublishMsg(em); err != nil {
		return fmt.Errorf("publish to 119 subject: %w", err)
	}
	// Flush so the message has left this process before it counts as sent.
	return nc.FlushWithContext(ctx)
}
