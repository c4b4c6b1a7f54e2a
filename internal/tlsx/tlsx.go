// Package tlsx loads carehub's TLS material from the CARE_TLS_* files: the
// server certificate the HTTP API, the embedded NATS server and the embedded
// MQTT broker's TLS listener present, and the CA carehub trusts for its own
// outgoing tls:// and https:// connections.
package tlsx

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// MinVersion is TLS 1.2: older versions have known attacks and every client
// carehub serves (phones backends, devices, browsers) speaks 1.2.
const MinVersion = tls.VersionTLS12

// Server loads a certificate and its key (PEM) into a server configuration.
func Server(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate %s with key %s: %w", certFile, keyFile, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: MinVersion}, nil
}

// Client returns a client configuration that trusts the CAs in caFile (PEM)
// in addition to the system's; an empty caFile trusts the system's only.
func Client(caFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: MinVersion}
	if caFile == "" {
		return cfg, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("TLS CA file %s: %w", caFile, err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("TLS CA file %s holds no PEM certificate", caFile)
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// Pinned returns a client configuration that accepts exactly the leaf
// certificate of server: carehub's connection to its own embedded NATS
// server over loopback, whose certificate need not name 127.0.0.1.
func Pinned(server *tls.Config) (*tls.Config, error) {
	if server == nil || len(server.Certificates) == 0 || len(server.Certificates[0].Certificate) == 0 {
		return nil, errors.New("tlsx: no server certificate to pin")
	}
	want := server.Certificates[0].Certificate[0]
	return &tls.Config{
		MinVersion: MinVersion,
		// Hostname and chain checks are replaced by the byte-for-byte
		// comparison below, which is stricter.
		InsecureSkipVerify: true, //nolint:gosec // pinned in VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, want) {
				return errors.New("tlsx: the server's certificate is not carehub's own")
			}
			return nil
		},
	}, nil
}
