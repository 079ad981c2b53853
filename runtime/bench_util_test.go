package runtime_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/astarte-gen/astarte-gen/runtime/pairing"
)

// rawConnect connects a paho client with the TLS and MQTT settings of the
// runtime (runtime/conn.go), letting paho dial.
func rawConnect(cert tls.Certificate, broker, clientID string, roots *x509.CertPool) (mqtt.Client, error) {
	u, err := url.Parse(broker)
	if err != nil {
		return nil, err
	}
	opts := mqtt.NewClientOptions().
		AddBroker(broker).
		SetClientID(clientID).
		SetProtocolVersion(4).
		SetCleanSession(false).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetResumeSubs(false).
		SetKeepAlive(30 * time.Second).
		SetConnectTimeout(30 * time.Second).
		SetWriteTimeout(5 * time.Second).
		SetOrderMatters(true).
		SetTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots, ServerName: u.Hostname(), Certificates: []tls.Certificate{cert}})
	c := mqtt.NewClient(opts)
	if err := rawWait(c.Connect()); err != nil {
		return nil, err
	}
	return c, nil
}

// rawWait waits for a paho token (bounded: a token can outlive its
// connection).
func rawWait(tok mqtt.Token) error {
	if !tok.WaitTimeout(time.Minute) {
		return fmt.Errorf("paho: no answer in a minute")
	}
	return tok.Error()
}

// envInt reads a positive integer from the environment, or def.
func envInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return v
}

// benchDeviceID returns a new random device ID.
func benchDeviceID(b *testing.B) string {
	id, err := pairing.RandomDeviceID()
	if err != nil {
		b.Fatal(err)
	}
	return id
}
