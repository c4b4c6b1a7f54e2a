package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Probes of the embedded MQTT broker and device registration (issue 9,
// items 2 and 3).
func init() {
	registerProbe("mqtt-oversized-connect", probeOversizedConnect)
	registerProbe("dynsec-account-takeover", probeAccountTakeover)
}

// probeOversizedConnect holds hundreds of connections that declare a
// CONNECT of about 2 MiB and never send it, and others that send nothing,
// and checks that meanwhile a registered device still logs in (from
// another address), /healthz answers, carehub's resident memory grows by
// less than 64 MiB, and the held connections are closed by the CONNECT
// deadline.
func probeOversizedConnect(ctx context.Context, t probeTarget) probeResult {
	const declared, silent = 300, 300
	d, err := probeRegister(ctx, t, fmt.Sprintf("probe-r-%d", time.Now().UnixNano()), "", "wearable")
	dev, pw := d.id, d.password
	if err != nil {
		return probeResult{Detail: "registering a device: " + err.Error()}
	}
	before := currentRSSMB(t.PID)
	// CONNECT with a remaining length of 2,000,000 (variable-length bytes).
	header := []byte{0x10, 0x80, 0x89, 0x7a}
	var held []net.Conn
	defer func() {
		for _, c := range held {
			_ = c.Close()
		}
	}()
	for i := range declared + silent {
		// Spread over two loopback addresses, as two attacking hosts.
		c, err := dialFrom(ctx, fmt.Sprintf("127.0.0.%d", 10+i%2), t.MQTTAddr)
		if err != nil {
			continue // refused at once: a cap held
		}
		held = append(held, c)
		if i < declared {
			_, _ = c.Write(header)
		}
	}
	if err := probeLogin(t.MQTTAddr, "127.0.0.20", dev, pw); err != nil {
		return probeResult{Detail: fmt.Sprintf("with %d connections held, a registered device could not log in: %v", len(held), err)}
	}
	if err := healthz(ctx, t.HTTP); err != nil {
		return probeResult{Detail: "with the connections held, /healthz: " + err.Error()}
	}
	grew := currentRSSMB(t.PID) - before
	if grew > 64 {
		return probeResult{Detail: fmt.Sprintf("carehub's memory grew by %.0f MiB for %d held connections", grew, len(held))}
	}
	// Every held connection must be closed by the broker within the 10 s
	// CONNECT deadline (plus slack).
	deadline := time.Now().Add(15 * time.Second)
	open := 0
	buf := make([]byte, 1)
	for _, c := range held {
		_ = c.SetReadDeadline(deadline)
		if _, err := c.Read(buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				open++
			}
		}
	}
	if open > 0 {
		return probeResult{Detail: fmt.Sprintf("%d of %d connections without a CONNECT were still open after 15 s", open, len(held))}
	}
	return probeResult{Pass: true, Detail: fmt.Sprintf("%d of %d half-open/oversized connections accepted, all closed by the deadline; a device logged in, /healthz ok, RSS +%.0f MiB",
		len(held), declared+silent, grew)}
}

// probeAccountTakeover registers devices whose ids are carehub's own broker
// logins and client ids: the embedded broker's service user
// (carehub-{instance}) and the ingest sessions' client ids
// ({instance}-ingest-0). Each must be refused (409 or 422), never given a
// password. The external-Mosquitto half (an operator's account is not
// adopted) is TestDynsecRefusesTakeover; the probe harness runs no
// Mosquitto.
func probeAccountTakeover(ctx context.Context, t probeTarget) probeResult {
	for _, id := range []string{"carehub-" + t.InstanceID, t.InstanceID + "-ingest-0", t.InstanceID + "-dynsec"} {
		_, err := probeRegister(ctx, t, fmt.Sprintf("probe-r-%d", time.Now().UnixNano()), id, "wearable")
		if err == nil {
			return probeResult{Detail: fmt.Sprintf("a device with carehub's own broker id %q was registered and given a password", id)}
		}
		var se *statusError
		if !errors.As(err, &se) || (se.code != http.StatusConflict && se.code != http.StatusUnprocessableEntity) {
			return probeResult{Detail: fmt.Sprintf("registering %q: %v, want 409 or 422", id, err)}
		}
	}
	return probeResult{Pass: true, Detail: "device ids of carehub's service user and client ids refused (409)"}
}

func healthz(ctx context.Context, base string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}

func dialFrom(ctx context.Context, local, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 2 * time.Second}
	return d.DialContext(ctx, "tcp", addr)
}

// probeLogin logs in once as a device from the loopback address local.
func probeLogin(addr, local, id, pw string) error {
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetUsername(id).SetPassword(pw).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(10 * time.Second).
		SetCustomOpenConnectionFn(func(u *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
			return dialFrom(context.Background(), local, u.Host)
		}))
	tok := c.Connect()
	if !tok.WaitTimeout(15 * time.Second) {
		return fmt.Errorf("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return err
	}
	c.Disconnect(50)
	return nil
}

// currentRSSMB reads a process's current resident set (VmRSS) in MiB.
func currentRSSMB(pid int) float64 {
	var kb float64
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range bytes.Split(b, []byte("\n")) {
			if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
				_, _ = fmt.Sscan(string(bytes.TrimSuffix(bytes.TrimSpace(v), []byte("kB"))), &kb)
			}
		}
	}
	return kb / 1024
}
