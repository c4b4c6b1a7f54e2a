package sim

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Transport is what the Runner needs from the MQTT side; Fleet implements it.
type Transport interface {
	Connect(deviceID string) error
	Publish(deviceID, topic string, payload []byte, retained bool) error
	Drop(deviceID string) error
}

// Runner drives simulated homes with a clock and carries what they do to a
// Transport. Homes are split over a fixed number of workers; a worker owns
// its homes, so there is no goroutine per home or per message.
type Runner struct {
	Homes     []*Home
	Clock     Clock
	Transport Transport
	Log       zerolog.Logger
	Workers   int           // default 4
	Tick      time.Duration // wall time between steps; default 250 ms

	published atomic.Int64
	errors    atomic.Int64
	scenarios atomic.Int64
}

// Stats are the Runner's counters.
type Stats struct {
	Published, Errors, Scenarios int64
}

// Stats returns what the Runner did so far.
func (r *Runner) Stats() Stats {
	return Stats{Published: r.published.Load(), Errors: r.errors.Load(), Scenarios: r.scenarios.Load()}
}

// Run steps every home on each tick until ctx ends.
func (r *Runner) Run(ctx context.Context) error {
	tick := r.Tick
	if tick <= 0 {
		tick = 250 * time.Millisecond
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		r.StepAll(ctx, r.Clock.Now())
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// StepAll advances every home to now and sends what they did, in each
// home's time order; it returns when all is sent (or ctx ended).
func (r *Runner) StepAll(ctx context.Context, now time.Time) {
	workers := r.Workers
	if workers <= 0 {
		workers = 4
	}
	workers = min(workers, len(r.Homes))
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(r.Homes); i += workers {
				if ctx.Err() != nil {
					return
				}
				h := r.Homes[i]
				for _, m := range h.Step(now) {
					r.apply(h, m)
				}
			}
		}(w)
	}
	wg.Wait()
}

func (r *Runner) apply(h *Home, m Msg) {
	var err error
	switch m.Action {
	case Note:
		r.scenarios.Add(1)
		// Ids only: the resident's name stays in the registry (domain.md Privacy).
		r.Log.Info().Str("scenario", m.Text).Str("resident_id", h.Spec.ResidentID).Str("home_id", h.Spec.HomeID).
			Str("device_id", m.DeviceID).Time("sim_time", m.At).Msg("scenario started")
		return
	case Connect:
		err = r.Transport.Connect(m.DeviceID)
	case Drop:
		r.Log.Info().Str("device_id", m.DeviceID).Str("home_id", h.Spec.HomeID).Time("sim_time", m.At).Msg("device link cut without DISCONNECT")
		err = r.Transport.Drop(m.DeviceID)
	case Publish:
		err = r.Transport.Publish(m.DeviceID, m.Topic, m.Payload, m.Retained)
		if err == nil {
			r.published.Add(1)
		}
	}
	if err != nil {
		// The first errors and then every 1000th: a broker outage must not
		// flood the log.
		if n := r.errors.Add(1); n <= 10 || n%1000 == 0 {
			r.Log.Warn().Err(err).Str("device_id", m.DeviceID).Int64("errors", n).Msg("device action failed")
		}
	}
}

// scenarioPlan says which home plays which scenario when: "-scenario all"
// gives home i the i-th scenario (round robin), ten simulated minutes apart;
// a single scenario plays on home 0. Start is the first one's time.
func scenarioPlan(name string, homes int, start time.Time) map[int][]scheduled {
	out := map[int][]scheduled{}
	if homes == 0 || name == "" {
		return out
	}
	if name != "all" {
		out[0] = append(out[0], scheduled{name: name, at: start})
		return out
	}
	for i, s := range Scenarios() {
		out[i%homes] = append(out[i%homes], scheduled{name: s, at: start.Add(time.Duration(i) * 10 * time.Minute)})
	}
	return out
}

// Schedule applies scenarioPlan to homes.
func Schedule(homes []*Home, name string, start time.Time) {
	for i, ss := range scenarioPlan(name, len(homes), start) {
		for _, s := range ss {
			homes[i].StartScenario(s.name, s.at)
		}
	}
}

// ValidScenario reports whether name is a scenario, "all", or empty (none).
func ValidScenario(name string) bool {
	if name == "" || name == "all" {
		return true
	}
	for _, s := range Scenarios() {
		if s == name {
			return true
		}
	}
	return false
}
