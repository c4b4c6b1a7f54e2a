package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// The erasure probe: a resident whose device reported and raised an SOS is
// erased through the API; afterwards the API shows no alert and no reading
// of theirs, their device cannot log in, and the id is not given to a new
// resident (late messages of the erased person are dropped by it).
func init() { registerProbe("erasure-leaves-nothing", probeErasure) }

// probeCall sends a JSON request with the admin token and returns the status
// and body.
func probeCall(ctx context.Context, t probeTarget, method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, t.HTTP+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+t.AdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, b, nil
}

// probeAlertsOf counts the alerts GET /alerts lists for a resident.
func probeAlertsOf(ctx context.Context, t probeTarget, rid string) (int, error) {
	code, b, err := probeCall(ctx, t, "GET", "/api/v1/alerts?limit=500", nil)
	if err != nil || code != http.StatusOK {
		return 0, fmt.Errorf("GET /alerts: %d %v", code, err)
	}
	var page struct {
		Alerts []struct {
			ResidentID string `json:"resident_id"`
		} `json:"alerts"`
	}
	if err := json.Unmarshal(b, &page); err != nil {
		return 0, err
	}
	n := 0
	for _, a := range page.Alerts {
		if a.ResidentID == rid {
			n++
		}
	}
	return n, nil
}

func probeErasure(ctx context.Context, t probeTarget) probeResult {
	fail := func(format string, args ...any) probeResult {
		return probeResult{Pass: false, Detail: fmt.Sprintf(format, args...)}
	}
	suffix := fmt.Sprintf("%x", time.Now().UnixNano())
	rid, did := "r-erase-"+suffix, "d-erase-"+suffix
	if code, b, err := probeCall(ctx, t, "POST", "/api/v1/residents", map[string]any{"id": rid, "name": "Probe Resident", "home_id": "h-erase-" + suffix}); err != nil || code != http.StatusCreated {
		return fail("setup: create resident: %d %v %s", code, err, b)
	}
	code, b, err := probeCall(ctx, t, "POST", "/api/v1/devices", map[string]any{"id": did, "kind": "wearable", "resident_id": rid})
	if err != nil || code != http.StatusCreated {
		return fail("setup: create device: %d %v %s", code, err, b)
	}
	var dev struct {
		MQTT struct {
			Password string `json:"password"`
		} `json:"mqtt"`
	}
	if err := json.Unmarshal(b, &dev); err != nil {
		return fail("setup: device answer: %v", err)
	}
	connect := func() (mqtt.Client, error) {
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + t.MQTTAddr).SetClientID(did).SetUsername(did).
			SetPassword(dev.MQTT.Password).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second))
		tok := c.Connect()
		if !tok.WaitTimeout(10 * time.Second) {
			return nil, fmt.Errorf("connect timed out")
		}
		return c, tok.Error()
	}
	c, err := connect()
	if err != nil {
		return fail("setup: device connect: %v", err)
	}
	defer c.Disconnect(0)
	now := time.Now()
	for i := range 5 {
		payload := fmt.Appendf(nil, `{"ts":%d,"values":{"heart_rate":%d,"spo2":97}}`, now.Add(time.Duration(i-5)*time.Second).UnixMilli(), 70+i)
		if tok := c.Publish("care/v1/dev/"+did+"/telemetry", 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			return fail("setup: publish: %v", tok.Error())
		}
	}
	if tok := c.Publish("care/v1/dev/"+did+"/event", 1, false, []byte(`{"type":"sos"}`)); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fail("setup: publish SOS: %v", tok.Error())
	}
	readingsPath := "/api/v1/residents/" + rid + "/readings?metric=heart_rate&from=" + now.Add(-time.Hour).UTC().Format(time.RFC3339)
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, _ := probeAlertsOf(ctx, t, rid)
		code, b, _ := probeCall(ctx, t, "GET", readingsPath, nil)
		if n > 0 && code == http.StatusOK && bytes.Contains(b, []byte(`"v"`)) {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fail("setup: the SOS alert (%d) and readings (HTTP %d) never showed", n, code)
		}
		time.Sleep(200 * time.Millisecond)
	}

	if code, b, err := probeCall(ctx, t, "DELETE", "/api/v1/residents/"+rid+"?reason=security+probe", nil); err != nil || code != http.StatusOK {
		return fail("erase: %d %v %s", code, err, b)
	}
	if n, err := probeAlertsOf(ctx, t, rid); err != nil || n != 0 {
		return fail("after erasure GET /alerts lists %d alerts of the resident (%v)", n, err)
	}
	if code, b, _ := probeCall(ctx, t, "GET", readingsPath, nil); code != http.StatusNotFound {
		return fail("after erasure GET /residents/{id}/readings: HTTP %d %.200s", code, b)
	}
	if c2, err := connect(); err == nil {
		c2.Disconnect(0)
		return fail("the erased resident's device still logs in")
	}
	if code, _, _ := probeCall(ctx, t, "POST", "/api/v1/residents", map[string]any{"id": rid, "name": "Someone Else", "home_id": "h-erase-" + suffix}); code != http.StatusConflict {
		return fail("the erased resident's id was given to a new resident (HTTP %d)", code)
	}
	return probeResult{Pass: true, Detail: "after erasure: no alert, readings 404, device refused, id not reused"}
}
