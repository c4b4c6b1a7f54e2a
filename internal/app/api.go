package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/alerts/settings"
	"github.com/carehub/carehub/api"
	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/ingest/mqttsub"
	"github.com/carehub/carehub/internal/audit"
	"github.com/carehub/carehub/internal/erasure"
	"github.com/carehub/carehub/internal/influx"
	"github.com/carehub/carehub/internal/influx/flux"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/query"
	"github.com/carehub/carehub/internal/users"
	"github.com/carehub/carehub/web"
	"github.com/carehub/carehub/web/admin"
	"github.com/carehub/carehub/web/registry"
	"github.com/carehub/carehub/writer"
)

// apiParts are the components the API serves and checks.
type apiParts struct {
	nats       *natsParts
	registry   *devices.Registry
	presence   *devices.PresenceTracker
	influx     *influx.Client
	writer     *writer.Writer
	alerts     *alerts.Manager
	settings   *settings.Store
	engine     *leaderEngine
	broker     *broker
	subscriber *mqttsub.Subscriber
	push       api.PushService // nil when push is off
}

// The overview's baselines are kept fresh for 10 minutes and asked again
// every 5, so a coordinator's overview never waits for them.
const (
	baselineCacheTTL  = 10 * time.Minute
	baselineWarmEvery = 5 * time.Minute
)

// startAPI opens the user store and the audit log, builds the HTTP API on
// p, serves it on CARE_HTTP_ADDR (TLS with serverTLS) and keeps the
// overview's baselines warm. It returns the server and its real address.
func (a *App) startAPI(ctx context.Context, serverTLS *tls.Config, p apiParts) (_ *api.Server, addr string, stop func(context.Context), err error) {
	cfg, clock := a.Config, a.clock
	var st stack
	defer st.unwindIf(&err)
	js, nc, in, reg, mgr := p.nats.js, p.nats.nc, p.influx, p.registry, p.alerts

	userStore, err := users.Open(ctx, js, clock)
	if err != nil {
		return nil, "", nil, err
	}
	auditLog := audit.New(js, clock)
	// Erasure closes an erased device's session on the embedded broker;
	// with an external one it cannot, and ingest rejects the device's
	// messages as from an unknown device (contract §1). With
	// CARE_MQTT_PROVISION=dynsec the broker disconnects it when the
	// registry disables it.
	var kicker erasure.DeviceKicker
	if p.broker.embedded != nil {
		kicker = p.broker.embedded
	}
	ready := map[string]api.Check{
		"mqtt": func(context.Context) error { return p.subscriber.Ready() },
		"nats": func(ctx context.Context) error {
			if !nc.IsConnected() {
				return errors.New("not connected")
			}
			_, err := js.Stream(ctx, model.StreamReadings)
			return err
		},
		"influxdb": func(ctx context.Context) error { return in.Ping(ctx) },
	}
	// With several brokers, /readyz names the one that is down: mqtt/1 is
	// the first of CARE_MQTT_URL (its address stays in the log).
	if n := p.subscriber.Brokers(); n > 1 {
		for k := range n {
			ready["mqtt/"+strconv.Itoa(k+1)] = func(context.Context) error { return p.subscriber.BrokerReady(k) }
		}
	}
	queries := flux.New(in)
	trends := flux.NewDailyCache(queries, baselineCacheTTL, clock)
	// The console's pages read through the same query layer, scoping and
	// audit as the API's JSON.
	consoleQuery := &query.Service{Registry: reg, Series: readingsAdapter{queries, cfg.Timezone}, Last: &lastReadingsCache{src: trends, ttl: lastReadingsTTL, now: clock}, Manager: mgr, Mode: query.ModeFrom(p.settings), Presence: p.presence, Audit: auditLog, Clock: clock,
		RuleSettings: p.settings, Chains: mgr.Chains(), AuditLog: auditLog,
		Daily: dailyMeans{past: trends, today: flux.NewDailyCache(queries, sparklineTodayTTL, clock), loc: cfg.Timezone}}
	console, err := web.New(web.Options{Users: userStore, Location: cfg.Timezone, Clock: clock, Log: a.Log.With().Str("component", "web").Logger(),
		Query: consoleQuery})
	if err != nil {
		return nil, "", nil, err
	}
	srv := api.New(api.Options{
		Session:  console.Session,
		Registry: reg, Readings: readingsAdapter{queries, cfg.Timezone}, Audit: auditLog, AuditReader: auditLog, Export: queries, Metrics: a.Metrics,
		Trends: trends, Baselines: trends, DayActivity: trends, AlertContext: trends,
		AdminToken: cfg.AdminToken, Location: cfg.Timezone, Clock: clock, TrustedProxies: cfg.TrustedProxies, MaxStreamsPerUser: cfg.MaxStreamsPerUser,
		QueryRate: cfg.QueryRate, QueryBurst: cfg.QueryBurst, MaxQueries: cfg.MaxQueries, MaxExports: cfg.MaxExports,
		Users: userStore, Alerts: mgr, AlertActions: mgr, AlertStream: js, Chains: mgr.Chains(), Settings: p.settings, Presence: p.presence, Push: p.push,
		Erasure: &erasure.Eraser{Registry: reg, Tombstone: erasure.MarkThenFence(reg, p.writer), Engine: p.engine, Series: in, Alerts: mgr, Settings: p.settings, Chains: mgr.Chains(),
			Presence: p.presence, Broker: kicker, Streams: js, Assignments: userStore, Clock: clock,
			Retention: erasure.Retention{Buffers: p.nats.streams.BufferAge, Alerts: p.nats.streams.AlertsAge, Audit: p.nats.streams.AuditAge}},
		Log:   a.Log.With().Str("component", "api").Logger(),
		Ready: ready, AlertLeader: p.engine.Leads,
	})
	consoleQuery.Drift = srv.DriftSource() // the overview's worsening baselines, as GET /overview's

	console.Register(srv.App(), srv.Login)
	// The management pages (users, assignments, chains, settings, audit).
	if err := admin.Register(srv.App(), console, admin.Options{Query: consoleQuery, Users: userStore, Location: cfg.Timezone, Clock: clock}); err != nil {
		return nil, "", nil, err
	}
	// The registry pages (homes, residents with consent, devices).
	if err := registry.Register(srv.App(), console, registry.Pages{Query: consoleQuery, Registry: reg}); err != nil {
		return nil, "", nil, err
	}

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, "", nil, fmt.Errorf("listen on CARE_HTTP_ADDR=%s: %w", cfg.HTTPAddr, err)
	}
	addr = ln.Addr().String()
	if serverTLS != nil {
		ln = tls.NewListener(ln, serverTLS)
	}
	a.goRun("http", func() error { return srv.App().Listener(ln) })
	st.push(func(context.Context) { _ = srv.Shutdown(10 * time.Second) })

	warmCtx, warmCancel := context.WithCancel(context.Background())
	warmDone := a.goRun("baselines", func() error { srv.WarmBaselines(warmCtx, baselineWarmEvery); return nil })
	st.push(func(ctx context.Context) { warmCancel(); waitDone(ctx, warmDone) })
	sparkCtx, sparkCancel := context.WithCancel(context.Background())
	sparkDone := a.goRun("sparklines", func() error { console.WarmOverview(sparkCtx, baselineWarmEvery); return nil })
	st.push(func(ctx context.Context) { sparkCancel(); waitDone(ctx, sparkDone) })
	return srv, addr, st.stop, nil
}

// readingsAdapter answers the API's readings queries with Flux; whole-day
// windows are calendar days in the program time zone.
type readingsAdapter struct {
	c   *flux.Reader
	loc *time.Location
}

func (r readingsAdapter) Readings(ctx context.Context, q api.ReadingsQuery) ([]api.Point, error) {
	pts, err := r.c.Readings(ctx, flux.ReadingsQuery{ResidentID: q.ResidentID, Metric: q.Metric,
		From: q.From, To: q.To, Every: q.Every, Fn: q.Fn, Location: r.loc})
	if err != nil {
		return nil, err
	}
	out := make([]api.Point, len(pts))
	for i, p := range pts {
		out[i] = api.Point{T: p.T, V: p.V}
	}
	return out, nil
}
