package wire

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/sim"
)

// ErrNotConnected is returned for a device whose connection is down.
var ErrNotConnected = errors.New("device not connected")

// opTimeout bounds a connect or a PUBACK wait.
const opTimeout = 10 * time.Second

// Fleet holds one MQTT connection per device, as real devices do: a device
// may publish only under its own prefix (contract §1), so with per-device
// ACLs connections cannot be shared. Each paho client runs a few goroutines;
// a few thousand devices are fine, beyond that use load mode's gateway.
type Fleet struct {
	broker string
	creds  func(deviceID string) (user, pass string)
	log    zerolog.Logger

	mu    sync.Mutex
	conns map[string]*devConn
}

type devConn struct {
	client mqtt.Client
	mu     sync.Mutex
	raw    net.Conn // the TCP connection, to kill it without DISCONNECT
}

// NewFleet returns a fleet connecting to broker (tcp://host:port). creds
// gives each device's username and password; an empty username connects
// as the device id without a password (a broker allowing anonymous access).
func NewFleet(broker string, creds func(deviceID string) (user, pass string), log zerolog.Logger) *Fleet {
	return &Fleet{broker: broker, creds: creds, log: log, conns: map[string]*devConn{}}
}

// DeviceOptions are paho options for a device: client id = username = device
// id, and its Last Will {"online":false} retained QoS 1 on its status topic
// (contract §1).
func DeviceOptions(broker, deviceID, user, pass string) *mqtt.ClientOptions {
	if user == "" {
		user = deviceID
	}
	o := mqtt.NewClientOptions().AddBroker(broker).
		SetClientID(deviceID).SetUsername(user).SetPassword(pass).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetKeepAlive(30*time.Second).SetConnectTimeout(opTimeout).SetWriteTimeout(opTimeout).
		SetOrderMatters(false).
		SetBinaryWill(model.DeviceTopic(deviceID, model.TopicStatus), sim.WillPayload, 1, true)
	return o
}

// Connect opens the device's connection unless it is open.
func (f *Fleet) Connect(deviceID string) error {
	f.mu.Lock()
	if c, ok := f.conns[deviceID]; ok && c.client.IsConnectionOpen() {
		f.mu.Unlock()
		return nil
	}
	f.mu.Unlock()
	user, pass := f.creds(deviceID)
	dc := &devConn{}
	o := DeviceOptions(f.broker, deviceID, user, pass)
	o.SetCustomOpenConnectionFn(func(u *url.URL, opts mqtt.ClientOptions) (net.Conn, error) {
		if u.Scheme != "tcp" && u.Scheme != "mqtt" {
			return nil, fmt.Errorf("homesim speaks plain tcp:// to the broker, not %s://", u.Scheme)
		}
		conn, err := (&net.Dialer{Timeout: opts.ConnectTimeout}).Dial("tcp", u.Host)
		if err != nil {
			return nil, err
		}
		dc.mu.Lock()
		dc.raw = conn
		dc.mu.Unlock()
		return conn, nil
	})
	dc.client = mqtt.NewClient(o)
	tok := dc.client.Connect()
	if !tok.WaitTimeout(opTimeout) {
		dc.client.Disconnect(0)
		return fmt.Errorf("connect %s: timed out", deviceID)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("connect %s: %w", deviceID, err)
	}
	f.mu.Lock()
	f.conns[deviceID] = dc
	f.mu.Unlock()
	return nil
}

func (f *Fleet) conn(deviceID string) (*devConn, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.conns[deviceID]
	return c, ok
}

// Publish sends one QoS 1 message for the device and waits for its PUBACK,
// so a simulated device never has more than one message in flight.
func (f *Fleet) Publish(deviceID, topic string, payload []byte, retained bool) error {
	c, ok := f.conn(deviceID)
	if !ok {
		return ErrNotConnected
	}
	tok := c.client.Publish(topic, 1, retained, payload)
	if !tok.WaitTimeout(opTimeout) {
		return fmt.Errorf("publish %s: no PUBACK in %s", topic, opTimeout)
	}
	return tok.Error()
}

// Drop closes the device's TCP connection without an MQTT DISCONNECT, as a
// device losing power does, so the broker publishes its Last Will
// [MQTT-3.1.2-8].
func (f *Fleet) Drop(deviceID string) error {
	f.mu.Lock()
	c, ok := f.conns[deviceID]
	delete(f.conns, deviceID)
	f.mu.Unlock()
	if !ok {
		return ErrNotConnected
	}
	c.mu.Lock()
	raw := c.raw
	c.mu.Unlock()
	if raw == nil {
		return ErrNotConnected
	}
	err := raw.Close()
	// The socket is gone; this only stops paho's goroutines, nothing reaches
	// the broker.
	c.client.Disconnect(0)
	return err
}

// Connected counts the open device connections.
func (f *Fleet) Connected() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.conns)
}

// Close shuts every device down in order: status {"online":false} retained,
// then DISCONNECT, so no Last Will fires for a deliberate stop. It gives up
// waiting when ctx ends.
func (f *Fleet) Close(ctx context.Context) {
	f.mu.Lock()
	conns := f.conns
	f.conns = map[string]*devConn{}
	f.mu.Unlock()
	for id, c := range conns {
		if ctx.Err() == nil {
			tok := c.client.Publish(model.DeviceTopic(id, model.TopicStatus), 1, true, sim.WillPayload)
			tok.WaitTimeout(time.Second)
		}
		c.client.Disconnect(100)
	}
}
