package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"

	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/ingest"
	"github.com/carehub/carehub/internal/dynsec"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/mqttbroker"
)

// broker is how carehub reaches the MQTT broker devices connect to.
type broker struct {
	url      string             // where devices and ingest connect
	embedded *mqttbroker.Broker // nil with an external broker
	// user and password are carehub's own (ingest's) login.
	user, password string
}

// startMQTT readies the MQTT broker for devices: with
// CARE_MQTT_PROVISION=dynsec it provisions devices' credentials into the
// external Mosquitto; without CARE_MQTT_URL it starts the embedded broker,
// which hands devices' messages to intake (refusing them once intakeCtx ends). Either way the registry then
// refuses device ids that name one of carehub's own logins.
func (a *App) startMQTT(ctx, intakeCtx context.Context, clientTLS *tls.Config, reg *devices.Registry, intake *ingest.Intake) (_ *broker, stop func(context.Context), err error) {
	cfg, log := a.Config, a.Log
	var st stack
	defer st.unwindIf(&err)
	b := &broker{url: cfg.MQTTURL, user: cfg.MQTTUsername, password: cfg.MQTTPassword}

	if cfg.MQTTProvision == "dynsec" {
		// Devices' credentials reach the external Mosquitto as they are
		// issued; carehub's own user gets the service role first, so that
		// ingest may subscribe.
		ds, err := dynsec.Dial(ctx, dynsec.Options{BrokerURL: cfg.MQTTURL, Username: cfg.MQTTDynsecUsername, Password: cfg.MQTTDynsecPassword,
			ServiceUser: b.user, ServicePassword: b.password,
			ClientID: cfg.InstanceID + "-dynsec", ShareGroup: cfg.MQTTShareGroup, TLS: clientTLS, Log: log.With().Str("component", "dynsec").Logger()})
		if err != nil {
			return nil, nil, err
		}
		st.push(func(context.Context) { ds.Close() })
		if err := ds.EnsureService(ctx); err != nil {
			return nil, nil, err
		}
		reg.MirrorAccounts(ds)
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
			// acknowledges it (ingest.Intake.Ingest).
			Intake: func(topic string, payload []byte, contentType string) error {
				return intake.Ingest(intakeCtx, topic, payload, contentType)
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

// reservedDeviceIDs is the registry's test for device ids that name one of
// carehub's own broker logins or client ids: the ingest (service) user, the
// dynsec control user, and the client ids instances derive from
// CARE_INSTANCE_ID ({instance}-ingest-{n}, {instance}-dynsec). The derived
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
		if strings.HasSuffix(id, "-dynsec") {
			return true
		}
		if i := strings.LastIndex(id, "-ingest-"); i >= 0 {
			n := id[i+len("-ingest-"):]
			return n != "" && strings.Trim(n, "0123456789") == ""
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
