package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/ingest"
	"github.com/carehub/carehub/internal/dynsec"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/mqttbroker"
	"github.com/carehub/carehub/internal/redact"
)

// broker is how carehub reaches the MQTT brokers devices connect to.
type broker struct {
	url      string             // where devices and ingest connect: the first of urls
	urls     []string           // every broker (CARE_MQTT_URL's list); ingest subscribes to each
	embedded *mqttbroker.Broker // nil with an external broker
	// user and password are carehub's own (ingest's) login.
	user, password string
}

// startMQTT readies the MQTT brokers for devices: with
// CARE_MQTT_PROVISION=dynsec it provisions devices' credentials into every
// external Mosquitto of CARE_MQTT_URL; without CARE_MQTT_URL it starts the embedded broker,
// which hands devices' messages to intake (refusing them once intakeCtx ends). Either way the registry then
// refuses device ids that name one of carehub's own logins.
func (a *App) startMQTT(ctx, intakeCtx context.Context, clientTLS *tls.Config, reg *devices.Registry, intake *ingest.Intake) (_ *broker, stop func(context.Context), err error) {
	cfg, log := a.Config, a.Log
	var st stack
	defer st.unwindIf(&err)
	b := &broker{urls: cfg.MQTTURLs(), user: cfg.MQTTUsername, password: cfg.MQTTPassword}
	if len(b.urls) > 0 {
		b.url = b.urls[0]
	}
	if len(b.urls) > 1 {
		redacted := make([]string, len(b.urls))
		for i, u := range b.urls {
			redacted[i] = redact.URL(u)
		}
		log.Info().Strs("brokers", redacted).Msg("mqtt: subscribing to several brokers")
	}

	if cfg.MQTTProvision == "dynsec" {
		// Devices' credentials reach every external Mosquitto as they are
		// issued, since a device may connect to any of them; carehub's own
		// user gets the service role first, so that ingest may subscribe.
		var accounts dynsec.Brokers
		for k, u := range b.urls {
			dlog := log.With().Str("component", "dynsec").Logger()
			if len(b.urls) > 1 {
				dlog = dlog.With().Str("broker", redact.URL(u)).Logger()
			}
			ds, err := dynsec.Dial(ctx, dynsec.Options{BrokerURL: u, Username: cfg.MQTTDynsecUsername, Password: cfg.MQTTDynsecPassword,
				ServiceUser: b.user, ServicePassword: b.password,
				ClientID: dynsecClientID(cfg.InstanceID, k), ShareGroup: cfg.MQTTShareGroup, TLS: clientTLS, Log: dlog,
				// A disable this broker missed while it was away takes
				// effect when it is back, as the others' did.
				OnReconnect: func(ds *dynsec.Client) { syncDisabledAt(reg, ds, dlog) }})
			if err != nil {
				return nil, nil, b.naming(k, err)
			}
			st.push(func(context.Context) { ds.Close() })
			if err := ds.EnsureService(ctx); err != nil {
				return nil, nil, b.naming(k, err)
			}
			accounts = append(accounts, ds)
		}
		if len(accounts) == 1 {
			reg.MirrorAccounts(accounts[0])
		} else {
			reg.MirrorAccounts(accounts)
		}
		if err := reg.SyncDisabled(ctx); err != nil {
			log.Warn().Err(err).Msg("disabled devices not all disabled at the broker; the next start tries again")
		}
	}

	if cfg.EmbeddedMQTT() {
		if b.user == "" {
			b.user, b.password = "carehub-"+cfg.InstanceID, randomSecret()
		}
		var tlsConf *tls.Config
		if cfg.MQTTTLSListen != "" {
			cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
			if err != nil {
				return nil, nil, fmt.Errorf("mqtt tls: %w", err)
			}
			tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		}
		refused := a.Metrics.Counter("carehub_mqtt_refused_total", "Connections the embedded MQTT broker refused or closed before a device login, by reason.", "reason")
		mb, err := mqttbroker.Start(mqttbroker.Options{
			Listen: cfg.MQTTListen, DataDir: cfg.DataDir, ServiceUser: b.user, ServicePassword: b.password,
			Authenticator: reg,
			OnDenied: func(clientID, topic, reason string) {
				intake.Reject(clientID, topic, "mqtt", reason, brokerDenialDetail(reason, topic, cfg.MaxPayload))
			},
			OnRefused:  func(reason string) { refused.With(reason).Inc() },
			MaxPayload: cfg.MaxPayload, MaxConnections: cfg.MQTTMaxConnections, MaxConnectionsPerAddr: cfg.MQTTMaxConnectionsPerAddr,
			TLSListen: cfg.MQTTTLSListen, TLSConfig: tlsConf,
			// In-process, a device's message is stored before the broker
			// acknowledges it. Its batch is hurried, as a device may wait
			// for each acknowledgement before it sends the next message.
			Intake: func(topic string, payload []byte, contentType string) func() error {
				pd := intake.Take(intakeCtx, topic, payload, contentType)
				if pd == nil {
					return nil // rejected: reported, nothing to store
				}
				pd.Hurry()
				return func() error { return pd.Confirm(intakeCtx) }
			},
			Log: log.With().Str("component", "mqtt-broker").Logger(),
		})
		if err != nil {
			return nil, nil, err
		}
		b.embedded, b.url = mb, "tcp://"+mb.Addr()
		st.push(func(context.Context) { _ = mb.Close() })
	}

	reg.ReserveIDs(reservedDeviceIDs(b.user, cfg.MQTTDynsecUsername))
	return b, st.stop, nil
}

// naming prefixes err with broker k's URL (without a password) when there
// are several brokers.
func (b *broker) naming(k int, err error) error {
	if len(b.urls) < 2 {
		return err
	}
	return fmt.Errorf("broker %s: %w", redact.URL(b.urls[k]), err)
}

// dynsecClientID names the control connection to broker k: broker 0 keeps
// a single broker's {instance}-dynsec.
func dynsecClientID(instance string, k int) string {
	if k == 0 {
		return instance + "-dynsec"
	}
	return instance + "-dynsec-" + strconv.Itoa(k)
}

// syncDisabledTimeout bounds one broker's catching up after a reconnect.
const syncDisabledTimeout = 2 * time.Minute

// syncDisabledAt disables at one broker every device disabled in the
// registry: devices.Registry.SyncDisabled for a broker that was away
// while the others took a disable.
func syncDisabledAt(reg *devices.Registry, ds *dynsec.Client, log zerolog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), syncDisabledTimeout)
	defer cancel()
	for _, d := range reg.Devices(func(d devices.Device) bool { return d.Disabled }) {
		err := ds.SetDeviceEnabled(ctx, d.ID, false)
		if errors.Is(err, devices.ErrAccountTaken) {
			continue // not carehub's account: nothing of carehub's to disable
		}
		if err != nil {
			// The broker is likely gone again: its next reconnect, or the
			// next start, goes through the list again.
			log.Warn().Err(err).Str("device_id", d.ID).Msg("disabled devices not all disabled at the reconnected broker; its next reconnect or start tries again")
			return
		}
	}
}

// reservedDeviceIDs is the registry's test for device ids that name one of
// carehub's own broker logins or client ids: the ingest (service) user, the
// dynsec control user, and the client ids instances derive from
// CARE_INSTANCE_ID ({instance}-ingest-{n}, {instance}-ingest-events,
// {instance}-ingest-events-{k}, {instance}-dynsec, {instance}-dynsec-{k}:
// mqttsub.ClientID and dynsecClientID). The derived
// ids are reserved for every instance, not only this one, because instances
// share the broker and the registry. A device registered with one could
// log in as carehub, or take over its session (the broker closes the older
// connection of a client id).
func reservedDeviceIDs(users ...string) func(id string) bool {
	return func(id string) bool {
		for _, u := range users {
			if u != "" && id == u {
				return true
			}
		}
		if strings.HasSuffix(id, "-dynsec") || strings.HasSuffix(id, "-ingest-events") {
			return true
		}
		for _, infix := range []string{"-ingest-", "-ingest-events-", "-dynsec-"} {
			if i := strings.LastIndex(id, infix); i >= 0 {
				if n := id[i+len(infix):]; n != "" && strings.Trim(n, "0123456789") == "" {
					return true
				}
			}
		}
		return false
	}
}

// brokerDenialDetail explains, for the device maker, what the embedded
// broker refused.
func brokerDenialDetail(reason, topic string, maxPayload int) string {
	switch reason {
	case model.ReasonUnknownDevice:
		return "login refused: the device id is not registered (POST /api/v1/devices)"
	case model.ReasonDisabledDevice:
		return "login refused: the device is disabled"
	case model.ReasonAuthFailed:
		return "login refused: wrong password for this device id"
	case model.ReasonTooLarge:
		return fmt.Sprintf("payload larger than %d bytes (CARE_MAX_PAYLOAD) on %s: dropped", maxPayload, topic)
	case model.ReasonLoginThrottled:
		return "login refused without a password check: too many failed logins of this id from this address, or from this address, in the last minute"
	case model.ReasonAuthBusy:
		return "login refused: too many password checks waiting; the device should retry with backoff"
	case model.ReasonSubscribeNotAllowed:
		return "subscribe to " + topic + " refused: a device reads only care/v1/dev/{its id}/config"
	case model.ReasonWillNotAllowed:
		return "Last Will on " + topic + " refused: it must be the device's own status topic"
	}
	return "publish to " + topic + " refused: a device publishes only under care/v1/dev/{its id}/"
}
