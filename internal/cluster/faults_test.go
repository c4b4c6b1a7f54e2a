//go:build cluster

package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/internal/cluster"
	"github.com/carehub/carehub/internal/model"
)

// Fault tests of issue 15 on the real topology (3 NATS nodes, 2 Mosquitto,
// InfluxDB, 3 carehub instances), one after another on one topology,
// which is whole again between them. In each, devices on both brokers
// publish QoS 1 readings with known values throughout; a process is
// killed with SIGKILL mid-stream; an SOS is pressed during the fault.
// Then: every acknowledged reading is stored exactly once, the SOS raised
// exactly one alert, and the time to recover is printed.

// phase is one fault's run.
type phase struct {
	top   *cluster.Topology
	api   string // an instance that stays up, for registration
	devs  []*device
	sos   *device
	watch *alertWatch
}

const (
	devicesPerPhase = 4                      // half on each broker
	readingEvery    = 100 * time.Millisecond // per device
	beforeFault     = 4 * time.Second
	afterFault      = 12 * time.Second
)

func newPhase(t *testing.T, ctx context.Context, top *cluster.Topology, api, prefix string, sosHome int, extra ...string) *phase {
	t.Helper()
	p := &phase{top: top, api: api}
	for i := range devicesPerPhase {
		p.devs = append(p.devs, newDevice(t, top, api, prefix, "wearable", i%len(top.BrokerURLs)))
	}
	p.sos = newDevice(t, top, api, prefix, "sos", sosHome)
	p.watch = watchAlerts(t, ctx, top, append([]string{p.sos.ResidentID}, extra...)...)
	return p
}

// run streams readings, calls fault after beforeFault, presses the SOS
// just after it, streams on for afterFault and checks what was stored.
// It returns the finished stream, for checks after a restart.
func (p *phase) run(t *testing.T, ctx context.Context, fault func()) *stream {
	t.Helper()
	s := startStream(ctx, p.devs, readingEvery)
	time.Sleep(beforeFault) // the stream's steady state before the fault, not a wait for a condition
	from := s.next()
	t0 := time.Now()
	fault()
	t.Logf("fault injected in %s", time.Since(t0).Round(time.Millisecond))
	sosCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := p.sos.publish(sosCtx, "event", fmt.Appendf(nil, `{"ts":%d,"type":"sos"}`, time.Now().UnixMilli())); err != nil {
		t.Fatal(err)
	}
	storedAt, err := firstStoredFrom(ctx, p.top, s, from, 60*time.Second)
	if err != nil {
		t.Error(err)
	} else {
		t.Logf("recovery: fault to first reading published after it stored: %s", storedAt.Sub(t0).Round(time.Millisecond))
	}
	if !waitFor(60*time.Second, func() bool { return len(p.watch.of("sos", "raised")) > 0 }) {
		t.Error("the SOS pressed during the fault raised no alert within 60 s")
	} else {
		t.Logf("recovery: fault to SOS alert raised: %s", p.watch.of("sos", "raised")[0].seen.Sub(t0).Round(time.Millisecond))
	}
	time.Sleep(time.Until(t0.Add(afterFault))) // readings keep flowing across the recovery
	s.finish(t)
	checkExactlyOnce(t, ctx, p.top, s)
	// A second raise would come from a redelivered event, on any instance,
	// within seconds; the watch has been reading all along.
	time.Sleep(2 * time.Second) // the window in which a duplicate would show, not a wait for luck
	if raised := p.watch.of("sos", "raised"); len(raised) != 1 {
		t.Errorf("the SOS raised %d alerts, want exactly 1: %v", len(raised), raised)
	}
	return s
}

func TestFaults(t *testing.T) {
	top := startTopology(t, cluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	t.Run("a: kill -9 the NATS node leading CARE_READINGS", func(t *testing.T) {
		p := newPhase(t, ctx, top, top.Carehubs[0].Base, "fa", 0)
		leader, err := top.StreamLeader(ctx, model.StreamReadings)
		if err != nil {
			t.Fatal(err)
		}
		victim := top.NATS[leader]
		p.run(t, ctx, func() {
			t.Logf("killing %s, leader of %s", victim.Name, model.StreamReadings)
			victim.Kill()
		})
		if err := victim.Restart(ctx, time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := waitReady(ctx, top); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("b: kill -9 the alert leader (or an instance)", func(t *testing.T) {
		victim := top.AlertLeader(ctx)
		how := "the alert leader by /readyz"
		if victim < 0 {
			victim, how = 1, "an instance (no /readyz names an alert leader)"
		}
		api := top.Carehubs[(victim+1)%len(top.Carehubs)].Base
		// A critical alert whose escalation timer runs when its instance
		// dies: another must escalate it, once, 60 s after it became
		// critical (alerts.CriticalStep). An SOS is raised at the top tier
		// at once and never escalates, so SpO2 falling is that alert.
		spo2 := newDevice(t, top, api, "fb", "wearable", 1)
		p := newPhase(t, ctx, top, api, "fb", 0, spo2.ResidentID)
		critAt := criticalSpO2(t, ctx, p, spo2)
		c := top.Carehubs[victim]
		s := p.run(t, ctx, func() {
			t.Logf("killing %s, %s", c.ID, how)
			c.Kill()
		})
		defer func() {
			// What the dead instance's broker sessions held reaches
			// InfluxDB once it is back (a supervisor restarts it): stored
			// then, and still once.
			if err := c.Restart(ctx, 2*time.Minute); err != nil {
				t.Fatal(err)
			}
			if t.Failed() {
				t.Logf("after %s restarted:", c.ID)
				checkExactlyOnce(t, ctx, top, s)
				t.Logf("SOS alerts raised after the restart: %d", len(p.watch.of("sos", "raised")))
			}
		}()
		if !waitFor(alerts.CriticalStep+40*time.Second-time.Since(critAt), func() bool { return len(p.watch.of("spo2", "escalated")) > 0 }) {
			t.Fatalf("the critical SpO2 alert did not escalate within %s of becoming critical", alerts.CriticalStep+40*time.Second)
		}
		esc := p.watch.of("spo2", "escalated")[0]
		t.Logf("escalated %s after it became critical (due at %s)", esc.at.Sub(critAt).Round(time.Millisecond), alerts.CriticalStep)
		if late := esc.at.Sub(critAt); late < alerts.CriticalStep {
			t.Errorf("escalated %s after it became critical, before its %s step", late, alerts.CriticalStep)
		}
		// Later steps follow (40 s apart on the default chain); a timer
		// fired twice shows as one step published twice, by two instances
		// or after a takeover.
		time.Sleep(5 * time.Second) // the window in which a twin of the first step would show, not a wait for luck
		steps := map[int]int{}
		for _, x := range p.watch.of("spo2", "escalated") {
			steps[x.level]++
		}
		for level, n := range steps {
			if n != 1 {
				t.Errorf("the critical SpO2 alert escalated to level %d %d times, want exactly once: %v", level, n, p.watch.of("spo2", "escalated"))
			}
		}
		if ids := alertIDs(p.watch.of("spo2", "")); len(ids) != 1 {
			t.Errorf("one resident's falling SpO2 made %d alerts, want 1 (raised by more than one instance?): %v", len(ids), p.watch.of("spo2", ""))
		}
		if steps[2] != 1 {
			t.Errorf("escalations by level %v, want one to level 2 at the %s step", steps, alerts.CriticalStep)
		}
	})

	t.Run("c: kill -9 a Mosquitto: its devices move to the other", func(t *testing.T) {
		// The SOS device is at home on the broker that dies. A broker
		// killed with SIGKILL loses what it acknowledged to a device but
		// had not yet handed to carehub (its persistence is a periodic
		// snapshot); at 10 readings/s a device that window is a few
		// microseconds wide, and no run has hit it yet: should one, the
		// missing reading is named.
		p := newPhase(t, ctx, top, top.Carehubs[0].Base, "fc", 0)
		victim := top.Brokers[0]
		p.run(t, ctx, func() {
			t.Logf("killing %s, home broker of half the devices and of the SOS button", victim.Name)
			victim.Kill()
		})
		if err := victim.Restart(ctx, time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := waitReady(ctx, top); err != nil {
			t.Fatal(err)
		}
	})
}

// criticalSpO2 sends a resident's SpO2 falling over 11 minutes (as
// internal/app's TestAlertSurvivesKill does) and returns when its alert
// became critical.
func criticalSpO2(t *testing.T, ctx context.Context, p *phase, d *device) time.Time {
	t.Helper()
	start := time.Now().Add(-11 * time.Minute)
	for i := 0; i <= 22; i++ {
		pl := fmt.Appendf(nil, `{"ts":%d,"values":{"spo2":%d}}`, start.Add(time.Duration(i)*30*time.Second).UnixMilli(), max(89, 97-i))
		if err := d.publish(ctx, "telemetry", pl); err != nil {
			t.Fatal(err)
		}
	}
	var at time.Time
	if !waitFor(30*time.Second, func() bool {
		for _, x := range p.watch.of("spo2", "") {
			if x.severity == "critical" && (x.transition == "raised" || x.transition == "repeated") {
				at = x.at
				return true
			}
		}
		return false
	}) {
		t.Fatal("the SpO2 alert did not become critical within 30 s")
	}
	return at
}

// waitReady waits until every instance is ready again after a restart.
func waitReady(ctx context.Context, top *cluster.Topology) error {
	return waitErr(ctx, 90*time.Second, func() error { return top.Ready(ctx) })
}
