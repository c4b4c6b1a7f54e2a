package app_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/carehub/carehub/internal/testenv"
)

// TestEmbeddedBrokerTLS: with CARE_MQTT_TLS_LISTEN and CARE_TLS_CERT_FILE/
// _KEY_FILE a device connects to the embedded broker over TLS, verifying
// the certificate, and its reading reaches InfluxDB; a plaintext MQTT
// client on the TLS port is refused and counted. The broker's payload
// limit follows CARE_MAX_PAYLOAD, and its denial says the configured size.
func TestEmbeddedBrokerTLS(t *testing.T) {
	in := testenv.SharedInflux(t)
	db := in.CreateDB(t)
	certs := testenv.GenerateCerts(t)
	trustCA(certs.CA)
	pool := x509.NewCertPool()
	pool.AddCert(certs.CA)
	a := startApp(t, env(t, in.URL, db, map[string]string{
		"CARE_MQTT_TLS_LISTEN": "127.0.0.1:0", "CARE_TLS_CERT_FILE": certs.CertFile, "CARE_TLS_KEY_FILE": certs.KeyFile,
		"CARE_MAX_PAYLOAD": "2048",
	}))
	base := "https://" + a.HTTPAddr() // the certificate makes the API HTTPS too
	if a.MQTTTLSAddr() == "" {
		t.Fatal("no TLS listener")
	}
	d := register(t, base, "wearable")
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("ssl://" + a.MQTTTLSAddr()).
		SetClientID(d.ID).SetUsername(d.ID).SetPassword(d.MQTT.Password).
		SetTLSConfig(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}).
		SetAutoReconnect(false).SetConnectTimeout(10 * time.Second))
	if tok := c.Connect(); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		t.Fatalf("device over TLS: %v", tok.Error())
	}
	defer c.Disconnect(50)
	ts := time.Now().Add(-time.Minute).UnixMilli()
	publish(t, c, d.MQTT.TopicPrefix+"telemetry", fmt.Appendf(nil, `{"ts":%d,"values":{"heart_rate":61}}`, ts))
	testenv.WaitFor(t, 20*time.Second, "the reading sent over TLS in InfluxDB", func() bool {
		return countPoints(t, in, db, "readings", "heart_rate", d.ID) == 1
	})

	// 3000 bytes is over CARE_MAX_PAYLOAD=2048: dropped at the broker.
	big := make([]byte, 3000)
	publish(t, c, d.MQTT.TopicPrefix+"telemetry", big)
	testenv.WaitFor(t, 10*time.Second, "payload_too_large counted", func() bool {
		return metricValue(t, base, `carehub_ingest_rejected_total{reason="payload_too_large"}`) >= 1
	})

	// Plain MQTT on the TLS port: the handshake fails, the refusal is counted.
	if err := tryConnect("tcp://"+a.MQTTTLSAddr(), d.ID, d.MQTT.Password); err == nil {
		t.Fatal("a plaintext client logged in on the TLS port")
	}
	testenv.WaitFor(t, 10*time.Second, "tls_handshake_failed counted", func() bool {
		return metricValue(t, base, `carehub_mqtt_refused_total{reason="tls_handshake_failed"}`) >= 1
	})
}
