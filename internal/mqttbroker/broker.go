// Package mqttbroker is carehub's embedded MQTT broker (contract §1), used
// when CARE_MQTT_URL is unset. It is mochi-mqtt with three additions: device
// authentication against the registry, a per-device topic ACL, and sessions,
// subscriptions and unacknowledged QoS 1 messages persisted in bbolt so that
// they survive a carehub restart.
package mqttbroker

import (
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/rs/zerolog"
	"go.etcd.io/bbolt"

	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/model"
)

// Authenticator checks a device's MQTT login; devices.Registry is one.
// CheckLogin returns "" for a good login, else the refusal's reason, each
// counted differently: model.ReasonUnknownDevice, model.ReasonDisabledDevice
// or model.ReasonAuthFailed.
type Authenticator interface {
	CheckLogin(deviceID, password string) (reason string)
}

// Limits. Each says why it has its value.
const (
	// The largest packet is Options.MaxPayload (CARE_MAX_PAYLOAD, contract
	// §1: 64 KiB by default) plus packetOverhead for the fixed header,
	// topic and MQTT 5 properties, so that a payload at the limit reaches
	// ingest. mochi allocates a packet's declared length before reading
	// it, so this is also what a connection that declares a huge length
	// can make the broker allocate: larger declarations close the
	// connection (packet_too_large) without allocating.
	//
	// Payloads between the limit and the packet limit are acknowledged
	// and dropped by the broker with a payload_too_large report (a device
	// must not resend them forever).

	// DefaultMaxConnections caps the broker's connections, logged in or
	// not: far above a district's fleet, far below what exhausts memory
	// (about 100 KiB each with a packet in flight).
	DefaultMaxConnections = 10000
	// DefaultMaxConnectionsPerAddr caps the connections from one address:
	// a home gateway or a care home's NAT holds tens of devices; a
	// source holding hundreds of half-open connections is an attack.
	DefaultMaxConnectionsPerAddr = 256
	// maxPendingAuth bounds the logins waiting for or running a password
	// check (bcrypt, bounded by the registry); a login that waits longer
	// than authWait is refused (auth_busy) and the device retries.
	maxPendingAuth = 256
	authWait       = 5 * time.Second
	// receiveMaximum is how many QoS 1 messages one client may have unacked
	// towards the broker; a gateway catching up after an outage sends many.
	receiveMaximum = 4096
	// maxInflight is how many QoS 1 messages the broker keeps per session,
	// sent or queued: for carehub's ingest session this is the buffer that
	// covers an ingest outage. MQTT packet ids are 16 bits, so no session can
	// hold more; beyond it mochi drops the message (counted in $SYS).
	maxInflight = 65535
	// maxWritesPending is the per-client queue of packets waiting to be
	// written to a connected client; a full queue drops the message. mochi
	// allocates it for every client at connect, 8 bytes a slot: 65,535
	// slots were 512 KiB per device and 880 MB of carehub's memory for
	// 1,000 connected devices (carebench ingest -embedded). Devices receive
	// only config messages, and with an Intake carehub's own session only
	// Last Wills, so a thousand is plenty.
	maxWritesPending = 1024
	// sessionExpiry bounds how long a disconnected persistent session (and
	// its queued messages) is kept: a week covers a long weekend outage of
	// a home gateway without keeping abandoned sessions forever.
	sessionExpiry = 7 * 24 * 3600
	// messageExpiry is how long a queued QoS 1 message may wait for its
	// subscriber (mochi's default is one day): as long as the session.
	messageExpiry = sessionExpiry
)

// Options configures the embedded broker.
type Options struct {
	// Listen is host:port; port 0 picks a free port (see Addr).
	Listen string
	// DataDir holds mqtt.db (bbolt): sessions, subscriptions, retained and
	// inflight messages. Empty keeps everything in memory only.
	DataDir string
	// ServiceUser and ServicePassword are carehub's own login: it may
	// publish and subscribe to anything, including $share/ filters. Empty
	// ServiceUser disables the service login.
	ServiceUser, ServicePassword string
	// Authenticator checks devices' passwords.
	Authenticator Authenticator
	// OnDenied is called (from the connection's goroutine; keep it cheap)
	// when a device is refused a login, a topic or a payload, with a reason
	// of model.RejectReasons. May be nil.
	OnDenied func(clientID, topic, reason string)
	// Intake, when set, takes every device message before the device is
	// acknowledged (ingest.Intake.Take), on the connection's goroutine and
	// in arrival order. It returns nil when there is nothing to store (the
	// message was rejected, and reported), else a confirm that returns nil
	// once the message is stored, or an error when it never will be
	// (carehub is stopping). The broker runs each connection's confirms in
	// order off the connection's goroutine, up to maxUnconfirmed at a time,
	// and sends the PUBACK once confirm returns nil; no PUBACK follows an
	// error, and the device sends the message again. A message taken is
	// not queued for subscribers. Without an Intake device messages reach
	// carehub through its subscription, as from an external broker.
	// contentType is the MQTT 5 content type ("" from a 3.1.1 device).
	Intake func(topic string, payload []byte, contentType string) (confirm func() error)
	// SyncWrites makes every bbolt write wait for fsync. Off by default:
	// the store then survives a carehub crash or restart but not a power
	// cut, and one fsync per QoS 1 message would cap the broker at a few
	// hundred messages per second on ordinary disks.
	SyncWrites bool
	// MaxPayload is the largest payload a device may publish
	// (CARE_MAX_PAYLOAD); 0 means the contract's 64 KiB. It also bounds
	// the packet size (plus packetOverhead).
	MaxPayload int
	// MaxConnections and MaxConnectionsPerAddr cap the connections, logged
	// in or not, in total and from one source address; 0 takes the
	// defaults, negative means no cap.
	MaxConnections, MaxConnectionsPerAddr int
	// OnRefused is called when a connection is refused or closed before a
	// device login could be reported under a device id (Refused*
	// reasons): for a counter. May be nil.
	OnRefused func(reason string)
	// ConnectTimeout bounds the time from accept to CONNECT; 0 means
	// DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// TLSListen, when set, is a second listener (host:port) that speaks
	// MQTT over TLS with TLSConfig; the same limits apply to it.
	TLSListen string
	TLSConfig *tls.Config
	Log       zerolog.Logger
}

// Broker is the running embedded broker.
type Broker struct {
	srv  *mqtt.Server
	tcp  *guardedListener
	tls  *guardedListener // nil without Options.TLSListen
	log  zerolog.Logger
	auth *authHook

	closeOnce sync.Once
}

// Start runs the broker and returns once it accepts connections.
func Start(o Options) (*Broker, error) {
	if o.Listen == "" {
		return nil, errors.New("mqttbroker: Listen is required (host:port)")
	}
	if o.Authenticator == nil {
		return nil, errors.New("mqttbroker: Authenticator is required")
	}
	if o.ServiceUser != "" && o.ServicePassword == "" {
		return nil, errors.New("mqttbroker: ServicePassword is required when ServiceUser is set")
	}
	if o.TLSListen != "" && o.TLSConfig == nil {
		return nil, errors.New("mqttbroker: TLSConfig is required with TLSListen")
	}
	if o.MaxPayload <= 0 {
		o.MaxPayload = model.MaxPayloadBytes
	}
	if o.MaxConnections == 0 {
		o.MaxConnections = DefaultMaxConnections
	}
	if o.MaxConnectionsPerAddr == 0 {
		o.MaxConnectionsPerAddr = DefaultMaxConnectionsPerAddr
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	log := o.Log.With().Str("component", "mqttbroker").Logger()
	refuse := func(reason string) {
		log.Debug().Str("reason", reason).Msg("mqtt connection refused")
		if o.OnRefused != nil {
			o.OnRefused(reason)
		}
	}
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = uint32(o.MaxPayload + packetOverhead)
	if o.MaxConnections > 0 {
		caps.MaximumClients = int64(o.MaxConnections)
	}
	caps.ReceiveMaximum = receiveMaximum
	caps.MaximumInflight = maxInflight
	caps.MaximumClientWritesPending = maxWritesPending
	caps.MaximumSessionExpiryInterval = sessionExpiry
	caps.MaximumMessageExpiryInterval = messageExpiry

	srv := mqtt.New(&mqtt.Options{
		Capabilities:           caps,
		Logger:                 newSlog(log),
		SysTopicResendInterval: 10,
	})
	ah := &authHook{opts: o, log: log, refuse: refuse, throttle: newLoginThrottle(time.Now), slots: make(chan struct{}, maxPendingAuth)}
	if err := srv.AddHook(ah, nil); err != nil {
		return nil, fmt.Errorf("mqttbroker auth hook: %w", err)
	}
	if o.DataDir != "" {
		if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("mqttbroker data dir: %w", err)
		}
		path := filepath.Join(o.DataDir, "mqtt.db")
		err := srv.AddHook(newBoltStore(), &bolt.Options{
			Path: path,
			Options: &bbolt.Options{
				// Another process holding the file is a second carehub on
				// the same data dir: fail fast instead of hanging.
				Timeout: 2 * time.Second,
				NoSync:  !o.SyncWrites,
			},
		})
		if err != nil {
			return nil, fmt.Errorf("mqttbroker store %s: %w", path, err)
		}
	}
	b := &Broker{srv: srv, log: log, auth: ah}
	listen := func(id, addr string, tlsConf *tls.Config) (*guardedListener, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("mqttbroker listen %s: %w", addr, err)
		}
		gl := newGuardedListener(id, ln, tlsConf, o.MaxConnections, o.MaxConnectionsPerAddr, o.ConnectTimeout, refuse)
		if err := srv.AddListener(gl); err != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("mqttbroker listen %s: %w", addr, err)
		}
		return gl, nil
	}
	var err error
	if b.tcp, err = listen("tcp", o.Listen, nil); err != nil {
		_ = srv.Close()
		return nil, err
	}
	if o.TLSListen != "" {
		if b.tls, err = listen("tls", o.TLSListen, o.TLSConfig); err != nil {
			_ = srv.Close()
			return nil, err
		}
	}
	if err := srv.Serve(); err != nil {
		_ = srv.Close()
		return nil, fmt.Errorf("mqttbroker serve: %w", err)
	}
	ev := log.Info().Str("addr", b.Addr()).Bool("persistent", o.DataDir != "").Int("max_packet_bytes", o.MaxPayload+packetOverhead)
	if b.tls != nil {
		ev = ev.Str("tls_addr", b.TLSAddr())
	}
	ev.Msg("embedded mqtt broker started")
	return b, nil
}

// Addr is the address the broker listens on (the real port when Listen had 0).
func (b *Broker) Addr() string { return b.tcp.Address() }

// TLSAddr is the TLS listener's address, "" without one.
func (b *Broker) TLSAddr() string {
	if b.tls == nil {
		return ""
	}
	return b.tls.Address()
}

// Disconnect closes a connected client's connection, e.g. after its device
// was disabled or its credentials rotated; it reports whether it was
// connected. The device's Last Will is published as for any dropped link.
func (b *Broker) Disconnect(clientID string) bool {
	cl, ok := b.srv.Clients.Get(clientID)
	if !ok || cl.Closed() {
		return false
	}
	_ = b.srv.DisconnectClient(cl, packets.ErrNotAuthorized)
	return true
}

// Close disconnects every client, waits for their goroutines and closes the
// store. Persistent sessions and their queued messages stay in the store.
// Close is safe to call more than once.
func (b *Broker) Close() error {
	var err error
	b.closeOnce.Do(func() { err = b.srv.Close() })
	return err
}

// authHook authenticates connections and enforces the contract's topic
// rules (§1): a device publishes only under care/v1/dev/{its id}/ to
// telemetry, event or status and reads only its own config; the service
// user may do anything.
type authHook struct {
	mqtt.HookBase
	opts     Options
	log      zerolog.Logger
	refuse   func(reason string)
	throttle *loginThrottle
	slots    chan struct{} // logins waiting for or running a password check
	ackers   sync.Map      // *mqtt.Client → *acker, while connected
}

func (h *authHook) ID() string { return "carehub-auth" }

func (h *authHook) Provides(b byte) bool {
	return b == mqtt.OnConnect || b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck || b == mqtt.OnPublish || b == mqtt.OnDisconnect
}

// OnPublish drops payloads over the contract's limit before they are queued
// for carehub: acknowledged to the device, reported, never stored. With an
// Intake, a device's message is handed to it and acknowledged only once
// stored, and is not queued for subscribers. mochi would send the PUBACK
// as soon as this hook returns, so a QoS 0 or 1 message is returned as
// rejected (mochi then sends nothing and queues nothing) and the
// connection's acker sends the PUBACK when the message is stored, while
// the connection reads on. QoS 2, which no device of the contract uses, is
// confirmed here, before mochi's PUBREC.
func (h *authHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if h.isService(cl) || cl.Net.Inline {
		return pk, nil
	}
	var confirm func() error
	if len(pk.Payload) > h.opts.MaxPayload {
		h.denied(cl.ID, pk.TopicName, model.ReasonTooLarge)
	} else if h.opts.Intake != nil {
		confirm = h.opts.Intake(pk.TopicName, pk.Payload, pk.Properties.ContentType)
	} else {
		return pk, nil
	}
	switch {
	case h.opts.Intake != nil && pk.FixedHeader.Qos < 2:
		// Behind the connection's earlier messages, so that its PUBACKs
		// go in the order of its PUBLISHes (a rejection's too).
		id := pk.PacketID
		if pk.FixedHeader.Qos == 0 {
			id = 0
		}
		h.ackerOf(cl).add(unconfirmed{packetID: id, confirm: confirm})
		return pk, packets.ErrRejectPacket
	case confirm != nil:
		if err := confirm(); err != nil {
			h.log.Debug().Err(err).Str("device_id", cl.ID).Msg("message not taken; the device will send it again")
			return pk, packets.ErrRejectPacket
		}
	}
	return pk, packets.CodeSuccessIgnore
}

// ackerOf is cl's acker, made at its first message.
func (h *authHook) ackerOf(cl *mqtt.Client) *acker {
	if a, ok := h.ackers.Load(cl); ok {
		return a.(*acker)
	}
	a, _ := h.ackers.LoadOrStore(cl, newAcker(cl))
	return a.(*acker)
}

// isService reports whether cl logged in as the service user. A device can
// never carry that username: connect requires a device's username to equal
// its client id and the service password to match.
func (h *authHook) isService(cl *mqtt.Client) bool {
	return h.opts.ServiceUser != "" && string(cl.Properties.Username) == h.opts.ServiceUser
}

func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	user := string(pk.Connect.Username)
	addr := remoteHost(cl.Net.Conn.RemoteAddr())
	if h.opts.ServiceUser != "" && user == h.opts.ServiceUser {
		// Not throttled: the check is cheap, the secret is long and
		// random, and a throttle here would let anyone on carehub's own
		// address lock carehub's ingest out.
		ok := subtle.ConstantTimeCompare(pk.Connect.Password, []byte(h.opts.ServicePassword)) == 1
		if !ok {
			h.log.Warn().Str("remote", addr).Msg("service login with a wrong password")
			h.refuse(RefusedServiceLogin)
		}
		return ok
	}
	// Contract §1: client id = username = device id.
	if user == "" || user != cl.ID || !catalog.ValidID(user) {
		h.log.Debug().Str("remote", addr).Msg("connect refused: username must equal client id and be a device id")
		h.refuse(RefusedBadLogin)
		return false
	}
	try, ok := h.throttle.begin(user, addr)
	if !ok {
		h.denied(user, "", model.ReasonLoginThrottled)
		return false
	}
	// The password check (bcrypt on a cache miss) waits for a slot; a
	// login that cannot get one soon is refused rather than queued without
	// bound.
	select {
	case h.slots <- struct{}{}:
	case <-time.After(authWait):
		h.throttle.undo(try) // not the device's failure
		h.denied(user, "", model.ReasonAuthBusy)
		return false
	}
	reason := h.opts.Authenticator.CheckLogin(user, string(pk.Connect.Password))
	<-h.slots
	if reason != "" {
		h.denied(user, "", reason)
		return false
	}
	h.throttle.succeeded(try)
	// mochi publishes a Last Will without an ACL check, so check it here: a
	// device may not leave a will on another device's topics.
	if pk.Connect.WillFlag && !devicePublishAllowed(user, pk.Connect.WillTopic) {
		h.denied(user, pk.Connect.WillTopic, model.ReasonWillNotAllowed)
		return false
	}
	return true
}

func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if h.isService(cl) {
		return true
	}
	if write {
		if devicePublishAllowed(cl.ID, topic) {
			return true
		}
		h.denied(cl.ID, topic, model.ReasonTopicNotAllowed)
		return false
	}
	// Reads: the subscribe filter, and each delivery, must be exactly the
	// device's own config topic (no wildcards, no $share).
	if isDeviceTopic(cl.ID, topic, model.TopicConfig) {
		return true
	}
	h.denied(cl.ID, topic, model.ReasonSubscribeNotAllowed)
	return false
}

func (h *authHook) denied(clientID, topic, reason string) {
	h.log.Debug().Str("device_id", clientID).Str("topic", topic).Str("reason", reason).Msg("mqtt access denied")
	if h.opts.OnDenied != nil {
		h.opts.OnDenied(clientID, topic, reason)
	}
}

// devicePublishAllowed: care/v1/dev/{id}/telemetry|event|status (contract §1).
func devicePublishAllowed(id, topic string) bool {
	return isDeviceTopic(id, topic, model.TopicTelemetry) ||
		isDeviceTopic(id, topic, model.TopicEvent) ||
		isDeviceTopic(id, topic, model.TopicStatus)
}

// isDeviceTopic reports topic == care/v1/dev/{id}/{kind} without allocating:
// it runs for every message a device publishes.
func isDeviceTopic(id, topic, kind string) bool {
	p := model.TopicPrefix
	return len(topic) == len(p)+len(id)+1+len(kind) &&
		topic[:len(p)] == p &&
		topic[len(p):len(p)+len(id)] == id &&
		topic[len(p)+len(id)] == '/' &&
		topic[len(p)+len(id)+1:] == kind
}
