package natsx

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/metrics"
)

// StoreWarnRatio is the fill level of the JetStream store, or of one
// stream, above which carehub logs a warning: past the store limit
// JetStream refuses writes and ingest stops acknowledging devices; past a
// stream's MaxBytes its oldest messages go, which for readings not yet in
// InfluxDB is data lost.
const StoreWarnRatio = 0.8

// storeWarnEvery bounds the warnings: one per store or stream per period.
const storeWarnEvery = 10 * time.Minute

// StoreWatch publishes JetStream's store use as metrics and warns as it
// fills. Limit is the store limit in bytes: CARE_NATS_MAX_STORE for the
// embedded server; zero takes the account's limit, if it has one.
type StoreWatch struct {
	JS      jetstream.JetStream
	Limit   int64
	Streams []string // streams whose fill is watched; default StreamNames
	Metrics *metrics.Registry
	Log     zerolog.Logger
	Every   time.Duration // default 15 s

	used, limit  *metrics.Gauge
	fill         *metrics.Gauge
	streamBytes  *metrics.GaugeVec
	streamLimit  *metrics.GaugeVec
	lastWarnings map[string]time.Time
}

// Run samples the store until ctx ends.
func (w *StoreWatch) Run(ctx context.Context) {
	if w.Every <= 0 {
		w.Every = 15 * time.Second
	}
	t := time.NewTicker(w.Every)
	defer t.Stop()
	for {
		w.Sample(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (w *StoreWatch) setup() {
	if len(w.Streams) == 0 {
		w.Streams = StreamNames
	}
	if w.Metrics == nil {
		w.Metrics = metrics.New()
	}
	w.used = w.Metrics.Gauge("carehub_jetstream_store_used_bytes", "Bytes JetStream stores for carehub's account.").With()
	w.limit = w.Metrics.Gauge("carehub_jetstream_store_limit_bytes", "JetStream store limit (CARE_NATS_MAX_STORE or the account's); 0 when unlimited.").With()
	w.fill = w.Metrics.Gauge("carehub_jetstream_store_fill_ratio", "Store used / limit (0 when unlimited); carehub warns above 0.8.").With()
	w.streamBytes = w.Metrics.Gauge("carehub_jetstream_stream_bytes", "Bytes held by each carehub stream.", "stream")
	w.streamLimit = w.Metrics.Gauge("carehub_jetstream_stream_max_bytes", "MaxBytes of each carehub stream (CARE_STREAM_MAX_BYTES).", "stream")
	w.lastWarnings = map[string]time.Time{}
}

// Sample reads the store use once; Run calls it periodically. It is not
// safe for concurrent use.
func (w *StoreWatch) Sample(ctx context.Context) {
	if w.used == nil {
		w.setup()
	}
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := w.JS.AccountInfo(qctx)
	if err != nil {
		if ctx.Err() == nil {
			w.Log.Debug().Err(err).Msg("jetstream account info unavailable")
		}
	} else {
		limit := w.Limit
		if limit <= 0 && info.Limits.MaxStore > 0 {
			limit = info.Limits.MaxStore
		}
		w.used.Set(float64(info.Store))
		w.limit.Set(float64(max(limit, 0)))
		if limit > 0 {
			w.fill.Set(float64(info.Store) / float64(limit))
		}
		w.check("store", float64(info.Store), float64(limit))
	}
	for _, name := range w.Streams {
		st, err := w.JS.Stream(qctx, name)
		if err != nil {
			continue
		}
		si := st.CachedInfo()
		if si == nil {
			continue
		}
		w.streamBytes.With(name).Set(float64(si.State.Bytes))
		w.streamLimit.With(name).Set(float64(max(si.Config.MaxBytes, 0)))
		w.check(name, float64(si.State.Bytes), float64(si.Config.MaxBytes))
	}
}

func (w *StoreWatch) check(what string, used, limit float64) {
	if limit <= 0 || used < StoreWarnRatio*limit {
		return
	}
	now := time.Now()
	if t, ok := w.lastWarnings[what]; ok && now.Sub(t) < storeWarnEvery {
		return
	}
	w.lastWarnings[what] = now
	w.Log.Warn().Str("what", what).Float64("used_bytes", used).Float64("limit_bytes", limit).
		Float64("fill", used/limit).
		Msg("jetstream store filling up: raise CARE_NATS_MAX_STORE / CARE_STREAM_MAX_BYTES or find what floods it")
}
