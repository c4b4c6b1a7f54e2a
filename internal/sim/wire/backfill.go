package wire

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/carehub/carehub/internal/sim"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"
)

// BackfillConfig configures backfill mode.
type BackfillConfig struct {
	Broker   string
	Homes    []sim.HomeSpec
	Creds    func(deviceID string) (user, pass string)
	Seed     int64
	From, To time.Time
	Interval time.Duration
	Batch    int // samples per catch-up array
	Conns    int // concurrent device connections
	Window   int // unacknowledged messages per connection
}

// BackfillResult is what a backfill did.
type BackfillResult struct {
	Messages, Samples, Errors int64
	Elapsed                   time.Duration
}

// Backfill publishes each resident's vitals from From to To every Interval
// as catch-up arrays of Batch samples (contract §1), through the resident's
// wearable (or bed radar), as fast as the broker takes them. Conns homes are
// sent at a time, each over its device's own connection.
func Backfill(ctx context.Context, cfg BackfillConfig, log zerolog.Logger) (BackfillResult, error) {
	if cfg.Interval <= 0 || !cfg.From.Before(cfg.To) {
		return BackfillResult{}, errors.New("backfill: need an interval and From before To")
	}
	batch := max(1, cfg.Batch)
	window := max(1, cfg.Window)
	var msgs, samples, errs atomic.Int64
	jobs := make(chan sim.HomeSpec)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < max(1, cfg.Conns); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for spec := range jobs {
				m, s, err := backfillHome(ctx, cfg, spec, batch, window)
				msgs.Add(m)
				samples.Add(s)
				if err != nil {
					errs.Add(1)
					log.Warn().Err(err).Str("resident_id", spec.ResidentID).Msg("backfill failed for a resident")
				}
			}
		}()
	}
feed:
	for _, h := range cfg.Homes {
		select {
		case jobs <- h:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	return BackfillResult{Messages: msgs.Load(), Samples: samples.Load(), Errors: errs.Load(), Elapsed: time.Since(start)}, ctx.Err()
}

func backfillHome(ctx context.Context, cfg BackfillConfig, spec sim.HomeSpec, batch, window int) (msgs, samples int64, err error) {
	dev, ok := spec.Device(sim.RoleWearable)
	if !ok {
		if dev, ok = spec.Device(sim.RoleRadar); !ok {
			return 0, 0, fmt.Errorf("home %s has neither wearable nor radar", spec.HomeID)
		}
	}
	user, pass := cfg.Creds(dev.ID)
	o := DeviceOptions(cfg.Broker, dev.ID, user, pass).SetMaxResumePubInFlight(window)
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(opTimeout) {
		return 0, 0, fmt.Errorf("connect %s: timed out", dev.ID)
	}
	if err := tok.Error(); err != nil {
		return 0, 0, fmt.Errorf("connect %s: %w", dev.ID, err)
	}
	defer c.Disconnect(100)
	h := sim.NewHome(spec, sim.Options{Seed: cfg.Seed}, cfg.From)
	var inflight []mqtt.Token
	var inflightN []int64
	waitOldest := func() error {
		t := inflight[0]
		n := inflightN[0]
		inflight, inflightN = inflight[1:], inflightN[1:]
		if !t.WaitTimeout(opTimeout) {
			return errors.New("no PUBACK in time")
		}
		if t.Error() != nil {
			return t.Error()
		}
		msgs++
		samples += n
		return nil
	}
	buf := make([]sim.Sample, 0, batch)
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		m := sim.CatchUpMsg(time.Time{}, dev.ID, buf)
		if len(inflight) >= window {
			if err := waitOldest(); err != nil {
				return err
			}
		}
		inflight = append(inflight, c.Publish(m.Topic, 1, false, m.Payload))
		inflightN = append(inflightN, int64(len(buf)))
		buf = buf[:0]
		return nil
	}
	for t := cfg.From; t.Before(cfg.To); t = t.Add(cfg.Interval) {
		if ctx.Err() != nil {
			break
		}
		buf = append(buf, sim.Sample{TS: t.UnixMilli(), Values: h.VitalsAt(t)})
		if len(buf) == batch {
			if err := flush(); err != nil {
				return msgs, samples, err
			}
		}
	}
	if err := flush(); err != nil {
		return msgs, samples, err
	}
	for len(inflight) > 0 {
		if err := waitOldest(); err != nil {
			return msgs, samples, err
		}
	}
	return msgs, samples, nil
}
