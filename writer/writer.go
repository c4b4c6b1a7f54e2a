// Package writer moves everything carehub keeps in InfluxDB out of
// JetStream: readings, events and device status that ingest published, and
// the alert transitions the alert manager published. It is the only code
// that writes those measurements (contract §2). A JetStream message is
// acknowledged only after InfluxDB accepted its point, or after the point
// was set aside as a dead letter.
package writer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/influx"
	"github.com/carehub/carehub/internal/metrics"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/redact"
	"github.com/carehub/carehub/internal/retry"
)

// Store is where the writer puts points: one call per batch of newline-
// separated line protocol (precision ms). *influx.Client satisfies it.
// A failure may implement writeClass to say whether to retry, split or set
// points aside; any other error is retried.
type Store interface {
	WriteLines(ctx context.Context, body []byte) error
}

// writeClass is how the writer reads a Store failure; *influx.WriteError
// implements it.
type writeClass interface {
	error
	Retryable() bool // not the data's fault: wait and send the same again
	TooLarge() bool  // 413: send it in halves
	Rejected() bool  // the server refused points of it for good
	RetryDelay() time.Duration
}

// Writer defaults.
const (
	DefaultDurable = "influx-writer"
	// defaultAckWait is long enough for a batch write and its first retries;
	// while retrying longer the writer extends it with InProgress.
	defaultAckWait    = 30 * time.Second
	defaultMaxBackoff = 10 * time.Second
	minBackoff        = 100 * time.Millisecond
	// drainTimeout bounds the last write at shutdown: SIGTERM must not
	// hang on a dead InfluxDB. What is not written stays un-acked.
	drainTimeout = 5 * time.Second
)

// Dead-letter reasons, the "reason" of an InfluxDeadLetter.
const (
	DeadReasonMalformed = model.ReasonMalformed // not valid JSON of the stream's type
	DeadReasonNotPoint  = "not_a_point"         // valid JSON that makes no point (no time, no finite value, bad id)
	DeadReasonRejected  = "rejected"            // InfluxDB refused the point (400/422)
	DeadReasonTooLarge  = "too_large"           // InfluxDB refused even the point alone as too large
)

// InfluxDeadLetter is published on care.deadletter.influx for every message
// that the writer could not store and will not retry: the original message
// is acked after this is stored in JetStream, so it is set aside, not lost.
type InfluxDeadLetter struct {
	Reason  string    `json:"reason"`
	Detail  string    `json:"detail"`
	Stream  string    `json:"stream"`
	Subject string    `json:"subject"`
	Seq     uint64    `json:"stream_seq"`
	Line    string    `json:"line,omitempty"`    // the line protocol InfluxDB refused
	Payload []byte    `json:"payload,omitempty"` // the original message (base64) when it made no line
	TS      time.Time `json:"ts"`
}

// Options configure a Writer.
type Options struct {
	JS            jetstream.JetStream // consumes the streams and stores dead letters
	Store         Store
	BatchSize     int           // points per write; default 5000
	BatchInterval time.Duration // a batch goes this long after its first point; default 200ms
	Durable       string        // consumer name on each stream; default "influx-writer"
	Metrics       *metrics.Registry
	Log           zerolog.Logger
	// Erased reports whether a resident was erased (devices.Registry.Erased);
	// their messages still in the streams are acked and dropped, never
	// written. Nil: none is.
	Erased func(residentID string) bool
	// AckWait and MaxBackoff are for tests; zero means 30s and 10s.
	AckWait    time.Duration
	MaxBackoff time.Duration
}

// Writer moves readings, events, device status and alert transitions from
// JetStream into InfluxDB in batches. A message is acked only after InfluxDB accepted its
// point or the point was set aside as a dead letter (package doc).
type Writer struct {
	o       Options
	log     zerolog.Logger
	streams []*streamWriter

	points    *metrics.CounterVec
	writeSecs *metrics.Histogram
	batchPts  *metrics.Histogram
	stored    *metrics.Histogram
	errs      *metrics.CounterVec
	dead      *metrics.Counter
	dropped   *metrics.CounterVec
	pending   *metrics.GaugeVec
	fence     writeFence
}

// New checks the options and registers the writer's metrics.
func New(o Options) (*Writer, error) {
	if o.JS == nil || o.Store == nil {
		return nil, errors.New("influx writer: JS and Store are required")
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 5000
	}
	if o.BatchInterval <= 0 {
		o.BatchInterval = 200 * time.Millisecond
	}
	if o.Durable == "" {
		o.Durable = DefaultDurable
	}
	if o.AckWait <= 0 {
		o.AckWait = defaultAckWait
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = defaultMaxBackoff
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New()
	}
	w := &Writer{o: o, log: o.Log.With().Str("component", "influx-writer").Logger()}
	m := o.Metrics
	w.points = m.Counter("carehub_influx_points_written_total", "Points InfluxDB accepted, by measurement.", "measurement")
	w.writeSecs = m.Histogram("carehub_influx_write_seconds", "Duration of one InfluxDB write request.", metrics.DefBuckets).With()
	w.batchPts = m.Histogram("carehub_influx_batch_points", "Points per batch handed to InfluxDB.",
		[]float64{1, 10, 100, 500, 1000, 2500, 5000, 10000}).With()
	w.stored = m.Histogram("carehub_ingest_end_to_end_seconds",
		"From a point's own time (the device's timestamp) to InfluxDB accepting it: publish-to-stored lag for devices with true clocks.",
		[]float64{0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60, 300}).With()
	w.errs = m.Counter("carehub_influx_write_errors_total", "Failed InfluxDB writes by kind: retryable, too_large, rejected.", "kind")
	w.dropped = m.Counter("carehub_influx_dropped_total",
		"Messages the writer acked without storing them, by stream and reason: subject_mismatch (the body's resident or device is not the subject's), erased_resident.", "stream", "reason")
	w.dead = m.Counter("carehub_influx_deadletter_total", "Messages set aside on care.deadletter.influx.").With()
	// A labelled gauge refreshed every second by Run: the registry's
	// GaugeFunc has no labels.
	w.pending = m.Gauge("carehub_jetstream_pending", "Messages of the stream not yet stored by the InfluxDB writer (pending + unacked).", "stream")
	for _, kind := range []string{"retryable", "too_large", "rejected"} {
		w.errs.With(kind)
	}
	for _, st := range []string{model.StreamReadings, model.StreamEvents, model.StreamStatus, model.StreamAlerts} {
		for _, reason := range []string{DropSubjectMismatch, DropErasedResident} {
			w.dropped.With(st, reason)
		}
	}
	w.streams = []*streamWriter{
		{w: w, stream: model.StreamReadings, measurement: influx.MeasurementReadings, encode: readingLines(o.Erased)},
		{w: w, stream: model.StreamEvents, measurement: influx.MeasurementEvents, encode: eventLine},
		{w: w, stream: model.StreamStatus, measurement: influx.MeasurementStatus, encode: statusLine},
		{w: w, stream: model.StreamAlerts, measurement: influx.MeasurementAlerts, encode: alertLine, matches: alertSubjectMatches},
	}
	for _, s := range w.streams {
		if s.matches == nil {
			s.matches = deviceSubjectMatches
		}
		s.written = w.points.With(s.measurement)
		s.lag = w.pending.With(s.stream)
	}
	return w, nil
}

// Run creates the durable consumers and writes until ctx is done, then
// writes the batch in hand (within drainTimeout) or leaves it un-acked for
// the next run. It uses one goroutine per stream and one for the lag gauge.
func (w *Writer) Run(ctx context.Context) error {
	for _, s := range w.streams {
		cfg := jetstream.ConsumerConfig{
			Durable:     w.o.Durable,
			Description: "stores " + s.measurement + " in InfluxDB",
			AckPolicy:   jetstream.AckExplicitPolicy,
			AckWait:     w.o.AckWait,
			MaxDeliver:  -1, // never drop: bad points are dead-lettered, not redelivered forever
			// A batch in hand and one being fetched, with room to spare for
			// a second instance sharing the consumer.
			MaxAckPending: 4 * w.o.BatchSize,
			DeliverPolicy: jetstream.DeliverAllPolicy,
		}
		c, err := w.o.JS.CreateOrUpdateConsumer(ctx, s.stream, cfg)
		if err != nil {
			return fmt.Errorf("influx writer: consumer on %s: %w", s.stream, err)
		}
		s.cons = c
	}
	var wg sync.WaitGroup
	for _, s := range w.streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.run(ctx)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.watchLag(ctx)
	}()
	wg.Wait()
	return nil
}

// watchLag refreshes carehub_jetstream_pending once a second.
func (w *Writer) watchLag(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		for _, s := range w.streams {
			ictx, cancel := context.WithTimeout(ctx, time.Second)
			info, err := s.cons.Info(ictx)
			cancel()
			if err == nil {
				s.lag.Set(float64(info.NumPending) + float64(info.NumAckPending))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// streamWriter owns the batch of one stream: the messages in hand and
// their lines, one line (or none) per message.
type streamWriter struct {
	w           *Writer
	stream      string
	measurement string
	encode      func(buf, data []byte, h nats.Header) ([]byte, pointIDs, error)
	matches     func(subject string, ids pointIDs) bool // the subject names the body's ids
	cons        jetstream.Consumer
	written     *metrics.Counter
	lag         *metrics.Gauge

	perMsg float64 // points per message, a moving average

	cur  *batch      // the batch being filled
	full chan *batch // batches handed to the write loop
	free chan *batch // written batches, for reuse
}

// batch is one write's worth of messages and their lines. A stream has
// three: one filling, one queued and one being written, so fetching and
// encoding overlap InfluxDB's write instead of waiting for it, and memory
// stays bounded.
type batch struct {
	msgs  []jetstream.Msg
	ends  []int    // ends[i] is where msgs[i]'s line ends in buf
	times []int64  // the point time (Unix ns) of msgs[i]
	rids  []string // the resident of msgs[i]
	// points counts the lines in buf: a batch of readings makes several.
	points int
	// others[i] are the other residents of msgs[i], a partition batch;
	// nil for most messages.
	others    map[int][]string
	buf       []byte
	first     time.Time // when the batch's first message arrived
	keepalive time.Time // last InProgress for the batch
}

func (b *batch) reset() {
	clear(b.msgs) // let the messages go
	b.msgs, b.ends, b.times, b.buf, b.rids = b.msgs[:0], b.ends[:0], b.times[:0], b.buf[:0], b.rids[:0]
	clear(b.others)
	b.points = 0
}

// batchesPerStream: one filling, one queued, one being written.
const batchesPerStream = 3

func (s *streamWriter) run(ctx context.Context) {
	bs := s.w.o.BatchSize
	s.full = make(chan *batch, 1)
	s.free = make(chan *batch, batchesPerStream)
	for range batchesPerStream - 1 {
		s.free <- &batch{msgs: make([]jetstream.Msg, 0, bs), ends: make([]int, 0, bs), times: make([]int64, 0, bs)}
	}
	s.cur = &batch{msgs: make([]jetstream.Msg, 0, bs), ends: make([]int, 0, bs), times: make([]int64, 0, bs)}
	// The write loop stores batches in order; it ends when full is closed,
	// after writing what was queued (or leaving it un-acked when the drain
	// context ends).
	drainCtx, cancelDrain := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelDrain()
	written := make(chan struct{})
	go func() {
		defer close(written)
		for b := range s.full {
			if s.writeBatch(drainCtx, b) == nil {
				s.w.batchPts.Observe(float64(b.points))
			}
			b.reset()
			s.free <- b
		}
	}()
	defer func() {
		close(s.full)
		timer := time.AfterFunc(drainTimeout, cancelDrain)
		<-written
		timer.Stop()
	}()
	fetchFailures := 0
	for ctx.Err() == nil {
		// A pull waits for a full batch or the interval, whichever is first,
		// so an idle writer pulls every BatchInterval (a request per stream,
		// cheap) and a lone reading is stored about BatchInterval after it
		// reached JetStream.
		wait := s.w.o.BatchInterval
		if len(s.cur.msgs) > 0 {
			wait = time.Until(s.cur.first.Add(s.w.o.BatchInterval))
			if wait < time.Millisecond {
				s.flush(ctx)
				continue
			}
		}
		// FetchMaxWait, not a context deadline: the pull then ends with the
		// server's own expiry, so no message is delivered to a pull the
		// client has already given up on (it would sit un-acked until
		// AckWait). Shutdown waits at most one BatchInterval for it.
		fetchStart := time.Now()
		// BatchSize counts points: messages that are batches of readings
		// fill it faster, so fetch as many as should make up the rest.
		fetched, err := s.cons.Fetch(max(1, int(float64(bs-s.cur.points)/max(s.perMsg, 1))), jetstream.FetchMaxWait(wait))
		if err == nil {
			for m := range fetched.Messages() {
				s.add(ctx, m, fetchStart)
			}
			err = fetched.Error()
		}
		if err != nil && !errors.Is(err, nats.ErrTimeout) {
			fetchFailures++
			s.w.log.Warn().Err(err).Str("stream", s.stream).Msg("fetch from jetstream failed")
			waitCtx(ctx, s.w.backoff(fetchFailures, 0))
		} else {
			fetchFailures = 0
		}
		if s.cur.points >= bs || (len(s.cur.msgs) > 0 && time.Since(s.cur.first) >= s.w.o.BatchInterval) {
			s.flush(ctx)
		}
	}
	if len(s.cur.msgs) > 0 {
		s.full <- s.cur
	}
}

// add encodes m into the batch, or dead-letters it when it makes no point.
// fetchStart is when the pull that brought m began.
func (s *streamWriter) add(ctx context.Context, m jetstream.Msg, fetchStart time.Time) {
	b := s.cur
	before := len(b.buf)
	buf, ids, err := s.encode(b.buf, m.Data(), m.Headers())
	if err == nil {
		if reason := s.admit(m.Subject(), ids); reason != "" {
			b.buf = buf[:before]
			s.drop(m, reason)
			return
		}
	}
	if err != nil {
		b.buf = buf[:before]
		reason := DeadReasonNotPoint
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		if errors.As(err, &se) || errors.As(err, &te) || errors.Is(err, errNotJSONObject) {
			reason = DeadReasonMalformed
		}
		s.deadLetter(ctx, m, reason, err.Error(), "", m.Data())
		return
	}
	b.buf = buf
	if len(b.msgs) == 0 {
		// The batch's clock starts when its first message reached
		// JetStream (not when the pull returned it), or when the pull
		// began for a backlog, so that a backlog still fills whole batches.
		b.first = time.Now()
		b.keepalive = b.first
		if md, err := m.Metadata(); err == nil && md.Timestamp.Before(b.first) {
			b.first = md.Timestamp
		}
		if b.first.Before(fetchStart) {
			b.first = fetchStart
		}
	}
	b.msgs = append(b.msgs, m)
	b.ends = append(b.ends, len(b.buf))
	b.times = append(b.times, lineTime(b.buf[before:]))
	lines := bytes.Count(b.buf[before:], []byte{'\n'})
	b.points += lines
	s.perMsg += (float64(lines) - s.perMsg) / 16
	b.rids = append(b.rids, ids.resident)
	if len(ids.others) > 0 {
		if b.others == nil {
			b.others = map[int][]string{}
		}
		b.others[len(b.msgs)-1] = ids.others
	}
}

// lineTime reads the timestamp (ms) at the end of a line-protocol line.
func lineTime(line []byte) int64 {
	line = bytes.TrimRight(line, "\n")
	i := bytes.LastIndexByte(line, ' ')
	if i < 0 {
		return 0
	}
	ms, err := strconv.ParseInt(string(line[i+1:]), 10, 64)
	if err != nil {
		return 0
	}
	return ms * int64(time.Millisecond)
}

// flush hands the batch being filled to the write loop and takes a free
// one; when InfluxDB is slow both others are in use and this waits, which
// stops fetching: back-pressure, not a growing queue.
func (s *streamWriter) flush(_ context.Context) {
	s.full <- s.cur
	s.cur = <-s.free
}

// writeBatch stores the whole batch. If ctx ends first, what is unwritten
// stays un-acked: JetStream redelivers it to whoever consumes next.
func (s *streamWriter) writeBatch(ctx context.Context, b *batch) error {
	return s.write(ctx, b, 0, len(b.msgs))
}

func (b *batch) start(i int) int {
	if i == 0 {
		return 0
	}
	return b.ends[i-1]
}

// write stores msgs[lo:hi] and acks them. Retryable failures are retried
// with capped exponential backoff for as long as ctx lives; a body too
// large is split in halves; a body with refused points is split until each
// refused point is alone, and that point is dead-lettered. It returns
// non-nil only when ctx ended with msgs[lo:hi] not all handled.
func (s *streamWriter) write(ctx context.Context, b *batch, lo, hi int) error {
	body := b.buf[b.start(lo):b.start(hi)]
	for attempt := 1; ; attempt++ {
		// Enter the fence before checking the tombstones: an erasure that
		// marks its resident after the check waits for this write to end.
		tok := s.w.fence.enter()
		if s.anyErased(b, lo, hi) {
			s.w.fence.leave(tok)
			return s.writeWithoutErased(ctx, b, lo, hi)
		}
		t0 := time.Now()
		err := s.w.o.Store.WriteLines(ctx, body)
		s.w.fence.leave(tok)
		s.w.writeSecs.Observe(time.Since(t0).Seconds())
		if err == nil {
			now := time.Now().UnixNano()
			for i, m := range b.msgs[lo:hi] {
				_ = m.Ack() // fire and forget: a lost ack means a redelivery, and the point is idempotent
				if t := b.times[lo+i]; t > 0 {
					s.w.stored.Observe(float64(now-t) / 1e9)
				}
			}
			s.written.Add(float64(bytes.Count(body, []byte{'\n'}))) // points: a batch of readings is several
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var wc writeClass
		if !errors.As(err, &wc) || wc.Retryable() {
			s.w.errs.With("retryable").Inc()
			if attempt == 1 || attempt%10 == 0 {
				s.w.log.Warn().Err(redact.Err(err)).Str("stream", s.stream).Int("points", hi-lo).Int("attempt", attempt).Msg("influx write failed; retrying")
			}
			var after time.Duration
			if wc != nil {
				after = wc.RetryDelay()
			}
			if !s.sleepKeepingAlive(ctx, b, s.w.backoff(attempt, after)) {
				return ctx.Err()
			}
			continue
		}
		kind := "rejected"
		if wc.TooLarge() {
			kind = "too_large"
		}
		s.w.errs.With(kind).Inc()
		if hi-lo == 1 {
			reason := DeadReasonRejected
			if wc.TooLarge() {
				reason = DeadReasonTooLarge
			}
			if s.deadLetter(ctx, b.msgs[lo], reason, wc.Error(), string(body), nil) {
				return nil
			}
			// The dead letter was not stored: keep the point, try again.
			if !s.sleepKeepingAlive(ctx, b, s.w.backoff(attempt, 0)) {
				return ctx.Err()
			}
			continue
		}
		mid := lo + (hi-lo)/2
		if err := s.write(ctx, b, lo, mid); err != nil {
			return err
		}
		return s.write(ctx, b, mid, hi)
	}
}

// Reasons the writer drops a message (carehub_influx_dropped_total).
const (
	DropSubjectMismatch = "subject_mismatch"
	DropErasedResident  = "erased_resident"
)

// pointIDs are the ids a message's body names that its subject names too:
// the resident and device of a reading, event or status; the resident and
// severity of an alert transition. A batch of readings may hold several
// devices' (manyDevices) and, on a partition's subject, several
// residents' (others).
type pointIDs struct {
	resident, device, severity string
	others                     []string
	manyDevices                bool
}

// deviceSubjectMatches checks a reading, event or status subject
// (care.{readings|events|status}.{resident}.{device}, or a batch's: a
// resident's, or a partition's, which every resident must belong to).
func deviceSubjectMatches(subject string, ids pointIDs) bool {
	if !model.SubjectMatchesIDs(subject, ids.resident, ids.device) {
		return false
	}
	if !ids.manyDevices {
		return true
	}
	if !strings.HasPrefix(subject, model.PrefixReadingsBatch) {
		return false
	}
	for _, r := range ids.others {
		if !model.SubjectMatchesIDs(subject, r, ids.device) {
			return false
		}
	}
	return true
}

// alertSubjectMatches checks an alert subject, care.alerts.{resident}.{severity}.
func alertSubjectMatches(subject string, ids pointIDs) bool {
	return ids.resident != "" && ids.severity != "" && subject == model.AlertSubject(ids.resident, ids.severity)
}

// admit says why a decoded message must not be stored, or "". Its body must
// name the ids its subject does: one message forged by someone who can
// publish on NATS must not write points under another resident's tags.
// And its resident must not have been erased: a reading or an alert
// published before the erasure and consumed after it would re-create
// their series.
func (s *streamWriter) admit(subject string, ids pointIDs) string {
	if !s.matches(subject, ids) {
		return DropSubjectMismatch
	}
	if s.w.o.Erased != nil && s.w.o.Erased(ids.resident) {
		return DropErasedResident
	}
	return ""
}

// drop acks a message that must not be stored and counts it. The log names
// the stream sequence, not the ids, which may be forged or an erased
// person's.
func (s *streamWriter) drop(m jetstream.Msg, reason string) {
	s.w.dropped.With(s.stream, reason).Inc()
	ev := s.w.log.Warn()
	if reason == DropErasedResident {
		ev = s.w.log.Debug() // expected after an erasure, while buffers drain
	}
	if md, err := m.Metadata(); err == nil {
		ev = ev.Uint64("stream_seq", md.Sequence.Stream)
	}
	ev.Str("stream", s.stream).Str("reason", reason).Msg("message dropped by the influx writer")
	_ = m.Ack()
}

// Fence returns once every InfluxDB write that began before it was called
// has ended (or ctx ends). An erasure calls it after marking the resident
// erased: each write checks the marks after it began, so from then on no
// point of the resident reaches InfluxDB from this writer.
func (w *Writer) Fence(ctx context.Context) error { return w.fence.wait(ctx) }

// writeFence counts the writes in progress by the epoch they began in.
type writeFence struct {
	mu      sync.Mutex
	epoch   uint64
	active  map[uint64]int
	changed chan struct{} // closed and replaced when a write ends
}

func (f *writeFence) enter() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.active == nil {
		f.active = map[uint64]int{}
	}
	f.active[f.epoch]++
	return f.epoch
}

func (f *writeFence) leave(epoch uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.active[epoch]--; f.active[epoch] <= 0 {
		delete(f.active, epoch)
	}
	if f.changed != nil {
		close(f.changed)
		f.changed = nil
	}
}

func (f *writeFence) wait(ctx context.Context) error {
	f.mu.Lock()
	target := f.epoch
	f.epoch++
	f.mu.Unlock()
	for {
		f.mu.Lock()
		busy := false
		for e := range f.active {
			if e <= target {
				busy = true
				break
			}
		}
		if !busy {
			f.mu.Unlock()
			return nil
		}
		if f.changed == nil {
			f.changed = make(chan struct{})
		}
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// sleepKeepingAlive waits d, telling JetStream every AckWait/3 that the
// batch in hand is still being worked on, so it is not redelivered to
// another instance while InfluxDB is away.
func (s *streamWriter) sleepKeepingAlive(ctx context.Context, b *batch, d time.Duration) bool {
	every := s.w.o.AckWait / 3
	end := time.Now().Add(d)
	for {
		if time.Since(b.keepalive) >= every {
			for _, m := range b.msgs {
				_ = m.InProgress()
			}
			b.keepalive = time.Now()
		}
		step := time.Until(end)
		if step <= 0 {
			return ctx.Err() == nil
		}
		if next := time.Until(b.keepalive.Add(every)); next < step {
			step = next
		}
		if !waitCtx(ctx, step) {
			return false
		}
	}
}

// deadLetter stores the message's story on care.deadletter.influx and then
// acks it. It reports false when the dead letter could not be stored, in
// which case the message is left un-acked.
func (s *streamWriter) deadLetter(ctx context.Context, m jetstream.Msg, reason, detail, line string, payload []byte) bool {
	dl := InfluxDeadLetter{Reason: reason, Detail: detail, Stream: s.stream, Subject: m.Subject(), Line: strings.TrimSuffix(line, "\n"), Payload: payload, TS: time.Now().UTC()}
	if md, err := m.Metadata(); err == nil {
		dl.Seq = md.Sequence.Stream
	}
	body, _ := json.Marshal(dl)
	msg := nats.NewMsg(model.DeadLetterSubject("influx"))
	msg.Data = body
	msg.Header.Set("Carehub-Reason", reason)
	msg.Header.Set("Carehub-Stream", s.stream)
	// The same message dead-lettered twice (a redelivery) is stored once.
	msg.Header.Set(jetstream.MsgIDHeader, s.stream+":"+strconv.FormatUint(dl.Seq, 10))
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := s.w.o.JS.PublishMsg(pctx, msg); err != nil {
		s.w.log.Error().Err(err).Str("stream", s.stream).Uint64("seq", dl.Seq).Str("reason", reason).Msg("dead letter not stored; message left for redelivery")
		return false
	}
	s.w.dead.Inc()
	s.w.log.Warn().Str("stream", s.stream).Uint64("seq", dl.Seq).Str("subject", m.Subject()).Str("reason", reason).Msg("message dead-lettered")
	_ = m.Ack()
	return true
}

// backoff is the pause after the attempt-th failure (from 0): capped
// exponential backoff with half of it random, never shorter than what the
// server asked for with Retry-After.
func (w *Writer) backoff(attempt int, retryAfter time.Duration) time.Duration {
	p := retry.Policy{Initial: minBackoff, Max: w.o.MaxBackoff, Jitter: 0.5}
	return max(p.Backoff(attempt+1), retryAfter)
}

// waitCtx waits d or until ctx ends; it reports whether ctx is still alive.
func waitCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
