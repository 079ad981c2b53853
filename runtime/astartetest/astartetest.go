// Package astartetest runs a fake Astarte in-process for tests, ours and our
// users': an HTTPS Pairing API, an MQTT broker with mutual TLS and
// per-device ACL, and the server-side behaviour of Astarte's data updater
// (introspection, emptyCache, purge lists, decoding device data against the
// installed interfaces, forced disconnects on invalid data).
package astartetest

import (
	"testing"

	"github.com/astarte-gen/astarte-gen/runtime"
	"github.com/astarte-gen/astarte-gen/runtime/model"
)

// DefaultRealm is the realm of a fake Astarte.
const DefaultRealm = "test"

// Astarte is a running fake Astarte. Its two halves live in their own files:
// pairingSide (pairing.go: Pairing API and device registry) and brokerSide
// (broker.go, server.go: MQTT broker and server-side data handling).
type Astarte struct {
	realm  string
	ca     *CA
	ifaces map[string]*model.Interface
	pairingSide
	brokerSide
	faults faults
}

// Start starts a fake Astarte with the given interfaces installed, for use
// outside tests (examples, demos). Stop it with Close.
func Start(ifaces ...*model.Interface) (*Astarte, error) {
	return StartWith(Options{}, ifaces...)
}

// Options configures StartWith.
type Options struct {
	// PairingAddr and BrokerAddr are the host:port the Pairing API (HTTPS)
	// and the broker (MQTT over mutual TLS) listen on; empty means a free
	// port on 127.0.0.1.
	PairingAddr, BrokerAddr string
}

// StartWith is Start with options.
func StartWith(opts Options, ifaces ...*model.Interface) (*Astarte, error) {
	ca, err := NewCA()
	if err != nil {
		return nil, err
	}
	a := &Astarte{realm: DefaultRealm, ca: ca, ifaces: map[string]*model.Interface{}}
	a.addr, a.pairingAddr = opts.BrokerAddr, opts.PairingAddr
	for _, i := range ifaces {
		a.ifaces[i.Name] = i
	}
	if err := a.startBroker(); err != nil {
		return nil, err
	}
	if err := a.startPairing(); err != nil {
		a.stopBroker()
		return nil, err
	}
	return a, nil
}

// New starts a fake Astarte for a test and stops it when the test ends. It
// fails the test if anything cannot start.
func New(t testing.TB, ifaces ...*model.Interface) *Astarte {
	t.Helper()
	a, err := Start(ifaces...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}

// Close stops the Pairing API and the broker.
func (a *Astarte) Close() {
	a.stopPairing()
	a.stopBroker()
}

// Realm returns the realm name.
func (a *Astarte) Realm() string { return a.realm }

// CA returns the certificate authority of the Pairing API and broker.
func (a *Astarte) CA() *CA { return a.ca }

// DeviceConfig registers deviceID unless it is registered already and
// returns a runtime.Config that connects it to this Astarte: realm, secret,
// pairing URL, root CAs. It is idempotent: every call for a device returns
// the same secret, before and after pairing. The caller adds a store
// directory and whatever else it needs.
func (a *Astarte) DeviceConfig(deviceID string) (runtime.Config, error) {
	secret, err := a.registeredSecret(deviceID)
	if err != nil {
		return runtime.Config{}, err
	}
	return runtime.Config{
		Realm:             a.realm,
		DeviceID:          deviceID,
		CredentialsSecret: secret,
		PairingURL:        a.PairingURL(),
		RootCAs:           a.ca.Pool(),
	}, nil
}
