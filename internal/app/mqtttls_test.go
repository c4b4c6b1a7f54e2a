package app_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/carehub/carehub/internal/testenv"
)

// selfSigned writes a certificate for 127.0.0.1 and its key (PEM) into a
// temporary directory and returns their paths and a pool trusting it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "carehub test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestEmbeddedBrokerTLS: with CARE_MQTT_TLS_LISTEN and CARE_TLS_CERT_FILE/
// _KEY_FILE a device connects to the embedded broker over TLS, verifying
// the certificate, and its reading reaches InfluxDB; a plaintext MQTT
// client on the TLS port is refused and counted. The broker's payload
// limit follows CARE_MAX_PAYLOAD, and its denial says the configured size.
func TestEmbeddedBrokerTLS(t *testing.T) {
	in := testenv.SharedInflux(t)
	db := in.CreateDB(t)
	certFile, keyFile, pool := selfSigned(t)
	a := startApp(t, env(t, in.URL, db, map[string]string{
		"CARE_MQTT_TLS_LISTEN": "127.0.0.1:0", "CARE_TLS_CERT_FILE": certFile, "CARE_TLS_KEY_FILE": keyFile,
		"CARE_MAX_PAYLOAD": "2048",
	}))
	base := "http://" + a.HTTPAddr()
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
