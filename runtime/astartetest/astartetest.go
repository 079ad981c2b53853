// Package astartetest runs a fake Astarte in-process for tests, ours and our
// users': an HTTPS Pairing API, an MQTT broker with mutual TLS and
// per-device ACL, and the server-side behaviour of Astarte's data updater
// (introspection, emptyCache, purge lists, decoding device data against the
// installed interfaces, forced disconnects on invalid data).
package astartetest

import (
	"testing"

	"github.com/astarte-gen/astarte-gen/runtime"
)

// DefaultRealm is the realm of a fake Astarte made by New.
const DefaultRealm = "test"

// Astarte is a running fake Astarte. Its two halves live in their own files:
// pairingSide (pairing.go: Pairing API and device registry) and brokerSide
// (broker.go: MQTT broker and server-side data handling).
type Astarte struct {
	t           testing.TB
	realm       string
	ca          *CA
	ifaces      map[string]*runtime.Interface
	pairingSide //lint:ignore U1000 filled in by the pairing work
	brokerSide  //lint:ignore U1000 filled in by the broker work
}

// New starts a fake Astarte with the given interfaces installed and stops it
// when the test ends. It fails the test if anything cannot start.
func New(t testing.TB, ifaces ...*runtime.Interface) *Astarte {
	t.Helper()
	ca, err := NewCA()
	if err != nil {
		t.Fatal(err)
	}
	a := &Astarte{t: t, realm: DefaultRealm, ca: ca, ifaces: map[string]*runtime.Interface{}}
	for _, i := range ifaces {
		a.ifaces[i.Name] = i
	}
	if err := a.startBroker(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.stopBroker)
	if err := a.startPairing(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.stopPairing)
	return a
}

// Realm returns the realm name.
func (a *Astarte) Realm() string { return a.realm }

// CA returns the certificate authority of the Pairing API and broker.
func (a *Astarte) CA() *CA { return a.ca }
