package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
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

// defaultMaxStreamsPerUser bounds one user's concurrent SSE clients: a
// phone and a desktop, with room for a reconnect racing a dying stream; one
// leaked token cannot take every slot of the instance.
const defaultMaxStreamsPerUser = 4

// defaultStreamRecheck is how often an open stream re-checks its token,
// its user (disabled, deleted, role) and the assignment, busy or idle.
const defaultStreamRecheck = 30 * time.Second

// defaultStreamWriteTimeout bounds one write to a stream's client: a reader
// that stopped reading (a phone in a dead cell) frees its goroutine and slot
// after this long instead of holding them forever.
const defaultStreamWriteTimeout = 10 * time.Second

// streamScope decides which alert messages one SSE client gets.
type streamScope struct {
	all       bool     // admin or coordinator without a resident filter
	residents []string // otherwise: these residents only
}

func (sc streamScope) equal(o streamScope) bool {
	return sc.all == o.all && slices.Equal(sc.residents, o.residents)
}

// openStreams tracks the open SSE clients by user id, so a user's cap can
// be enforced and an admin's change to a user ends that user's streams at
// once instead of at the next re-check.
type openStreams struct {
	mu sync.Mutex
	m  map[string]map[*openStream]struct{}
}

// openStream is one SSE client; end is closed with a reason to stop it.
type openStream struct {
	end    chan struct{}
	once   sync.Once
	reason string
}

func (o *openStreams) add(user string, limit int) (*openStream, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = map[string]map[*openStream]struct{}{}
	}
	if len(o.m[user]) >= limit {
		return nil, false
	}
	st := &openStream{end: make(chan struct{})}
	if o.m[user] == nil {
		o.m[user] = map[*openStream]struct{}{}
	}
	o.m[user][st] = struct{}{}
	return st, true
}

func (o *openStreams) remove(user string, st *openStream) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.m[user], st)
	if len(o.m[user]) == 0 {
		delete(o.m, user)
	}
}

func (st *openStream) stop(reason string) {
	st.once.Do(func() { st.reason = reason; close(st.end) })
}

// endStreams ends every open stream of a user (after a disable, delete,
// role change, password reset, revocation or new assignment).
func (s *Server) endStreams(user, reason string) {
	s.open.mu.Lock()
	defer s.open.mu.Unlock()
	for st := range s.open.m[user] {
		st.stop(reason)
	}
}

// errTooManyStreams: the user already has MaxStreamsPerUser streams open.
var errTooManyStreams = &Error{Status: http.StatusTooManyRequests, Code: "too_many_streams",
	Message: "this user already has the most alert streams allowed open; close one first"}

func (sc streamScope) allows(residentID string) bool {
	return sc.all || slices.Contains(sc.residents, residentID)
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
			cfg.FilterSubjects = append(cfg.FilterSubjects, model.ResidentAlertsFilter(r))
		}
		if len(cfg.FilterSubjects) == 0 {
			// Nobody assigned yet: a filter that matches nothing, so the
			// client still gets heartbeats and can stay connected.
			cfg.FilterSubjects = []string{model.SubjectAlertsNone}
		}
	}
	// The bootstrap admin token is the operator's master key, not a
	// person's login: only the instance-wide cap bounds its streams (load
	// tests fan out hundreds with it).
	limit := s.o.MaxStreamsPerUser
	if p.token == "" {
		limit = s.o.MaxStreams
	}
	st, ok := s.open.add(p.ID, limit)
	if !ok {
		c.Set(fiber.HeaderRetryAfter, "30")
		return errTooManyStreams
	}
	select {
	case s.streams <- struct{}{}:
	default:
		s.open.remove(p.ID, st)
		c.Set(fiber.HeaderRetryAfter, "30")
		return ErrRateLimited.with("too many open alert streams on this instance; retry later")
	}
	release := func() { <-s.streams; s.open.remove(p.ID, st) }
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
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderConnection, "keep-alive")
	c.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	sess := streamSession{st: st, scope: scope, token: p.token, user: p.ID, filter: auditID, conn: c.Context().Conn(), timeout: s.o.StreamWriteTimeout}
	source := s.clientIP(c)
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		defer release()
		defer it.Stop()
		da := s.newDeliveryAudit(p, source)
		defer da.flush()
		s.pumpAlerts(w, it, sess, da)
	})
	return nil
}

// streamSession is what one open stream re-checks against.
type streamSession struct {
	st     *openStream
	scope  streamScope
	token  string // "" for the bootstrap admin token
	user   string
	filter string // ?resident_id=, or ""
	conn   net.Conn
	// timeout is the write deadline of each chunk.
	timeout time.Duration
}

// write sends one chunk with a write deadline, so a stalled reader ends
// the stream instead of blocking it.
func (ss streamSession) write(w *bufio.Writer, chunk string) bool {
	if ss.conn != nil {
		_ = ss.conn.SetWriteDeadline(time.Now().Add(ss.timeout))
	}
	if _, err := w.WriteString(chunk); err != nil || w.Flush() != nil {
		return false
	}
	return true
}

// recheck reports why the stream must end now, or "" when it may go on:
// the token is no longer valid (revoked, expired, user disabled or
// deleted) or the user's role or assignment no longer gives this scope.
func (s *Server) recheck(ss streamSession) string {
	if ss.token == "" || s.o.Users == nil {
		return "" // the bootstrap admin token is valid for the process's life
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u, err := s.o.Users.Authenticate(ctx, ss.token)
	if errors.Is(err, users.ErrUnauthorized) {
		return "token no longer valid"
	}
	if err != nil {
		return "" // the store did not answer: keep the stream, try again later
	}
	now := streamScope{all: u.Role == RoleAdmin || u.Role == RoleCoordinator, residents: u.ResidentIDs}
	if ss.filter != "" {
		if !now.allows(ss.filter) {
			return "access changed; reconnect"
		}
		now = streamScope{residents: []string{ss.filter}}
	}
	if !now.equal(ss.scope) {
		return "access changed; reconnect"
	}
	return ""
}

// pumpAlerts writes alert events until the client goes away (a write
// fails), the server shuts down, the caller's token stops being valid, or
// the consumer fails. It runs in fasthttp's connection goroutine: one per
// client, bounded by MaxStreams.
func (s *Server) pumpAlerts(w *bufio.Writer, it jetstream.MessagesContext, ss streamSession, da *deliveryAudit) {
	scope := ss.scope
	// retry: tells EventSource how soon to reconnect after a drop.
	if !ss.write(w, "retry: 2000\n: connected\n\n") {
		return
	}
	end := func(reason string) {
		b, _ := json.Marshal(map[string]string{"reason": reason})
		ss.write(w, "event: end\ndata: "+string(b)+"\n\n")
	}
	// A change that landed between authentication and registration (so
	// endStreams missed this stream) is caught here, not 30 s later.
	if reason := s.recheck(ss); reason != "" {
		end(reason)
		return
	}
	// Both the re-check and the heartbeat run on the wall clock, not on
	// message arrival, so a busy stream is re-checked as often as an idle one.
	nextCheck := time.Now().Add(s.o.StreamRecheck)
	// streamCtx ends at shutdown or when endStreams stops this stream, which
	// interrupts a wait for the next message at once.
	streamCtx, cancelStream := context.WithCancel(s.ctx)
	defer cancelStream()
	go func() {
		select {
		case <-ss.st.end:
			cancelStream()
		case <-streamCtx.Done():
		}
	}()
	for {
		wait := min(s.o.Heartbeat, time.Until(nextCheck))
		ctx, cancel := context.WithTimeout(streamCtx, max(wait, time.Millisecond))
		msg, err := it.Next(jetstream.NextContext(ctx))
		cancel()
		if s.ctx.Err() != nil {
			return // shutting down
		}
		select {
		case <-ss.st.end:
			end(ss.st.reason)
			return
		default:
		}
		if !time.Now().Before(nextCheck) {
			if reason := s.recheck(ss); reason != "" {
				end(reason)
				return
			}
			nextCheck = time.Now().Add(s.o.StreamRecheck)
			da.flush() // a busy stream has no heartbeats: audit its deliveries here
		}
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.Is(err, nats.ErrTimeout) {
			da.flush() // the deliveries audited in batches, at most a heartbeat late
			if !ss.write(w, ": heartbeat\n\n") {
				return
			}
			continue
		}
		if err != nil {
			s.log.Warn().Err(err).Msg("alert stream ended")
			return
		}
		rid := model.ResidentOfAlertSubject(msg.Subject())
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
		if !ss.write(w, b.String()) {
			return
		}
		da.add(rid)
	}
}
