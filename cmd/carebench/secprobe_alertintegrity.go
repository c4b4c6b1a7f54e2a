package main

import (
	"context"
	"fmt"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// The alert-integrity probe (issue 9 item 11, engine side): a device of a
// home sends sos_cancel for an SOS another device raised, and the button
// sends an SOS stamped 30 minutes ago. Neither may change the open SOS
// alert: the foreign cancel must not clear it and the stale press must not
// count. A second, fresh press then shows the engine has handled all three
// (events are consumed in order): the one SOS alert must be open with
// exactly two occurrences.
func init() {
	registerProbe("alert-integrity", probeAlertIntegrity)
}

func probeAlertIntegrity(ctx context.Context, t probeTarget) probeResult {
	fail := func(format string, a ...any) probeResult { return probeResult{Detail: fmt.Sprintf(format, a...)} }
	rid := "probe-ai-r1"
	if err := probePost(ctx, t, "/api/v1/residents", map[string]any{"id": rid, "name": "Probe Resident", "home_id": "probe-ai-h1"}, nil); err != nil {
		return fail("register resident: %v", err)
	}
	conn := map[string]mqtt.Client{}
	for _, d := range []struct{ id, kind string }{{"probe-ai-sos", "sos"}, {"probe-ai-ring", "wearable"}} {
		var created struct {
			MQTT struct{ Username, Password string } `json:"mqtt"`
		}
		if err := probePost(ctx, t, "/api/v1/devices", map[string]any{"id": d.id, "kind": d.kind, "resident_id": rid}, &created); err != nil {
			return fail("register %s: %v", d.id, err)
		}
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + t.MQTTAddr).SetClientID(d.id).
			SetUsername(created.MQTT.Username).SetPassword(created.MQTT.Password).SetAutoReconnect(false))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			return fail("connect %s: %v", d.id, tok.Error())
		}
		defer c.Disconnect(100)
		conn[d.id] = c
	}
	send := func(dev, typ string, ts time.Time) error {
		tok := conn[dev].Publish("care/v1/dev/"+dev+"/event", 1, false, fmt.Sprintf(`{"ts":%d,"type":%q}`, ts.UnixMilli(), typ))
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			return fmt.Errorf("publish %s from %s: %v", typ, dev, tok.Error())
		}
		return nil
	}
	sos := func() ([]probeAlert, error) {
		var page struct {
			Alerts []probeAlert `json:"alerts"`
		}
		err := probeGet(ctx, t, "/api/v1/alerts?resident_id="+rid, &page)
		var out []probeAlert
		for _, a := range page.Alerts {
			if a.Rule == "sos" {
				out = append(out, a)
			}
		}
		return out, err
	}
	now := time.Now()
	if err := send("probe-ai-sos", "sos", now); err != nil {
		return fail("%v", err)
	}
	if err := waitFor(ctx, 15*time.Second, "the SOS alert", func() bool { a, _ := sos(); return len(a) == 1 }); err != nil {
		return fail("the first press raised no SOS alert: %v", err)
	}
	for _, s := range []struct {
		dev, typ string
		ts       time.Time
	}{
		{"probe-ai-ring", "sos_cancel", now.Add(2 * time.Second)}, // another device's cancel
		{"probe-ai-sos", "sos", now.Add(-30 * time.Minute)},       // a stale press
		{"probe-ai-sos", "sos", now.Add(3 * time.Second)},         // fresh: the marker
	} {
		if err := send(s.dev, s.typ, s.ts); err != nil {
			return fail("%v", err)
		}
	}
	var got []probeAlert
	err := waitFor(ctx, 15*time.Second, "the second press", func() bool {
		got, _ = sos()
		n := 0
		for _, a := range got {
			n += a.Occurrences
		}
		return n >= 2
	})
	if err != nil {
		return fail("the fresh press never showed: %v (alerts %+v)", err, got)
	}
	if len(got) != 1 || got[0].Status != "open" || got[0].Occurrences != 2 {
		return fail("SOS alerts %+v: want one open alert with 2 occurrences (a foreign cancel cleared it, or the stale press counted)", got)
	}
	return probeResult{Pass: true, Detail: "a wearable's sos_cancel left the button's SOS open; a press stamped 30 min ago did not count"}
}

type probeAlert struct {
	ID          string `json:"id"`
	Rule        string `json:"rule"`
	Status      string `json:"status"`
	Occurrences int    `json:"occurrences"`
}
