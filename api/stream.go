package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/users"
)

// defaultHeartbeat is the SSE keep-alive period: comments every 15 s keep
// proxies from closing an idle stream (most idle out at 30–60 s) and find a
// client that went away.
const defaultHeartbeat = 15 * time.Second

// defaultMaxStreams bounds concurrent SSE clients: each holds one ordered
// consumer and one connection.
const defaultMaxStreams = 256

// streamScope decides which alert messages one SSE client gets.
type streamScope struct {
	all       bool     // admin or coordinator without a resident filter
	residents []string // otherwise: these residents only
}

func (sc streamScope) allows(residentID string) bool {
	return sc.all || slices.Contains(sc.residents, residentID)
}

// residentOfAlertSubject returns {resident_id} of care.alerts.{resident_id}.{severity}.
func residentOfAlertSubject(subject string) string {
	rest, ok := strings.CutPrefix(subject, "care.alerts.")
	if !ok {
		return ""
	}
	r, _, _ := strings.Cut(rest, ".")
	return r
}

// alertStream: GET /alerts/stream → text/event-stream of alert transitions
// from CARE_ALERTS (contract §4): event = transition, data = alert JSON,
// id = the stream sequence. Last-Event-ID resumes right after that message,
// so a phone that lost its connection misses nothing the stream still
// holds; without it only new transitions are sent. ?resident_id= narrows
// the stream to one resident.
func (s *Server) alertStream(c *fiber.Ctx) error {
	if s.o.AlertStream == nil {
		return ErrUnavailable.with("the alert stream is not running on this instance")
	}
	p := principal(c)
	scope := streamScope{all: p.Role == RoleAdmin || p.Role == RoleCoordinator, residents: p.Residents}
	auditID := ""
	if rid := c.Query("resident_id"); rid != "" {
		if _, ok := s.o.Registry.Resident(rid); !ok || !s.canSee(c, rid) {
			return ErrNotFound.with("no resident " + truncate(rid, 64))
		}
		scope = streamScope{residents: []string{rid}}
		auditID = rid
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy, InactiveThreshold: time.Minute}
	last := c.Get("Last-Event-ID")
	if last == "" {
		last = c.Query("last_event_id") // for clients that cannot set headers
	}
	if last != "" {
		seq, err := strconv.ParseUint(last, 10, 64)
		if err != nil {
			return badRequest("invalid_last_event_id", "Last-Event-ID must be an id this stream sent (a stream sequence number)")
		}
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, seq+1
	}
	if !scope.all {
		cfg.FilterSubjects = make([]string, 0, len(scope.residents))
		for _, r := range scope.residents {
			cfg.FilterSubjects = append(cfg.FilterSubjects, "care.alerts."+r+".>")
		}
		if len(cfg.FilterSubjects) == 0 {
			// Nobody assigned yet: a filter that matches nothing, so the
			// client still gets heartbeats and can stay connected.
			cfg.FilterSubjects = []string{"care.alerts._none_.>"}
		}
	}
	select {
	case s.streams <- struct{}{}:
	default:
		c.Set(fiber.HeaderRetryAfter, "30")
		return ErrRateLimited.with("too many open alert streams on this instance; retry later")
	}
	release := func() { <-s.streams }
	if err := s.audit(c, auditID, "alerts.stream", ""); err != nil {
		release()
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 10*time.Second)
	cons, err := s.o.AlertStream.OrderedConsumer(ctx, model.StreamAlerts, cfg)
	cancel()
	if err != nil {
		release()
		s.log.Error().Err(err).Msg("alert stream consumer failed")
		return ErrUnavailable.with("the alert stream is unavailable; retry later")
	}
	it, err := cons.Messages()
	if err != nil {
		release()
		return ErrUnavailable.with("the alert stream is unavailable; retry later")
	}
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set(fiber.HeaderConnection, "keep-alive")
	c.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	token, source := p.token, c.IP()
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		defer release()
		defer it.Stop()
		da := s.newDeliveryAudit(p, source)
		defer da.flush()
		s.pumpAlerts(w, it, scope, token, da)
	})
	return nil
}

// pumpAlerts writes alert events until the client goes away (a write
// fails), the server shuts down, the caller's token stops being valid, or
// the consumer fails. It runs in fasthttp's connection goroutine: one per
// client, bounded by MaxStreams.
func (s *Server) pumpAlerts(w *bufio.Writer, it jetstream.MessagesContext, scope streamScope, token string, da *deliveryAudit) {
	// retry: tells EventSource how soon to reconnect after a drop.
	if _, err := w.WriteString("retry: 2000\n: connected\n\n"); err != nil || w.Flush() != nil {
		return
	}
	for {
		ctx, cancel := context.WithTimeout(s.ctx, s.o.Heartbeat)
		msg, err := it.Next(jetstream.NextContext(ctx))
		cancel()
		if s.ctx.Err() != nil {
			return // shutting down
		}
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
			if !s.stillValid(token) {
				_, _ = w.WriteString("event: end\ndata: {\"reason\":\"token no longer valid\"}\n\n")
				_ = w.Flush()
				return
			}
			da.flush()
			if _, err := w.WriteString(": heartbeat\n\n"); err != nil || w.Flush() != nil {
				return
			}
			continue
		}
		if err != nil {
			s.log.Warn().Err(err).Msg("alert stream ended")
			return
		}
		rid := residentOfAlertSubject(msg.Subject())
		if !scope.allows(rid) {
			continue
		}
		md, err := msg.Metadata()
		if err != nil {
			continue
		}
		var head struct {
			Transition string `json:"transition"`
		}
		if json.Unmarshal(msg.Data(), &head) != nil || head.Transition == "" {
			continue
		}
		var b strings.Builder
		b.WriteString("id: " + strconv.FormatUint(md.Sequence.Stream, 10) + "\n")
		b.WriteString("event: " + head.Transition + "\n")
		for line := range strings.SplitSeq(string(msg.Data()), "\n") {
			b.WriteString("data: " + line + "\n")
		}
		b.WriteString("\n")
		if _, err := w.WriteString(b.String()); err != nil || w.Flush() != nil {
			return
		}
		da.add(rid)
	}
}

// stillValid re-checks a user's token at each heartbeat, so a logout or a
// revocation also ends open streams. The bootstrap admin token (no user
// token) stays valid for the life of the process.
func (s *Server) stillValid(token string) bool {
	if token == "" || s.o.Users == nil {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := s.o.Users.Authenticate(ctx, token)
	return !errors.Is(err, users.ErrUnauthorized)
}
