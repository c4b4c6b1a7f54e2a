package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/sim"
	"github.com/carehub/carehub/internal/sim/wire"
)

// Defaults: carehub's own defaults (internal/config), so homesim finds a
// carehub started without flags.
const (
	defaultAPI   = "http://127.0.0.1:8780"
	defaultMQTT  = "tcp://127.0.0.1:18830"
	defaultState = "homesim-state.json"
	// defaultCatchUp is how far in the past a sped-up run starts when -start
	// is not given: it replays the last day, then runs live (SimClock never
	// runs ahead of the wall clock; contract §1 rejects future timestamps).
	defaultCatchUp = 24 * time.Hour
)

// options are homesim's flags.
type options struct {
	api, token, broker, statePath, idPrefix string
	seed                                    int64
	reset, registerOnly, register           bool
	homes, workers                          int
	speed                                   float64
	start                                   string
	duration, tick                          time.Duration
	scenario                                string
	incidentsPerDay, outagesPerDay          float64
	logLevel                                string

	load                   bool
	devices, conns, values int
	rate                   float64
	count                  int64
	qos, window            int
	perDeviceConns, storm  bool
	gateway                string
	backfill, interval     time.Duration
	batch, registerWorkers int
}

func parse(args []string, getenv func(string) string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("homesim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.api, "api", defaultAPI, "carehub HTTP API base URL")
	fs.StringVar(&o.token, "token", getenv("CARE_ADMIN_TOKEN"), "admin bearer token (default $CARE_ADMIN_TOKEN)")
	fs.StringVar(&o.broker, "mqtt", defaultMQTT, "MQTT broker URL (tcp://host:port)")
	fs.StringVar(&o.statePath, "state", defaultState, "state file keeping issued device credentials (mode 0600)")
	fs.StringVar(&o.idPrefix, "id-prefix", "sim", "prefix of generated ids")
	fs.Int64Var(&o.seed, "seed", 1, "random seed: equal seeds give equal ids, names and routines")
	fs.BoolVar(&o.reset, "reset", false, "forget the state file and register fresh ids")
	fs.BoolVar(&o.registerOnly, "register-only", false, "register, write the state file and exit")
	fs.BoolVar(&o.register, "register", true, "register through the API (false: use ids without passwords, for an open broker)")
	fs.IntVar(&o.registerWorkers, "register-workers", 4, "concurrent registration requests")
	fs.IntVar(&o.homes, "homes", 10, "simulated homes (simulation and backfill)")
	fs.IntVar(&o.workers, "workers", 4, "goroutines stepping homes")
	fs.Float64Var(&o.speed, "speed", 1, "simulated seconds per wall second")
	fs.StringVar(&o.start, "start", "", "simulated start: RFC 3339 or a duration before now such as 6h (default now; 24h ago when -speed > 1)")
	fs.DurationVar(&o.duration, "duration", 0, "stop after this wall time (0 = until interrupted; load mode: or -count)")
	fs.DurationVar(&o.tick, "tick", 250*time.Millisecond, "wall time between simulation steps")
	fs.StringVar(&o.scenario, "scenario", "", "play a scenario: fall|sos|inactive|fever|low_spo2|offline|smoke|all")
	fs.Float64Var(&o.incidentsPerDay, "incidents-per-day", 0.1, "random scenarios per home per simulated day")
	fs.Float64Var(&o.outagesPerDay, "outages-per-day", 0.5, "random device outages per home per simulated day")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug|info|warn|error")

	fs.BoolVar(&o.load, "load", false, "load mode: publish telemetry as fast as asked")
	fs.IntVar(&o.devices, "devices", 1000, "load: devices")
	fs.IntVar(&o.conns, "conns", 4, "load: connections (shared) or workers (per device); backfill: concurrent homes")
	fs.Float64Var(&o.rate, "rate", 0, "load: messages per second in total (0 = as fast as possible)")
	fs.Int64Var(&o.count, "count", 200000, "load: messages to send (0 = until -duration)")
	fs.IntVar(&o.values, "values", 3, fmt.Sprintf("load: metrics per message (1-%d)", wire.MaxLoadValues))
	fs.IntVar(&o.qos, "qos", 1, "load: QoS 0 or 1")
	fs.BoolVar(&o.storm, "storm", false, "load: an alert storm: systolic_bp crosses its threshold and back on alternate rounds over the devices, so every resident's alert is raised and cleared over and over")
	fs.IntVar(&o.window, "window", 256, "load and backfill: unacknowledged messages per connection")
	fs.BoolVar(&o.perDeviceConns, "per-device-conns", true, "load: one connection per device (brokers with per-device ACLs, such as carehub's embedded one)")
	fs.StringVar(&o.gateway, "gateway", getenv("CARE_SIM_GATEWAY"), "load: USER:PASS for shared connections (default $CARE_SIM_GATEWAY; empty = anonymous)")

	fs.DurationVar(&o.backfill, "backfill", 0, "backfill mode: publish this much history (e.g. 168h) and exit")
	fs.DurationVar(&o.interval, "interval", time.Minute, "backfill: sample interval")
	fs.IntVar(&o.batch, "batch", sim.CatchUpBatch, "backfill: samples per catch-up array")

	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch {
	case o.load && o.backfill > 0:
		return nil, errors.New("-load and -backfill are different modes: pick one")
	case !sim.ValidScenario(o.scenario):
		return nil, fmt.Errorf("-scenario %q: use one of %s or all", o.scenario, strings.Join(sim.Scenarios(), ", "))
	case o.homes < 1 || o.devices < 1 || o.conns < 1 || o.workers < 1:
		return nil, errors.New("-homes, -devices, -conns and -workers must be at least 1")
	case o.speed <= 0:
		return nil, errors.New("-speed must be positive")
	case o.qos != 0 && o.qos != 1:
		return nil, errors.New("-qos must be 0 or 1 (contract §1: devices publish at QoS 1)")
	case o.values < 1 || o.values > wire.MaxLoadValues:
		return nil, fmt.Errorf("-values must be 1-%d", wire.MaxLoadValues)
	case o.load && o.count <= 0 && o.duration <= 0:
		return nil, errors.New("load mode must stop by itself: give -count or -duration")
	case o.backfill < 0 || o.interval <= 0 || o.batch < 1 || o.window < 1:
		return nil, errors.New("-backfill, -interval, -batch and -window must be positive")
	case o.register && o.token == "":
		return nil, errors.New("registration needs the admin token: -token or CARE_ADMIN_TOKEN (or -register=false for an open broker)")
	case o.registerOnly && !o.register:
		return nil, errors.New("-register-only needs registration")
	}
	return o, nil
}

// startTime resolves -start against now.
func startTime(s string, speed float64, now time.Time) (time.Time, error) {
	switch {
	case s == "" && speed > 1:
		return now.Add(-defaultCatchUp), nil
	case s == "" || s == "now":
		return now, nil
	}
	if d, err := time.ParseDuration(strings.TrimPrefix(s, "-")); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("-start %q: give RFC 3339 or a duration before now such as 6h", s)
	}
	return t, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	o, err := parse(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "homesim:", err)
		return 2
	}
	level, err := zerolog.ParseLevel(o.logLevel)
	if err != nil {
		fmt.Fprintln(stderr, "homesim: -log-level:", err)
		return 2
	}
	// The simulation's workers log at once; stderr may be a buffer (tests).
	log := zerolog.New(zerolog.SyncWriter(stderr)).Level(level).With().Timestamp().Str("app", "homesim").Logger()
	if err := runMode(ctx, o, log, stdout); err != nil {
		log.Error().Err(err).Msg("homesim failed")
		return 1
	}
	return 0
}

// plan lays out the homes (or load devices) of this run under prefix.
func (o *options) plan(prefix string) ([]sim.HomeSpec, error) {
	if o.load {
		return wire.PlanLoad(prefix+"-load", o.seed, o.devices)
	}
	return sim.PlanHomes(prefix, o.seed, o.homes)
}

func runMode(ctx context.Context, o *options, log zerolog.Logger, stdout io.Writer) error {
	st, err := prepareState(o, log)
	if err != nil {
		return err
	}
	homes, err := o.plan(st.Prefix)
	if err != nil {
		return err
	}
	if o.register {
		reg := &wire.Registrar{API: o.api, Token: o.token, Client: &http.Client{Timeout: 30 * time.Second},
			Log: log, Workers: o.registerWorkers, StatePath: o.statePath}
		n, err := reg.Register(ctx, homes, st)
		if err != nil {
			return fmt.Errorf("registration: %w", err)
		}
		log.Info().Int("homes", len(homes)).Int("registered", n).Str("state", o.statePath).Msg("registration done")
	}
	if o.registerOnly {
		fmt.Fprintf(stdout, "registered %d homes; credentials in %s\n", len(homes), o.statePath)
		return nil
	}
	creds := func(id string) (string, string) {
		if c, ok := st.Creds(id); ok {
			return c.Username, c.Password
		}
		return "", ""
	}
	switch {
	case o.load:
		return runLoad(ctx, o, homes, creds, log, stdout)
	case o.backfill > 0:
		now := time.Now().Truncate(o.interval)
		res, err := wire.Backfill(ctx, wire.BackfillConfig{Broker: o.broker, Homes: homes, Creds: creds, Seed: o.seed,
			From: now.Add(-o.backfill), To: now, Interval: o.interval, Batch: o.batch, Conns: o.conns, Window: o.window}, log)
		fmt.Fprintf(stdout, "backfill: %d messages, %d samples in %s (%.0f samples/s), %d errors\n",
			res.Messages, res.Samples, res.Elapsed.Round(time.Millisecond), float64(res.Samples)/max(res.Elapsed.Seconds(), 1e-9), res.Errors)
		if err == nil && res.Errors > 0 {
			err = fmt.Errorf("%d residents failed", res.Errors)
		}
		return err
	}
	return runSimulation(ctx, o, homes, creds, log, stdout)
}

// prepareState loads the state file, or starts a fresh one: with -reset the
// ids get a new suffix so they do not collide with devices registered before.
func prepareState(o *options, log zerolog.Logger) (*wire.State, error) {
	prefix := fmt.Sprintf("%s-%d", o.idPrefix, o.seed)
	if !o.register {
		return wire.NewState(prefix, o.seed, ""), nil
	}
	if !o.reset {
		st, ok, err := wire.LoadState(o.statePath)
		if err != nil {
			return nil, err
		}
		if ok && st.Seed == o.seed && st.API == o.api && strings.HasPrefix(st.Prefix, prefix) {
			return st, nil
		}
		if ok {
			log.Warn().Str("state", o.statePath).Msg("state file is for another seed or API: starting a new one")
		}
		return wire.NewState(prefix, o.seed, o.api), nil
	}
	return wire.NewState(prefix+"-"+strconv.FormatInt(time.Now().Unix()%(36*36*36*36), 36), o.seed, o.api), nil
}

func runLoad(ctx context.Context, o *options, homes []sim.HomeSpec, creds func(string) (string, string), log zerolog.Logger, stdout io.Writer) error {
	var devs []wire.Credentials
	for _, h := range homes {
		for _, d := range h.Devices {
			u, p := creds(d.ID)
			devs = append(devs, wire.Credentials{DeviceID: d.ID, Kind: d.Kind, ResidentID: h.ResidentID, HomeID: h.HomeID, Username: u, Password: p})
		}
	}
	user, pass, _ := strings.Cut(o.gateway, ":")
	res, err := wire.RunLoad(ctx, wire.LoadConfig{
		Broker: o.broker, Devices: devs, Conns: o.conns, PerDevice: o.perDeviceConns,
		GatewayUser: user, GatewayPass: pass, Rate: o.rate, Count: o.count, Duration: o.duration,
		Values: o.values, QoS: byte(o.qos), Window: o.window, Seed: o.seed, Storm: o.storm,
	}, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "load: sent %d messages in %s: %.0f msgs/s, %d errors\n",
		res.Sent, res.Elapsed.Round(time.Millisecond), res.Rate(), res.Errors)
	if res.Errors > 0 {
		return fmt.Errorf("%d messages failed", res.Errors)
	}
	return nil
}

func runSimulation(ctx context.Context, o *options, specs []sim.HomeSpec, creds func(string) (string, string), log zerolog.Logger, stdout io.Writer) error {
	start, err := startTime(o.start, o.speed, time.Now())
	if err != nil {
		return err
	}
	homes := make([]*sim.Home, len(specs))
	for i, s := range specs {
		homes[i] = sim.NewHome(s, sim.Options{Seed: o.seed, IncidentsPerDay: o.incidentsPerDay, OutagesPerDay: o.outagesPerDay}, start)
	}
	// Scenarios begin two simulated minutes in, once every device is up.
	sim.Schedule(homes, o.scenario, start.Add(2*time.Minute))
	fleet := wire.NewFleet(o.broker, creds, log)
	r := &sim.Runner{Homes: homes, Clock: sim.NewSimClock(start, o.speed, time.Now), Transport: fleet,
		Log: log, Workers: o.workers, Tick: o.tick}
	log.Info().Int("homes", len(homes)).Float64("speed", o.speed).Time("sim_start", start).Str("scenario", o.scenario).Msg("simulation running")
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	_ = r.Run(ctx)
	closeCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fleet.Close(closeCtx)
	s := r.Stats()
	fmt.Fprintf(stdout, "simulation: %d homes, %d messages published, %d scenarios, %d errors\n", len(homes), s.Published, s.Scenarios, s.Errors)
	return nil
}
