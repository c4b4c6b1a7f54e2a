package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/carehub/carehub/internal/sim"
	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// The device-flood probe (issue 9 item 7): one registered device floods
// carehub's embedded broker with telemetry arrays far over its quota while
// another home's SOS button is pressed. Held: the SOS alert is listed by
// GET /api/v1/alerts within 2 s of the press, and the flooder was refused
// as rate_limited.
func init() {
	registerProbe("device-flood", probeDeviceFlood)
}

func probeDeviceFlood(ctx context.Context, t probeTarget) probeResult {
	suffix := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	flooder, err := probeRegister(ctx, t, "flood-res-"+suffix, "flood-dev-"+suffix, "wearable")
	if err != nil {
		return probeResult{Detail: "register the flooder: " + err.Error()}
	}
	victim, err := probeRegister(ctx, t, "sos-res-"+suffix, "sos-dev-"+suffix, "sos")
	if err != nil {
		return probeResult{Detail: "register the SOS button: " + err.Error()}
	}
	connect := func(id, password string) (mqtt.Client, error) {
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + t.MQTTAddr).SetClientID(id).SetUsername(id).
			SetPassword(password).SetAutoReconnect(true).SetConnectTimeout(10 * time.Second))
		if tok := c.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
			return nil, fmt.Errorf("connect %s: %v", id, tok.Error())
		}
		return c, nil
	}
	fc, err := connect(flooder.id, flooder.password)
	if err != nil {
		return probeResult{Detail: err.Error()}
	}
	defer fc.Disconnect(0)
	sc, err := connect(victim.id, victim.password)
	if err != nil {
		return probeResult{Detail: err.Error()}
	}
	defer sc.Disconnect(100)

	limitedBefore := probeMetric(t, `carehub_ingest_rejected_total{reason="rate_limited"}`)
	// ~45 KiB arrays of 1,000 records, 64 publishes in flight, for 3 s
	// before the press and until the alert is seen.
	array := sim.HeartRateArray(1000, time.Now())
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	var sent atomic.Int64
	flooding := make(chan struct{})
	go func() {
		defer close(flooding)
		var toks []mqtt.Token
		for fctx.Err() == nil {
			toks = append(toks, fc.Publish("care/v1/dev/"+flooder.id+"/telemetry", 1, false, array))
			sent.Add(1)
			if len(toks) == 64 {
				for _, tok := range toks {
					tok.WaitTimeout(10 * time.Second)
				}
				toks = toks[:0]
			}
		}
	}()
	select {
	case <-time.After(3 * time.Second):
	case <-ctx.Done():
		return probeResult{Detail: "cancelled"}
	}

	pressed := time.Now()
	if tok := sc.Publish("care/v1/dev/"+victim.id+"/event", 1, false, fmt.Sprintf(`{"ts":%d,"type":"sos"}`, pressed.UnixMilli())); !tok.WaitTimeout(2*time.Second) || tok.Error() != nil {
		stop()
		<-flooding
		return probeResult{Detail: fmt.Sprintf("the SOS press was not acknowledged within 2 s (%v)", tok.Error())}
	}
	var seen time.Duration
	for time.Since(pressed) < 2*time.Second && seen == 0 {
		var page struct {
			Alerts []struct {
				Rule string `json:"rule"`
			} `json:"alerts"`
		}
		if err := probeGet(ctx, t, "/api/v1/alerts?resident_id="+victim.resident, &page); err == nil {
			for _, a := range page.Alerts {
				if a.Rule == "sos" {
					seen = time.Since(pressed)
				}
			}
		}
		if seen == 0 {
			time.Sleep(50 * time.Millisecond) // poll the API until the deadline
		}
	}
	stop()
	<-flooding
	limited := probeMetric(t, `carehub_ingest_rejected_total{reason="rate_limited"}`) - limitedBefore
	switch {
	case seen == 0:
		return probeResult{Detail: fmt.Sprintf("no SOS alert in GET /api/v1/alerts within 2 s of the press, %d flood messages sent, %.0f rate_limited", sent.Load(), limited)}
	case limited <= 0:
		return probeResult{Detail: fmt.Sprintf("SOS listed after %v, but the flooder (%d messages of 1,000 records) was never rate_limited", seen.Round(time.Millisecond), sent.Load())}
	}
	return probeResult{Pass: true, Detail: fmt.Sprintf("SOS listed %v after the press during a flood of %d arrays; %.0f refused as rate_limited",
		seen.Round(time.Millisecond), sent.Load(), limited)}
}

// probeMetric reads one series from /metrics; 0 when absent.
func probeMetric(t probeTarget, series string) float64 {
	req, _ := http.NewRequest("GET", t.HTTP+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+t.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	s := bufio.NewScanner(resp.Body)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), series+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}
