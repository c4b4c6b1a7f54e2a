package wire

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/coalesce"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/sim"
)

// PlanLoad lays out devices for load mode: homes of ten wearables each, ids
// under prefix, so they can be registered like simulated homes.
func PlanLoad(prefix string, seed int64, devices int) ([]sim.HomeSpec, error) {
	if !catalog.ValidID(prefix) || len(prefix) > 40 {
		return nil, fmt.Errorf("id prefix %q: use at most 40 of [a-z0-9_-]", prefix)
	}
	rng := rand.New(rand.NewSource(seed))
	var homes []sim.HomeSpec
	for i := 0; i < devices; i++ {
		if i%10 == 0 {
			n := len(homes)
			homes = append(homes, sim.HomeSpec{
				Index: n, HomeID: fmt.Sprintf("%s-lh%04d", prefix, n), ResidentID: fmt.Sprintf("%s-lr%04d", prefix, n),
				Name: sim.FakeName(rng), BirthYear: 1930 + rng.Intn(26),
			})
		}
		h := &homes[len(homes)-1]
		h.Devices = append(h.Devices, sim.DeviceSpec{ID: fmt.Sprintf("%s-l%05d", prefix, i), Role: sim.RoleWearable, Kind: catalog.KindWearable})
	}
	return homes, nil
}

// loadMetrics are the metrics a load message carries, first -values of them,
// with a plausible centre and spread each.
var loadMetrics = []struct {
	name         string
	mid, spread  float64
	roundDecimal bool
}{
	{"heart_rate", 72, 8, false}, {"spo2", 97, 1, false}, {"resp_rate", 15, 2, false},
	{"body_temp", 36.6, 0.2, true}, {"room_temp", 22, 1, true}, {"humidity", 45, 5, false},
	{"co2", 700, 100, false}, {"pm2_5", 12, 4, true}, {"lux", 300, 100, false},
	{"systolic_bp", 128, 8, false}, {"diastolic_bp", 80, 5, false}, {"glucose", 110, 15, false},
}

// MaxLoadValues is the most metrics a load message can carry.
var MaxLoadValues = len(loadMetrics)

// LoadConfig configures load mode.
type LoadConfig struct {
	Broker    string
	Devices   []Credentials // who the messages are for
	Conns     int           // worker connections (shared mode) or workers (per-device mode)
	PerDevice bool          // one connection per device (needed with per-device ACLs)
	// GatewayUser and GatewayPass log in the shared connections; empty =
	// anonymous (an external broker allowing it).
	GatewayUser, GatewayPass string
	Rate                     float64       // messages per second in total; 0 = as fast as possible
	Count                    int64         // stop after this many messages; 0 = no limit
	Duration                 time.Duration // stop after this long; 0 = no limit
	Values                   int           // metrics per message
	QoS                      byte
	Window                   int // unacknowledged QoS 1 messages per connection
	Seed                     int64
	// Storm makes readings cross an alert threshold and back, as a mass
	// outage would: each message also carries systolic_bp, 95 mmHg (≤ 100
	// raises a high alert at once) or 128 mmHg (≥ 105 clears it),
	// alternating between a connection's neighbouring devices and between
	// a device's successive readings, so a resident's readings (from ten
	// devices) flip its alert several times per round over the devices.
	Storm bool
}

// Storm readings' systolic_bp: stormLow raises the systolic_bp rule's high
// alert at once (≤ 100 mmHg), stormHigh clears it (≥ 105).
const (
	stormLow  = 95
	stormHigh = 128
)

// LoadResult is what a load run did.
type LoadResult struct {
	Sent    int64 // published and, at QoS 1, acknowledged
	Errors  int64
	Elapsed time.Duration
}

// Rate is messages per second.
func (r LoadResult) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Sent) / r.Elapsed.Seconds()
}

// loadConn is one connection with its window of unacknowledged publishes,
// oldest first: when it is full the worker waits for the oldest, which
// bounds memory and in-flight messages without a goroutine per message.
type loadConn struct {
	client  mqtt.Client
	devices []Credentials
	lastTS  []int64 // the last timestamp sent for devices[i]
	window  []mqtt.Token
}

// nextTS is the timestamp of device i's next message: the send time in ms,
// or one more than its last one. A worker writes a burst of payloads within
// a millisecond, and two readings of one device with the same timestamp are
// one point in InfluxDB: a device never sends them, nor may the loader.
func (c *loadConn) nextTS(i int, now time.Time) int64 {
	if c.lastTS == nil {
		c.lastTS = make([]int64, len(c.devices))
	}
	ts := max(now.UnixMilli(), c.lastTS[i]+1)
	c.lastTS[i] = ts
	return ts
}

// RunLoad publishes telemetry as fast as asked, with ts = send time in ms so
// the receiving end can compute end-to-end lag, and stops by itself after
// Count messages or Duration (or when ctx ends).
func RunLoad(ctx context.Context, cfg LoadConfig, log zerolog.Logger) (LoadResult, error) {
	if len(cfg.Devices) == 0 {
		return LoadResult{}, errors.New("load: no devices")
	}
	if cfg.Count <= 0 && cfg.Duration <= 0 {
		return LoadResult{}, errors.New("load: give -count or -duration so it stops")
	}
	workers := max(1, min(cfg.Conns, len(cfg.Devices)))
	window := max(1, cfg.Window)
	values := max(1, min(cfg.Values, MaxLoadValues))
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}

	// Connect first, so the clock measures publishing only.
	conns := make([][]*loadConn, workers)
	for i, d := range cfg.Devices {
		w := i % workers
		if cfg.PerDevice {
			conns[w] = append(conns[w], &loadConn{devices: []Credentials{d}})
		} else {
			if len(conns[w]) == 0 {
				conns[w] = append(conns[w], &loadConn{})
			}
			conns[w][0].devices = append(conns[w][0].devices, d)
		}
	}
	nonce := fmt.Sprintf("%x", time.Now().UnixNano()&0xffffff)
	defer func() {
		for _, cs := range conns {
			for _, c := range cs {
				if c.client != nil {
					c.client.Disconnect(100)
				}
			}
		}
	}()
	for w, cs := range conns {
		for _, c := range cs {
			var o *mqtt.ClientOptions
			if cfg.PerDevice {
				d := c.devices[0]
				o = DeviceOptions(cfg.Broker, d.DeviceID, d.Username, d.Password)
			} else {
				o = mqtt.NewClientOptions().AddBroker(cfg.Broker).
					SetClientID(fmt.Sprintf("homesim-load-%s-%d", nonce, w)).
					SetUsername(cfg.GatewayUser).SetPassword(cfg.GatewayPass).
					SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(opTimeout)
				if coalesce.PlainTCP(cfg.Broker) {
					// A gateway connection carries thousands of PUBACKs a
					// second: read them through a buffer, not one system
					// call per byte group as paho does.
					o.SetCustomOpenConnectionFn(coalesce.DialMQTT)
				}
			}
			o.SetMaxResumePubInFlight(window).SetOrderMatters(false).SetWriteTimeout(opTimeout)
			c.client = mqtt.NewClient(o)
			tok := c.client.Connect()
			if !tok.WaitTimeout(opTimeout) {
				return LoadResult{}, fmt.Errorf("load: connecting: timed out")
			}
			if err := tok.Error(); err != nil {
				return LoadResult{}, fmt.Errorf("load: connecting: %w", err)
			}
		}
	}
	log.Info().Int("devices", len(cfg.Devices)).Int("workers", workers).Bool("per_device_conns", cfg.PerDevice).
		Float64("rate", cfg.Rate).Int64("count", cfg.Count).Msg("load: connected, publishing")

	var sent, errs, claimed atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(cfg.Seed + int64(w)))
			var interval time.Duration
			if cfg.Rate > 0 {
				interval = time.Duration(float64(time.Second) * float64(workers) / cfg.Rate)
			}
			timer := time.NewTimer(0)
			<-timer.C
			cs := conns[w]
			wait := func(tok mqtt.Token) {
				if !tok.WaitTimeout(opTimeout) {
					errs.Add(1)
					return
				}
				if tok.Error() != nil {
					errs.Add(1)
					return
				}
				sent.Add(1)
			}
			for k := 0; ; k++ {
				if ctx.Err() != nil {
					break
				}
				if cfg.Count > 0 && claimed.Add(1) > cfg.Count {
					break
				}
				if interval > 0 { // pace: message k of this worker is due at start + k*interval
					if d := time.Until(start.Add(time.Duration(k) * interval)); d > 0 {
						timer.Reset(d)
						select {
						case <-ctx.Done():
							timer.Stop()
						case <-timer.C:
						}
						if ctx.Err() != nil {
							break
						}
					}
				}
				c := cs[k%len(cs)]
				di := (k / len(cs)) % len(c.devices)
				d := c.devices[di]
				payload := loadPayload(rng, values, c.nextTS(di, time.Now()))
				if cfg.Storm {
					// Neighbouring devices (a resident's, in turn) and
					// each device's successive readings alternate.
					round := k / (len(cs) * len(c.devices))
					payload = stormPayload(payload, (di+round)%2 == 0)
				}
				tok := c.client.Publish(model.DeviceTopic(d.DeviceID, model.TopicTelemetry), cfg.QoS, false, payload)
				if cfg.QoS == 0 {
					wait(tok)
					continue
				}
				if len(c.window) >= window {
					wait(c.window[0])
					c.window = c.window[1:]
				}
				c.window = append(c.window, tok)
			}
			for _, c := range cs {
				for _, tok := range c.window {
					wait(tok)
				}
				c.window = nil
			}
		}(w)
	}
	wg.Wait()
	return LoadResult{Sent: sent.Load(), Errors: errs.Load(), Elapsed: time.Since(start)}, nil
}

func loadPayload(rng *rand.Rand, values int, ts int64) []byte {
	vals := make(map[string]float64, values)
	for _, m := range loadMetrics[:values] {
		v := m.mid + rng.NormFloat64()*m.spread
		if m.roundDecimal {
			v = math.Round(v*10) / 10
		} else {
			v = float64(int(v + 0.5))
		}
		// The tails of the noise stay inside the catalogue's range (spo2
		// 97 ± 1 reached 101 about once in 4,000 messages): a load carries
		// valid readings only, so its rejections counter stays at zero.
		if c, ok := catalog.LookupMetric(m.name); ok {
			v = max(c.Min, min(c.Max, v))
		}
		vals[m.name] = v
	}
	b, _ := json.Marshal(sim.Sample{TS: ts, Values: vals})
	return b
}

// stormPayload adds systolic_bp to a load payload: stormLow when low, else
// stormHigh.
func stormPayload(payload []byte, low bool) []byte {
	var s sim.Sample
	_ = json.Unmarshal(payload, &s) // loadPayload's own output
	s.Values["systolic_bp"] = stormHigh
	if low {
		s.Values["systolic_bp"] = stormLow
	}
	b, _ := json.Marshal(s)
	return b
}
