package astartetest_test

import (
	"crypto/tls"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/astarte-gen/astarte-gen/internal/wire"
	"github.com/astarte-gen/astarte-gen/runtime/astartetest"
	"github.com/astarte-gen/astarte-gen/runtime/model"
)

var values = &model.Interface{
	Name: "org.astartegen.test.Values", Major: 1, Minor: 0, Type: model.Datastream, Ownership: model.OwnershipDevice,
	Mappings: []model.Mapping{{Endpoint: "/v", Type: model.Integer, Reliability: model.Guaranteed}},
}

const (
	devA = "AAAAAAAAAAAAAAAAAAAAAA"
	devB = "BBBBBBBBBBBBBBBBBBBBBA"
)

func dial(a *astartetest.Astarte, clientID string, certs ...tls.Certificate) (mqtt.Client, error) {
	return dialClean(a, clientID, false, certs...)
}

func dialClean(a *astartetest.Astarte, clientID string, clean bool, certs ...tls.Certificate) (mqtt.Client, error) {
	lost := make(chan struct{})
	opts := mqtt.NewClientOptions().AddBroker(a.BrokerURL()).SetClientID(clientID).SetCleanSession(clean).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).
		SetConnectionLostHandler(func(mqtt.Client, error) { close(lost) }).
		SetTLSConfig(&tls.Config{RootCAs: a.CA().Pool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				if len(certs) == 0 {
					return &tls.Certificate{}, nil
				}
				return &certs[0], nil
			}})
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	tok.Wait()
	return c, tok.Error()
}

func issue(t *testing.T, a *astartetest.Astarte, id string) tls.Certificate {
	cert, err := a.IssueCertificate(id)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestBrokerRequiresItsClientCertificates(t *testing.T) {
	a := astartetest.New(t, values)
	if c, err := dial(a, "test/"+devA); err == nil {
		c.Disconnect(0)
		t.Error("connected without a client certificate")
	}
	other, err := astartetest.NewCA() // a certificate from another CA
	if err != nil {
		t.Fatal(err)
	}
	rogue := other.ServerCertificate()
	if c, err := dial(a, "test/"+devA, rogue); err == nil {
		c.Disconnect(0)
		t.Error("connected with a certificate from a foreign CA")
	}
	cert := issue(t, a, devA)
	c, err := dial(a, "test/"+devA, cert)
	if err != nil {
		t.Fatalf("valid device refused: %v", err)
	}
	c.Disconnect(0)
	issue(t, a, devA) // supersedes cert
	if c, err := dial(a, "test/"+devA, cert); err == nil {
		c.Disconnect(0)
		t.Error("connected with a superseded certificate")
	}
}

func TestBrokerACL(t *testing.T) {
	a := astartetest.New(t, values)
	c, err := dial(a, "test/"+devA, issue(t, a, devA))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(0)
	tok := c.SubscribeMultiple(map[string]byte{"test/" + devB + "/#": 1, "test/" + devA + "/x/#": 1}, nil)
	tok.Wait()
	granted := tok.(*mqtt.SubscribeToken).Result()
	if granted["test/"+devB+"/#"] != 0x80 || granted["test/"+devA+"/x/#"] != 1 {
		t.Errorf("SUBACK results %v: foreign filter must be refused (0x80), own granted", granted)
	}
	c.Publish("test/"+devB+"/"+values.Name+"/v", 1, false, []byte{})
	a.WaitFor(t, "connection closed after publishing on another device's topic", func() bool { return !c.IsConnectionOpen() })
}

func TestBrokerIntrospectionRules(t *testing.T) {
	a := astartetest.New(t, values)
	cert := issue(t, a, devA)
	c, err := dial(a, "test/"+devA, cert)
	if err != nil {
		t.Fatal(err)
	}
	var p wire.Payload
	p.Reset(values, 0)
	payload, _ := p.Integer(1).Finish(time.Time{})
	// Data before any introspection is refused, and the device dropped.
	c.Publish("test/"+devA+"/"+values.Name+"/v", 1, false, payload).WaitTimeout(2 * time.Second)
	a.WaitEvent(t, devA, "error interface_loading_failed", 0)
	c.Disconnect(0)

	c, err = dial(a, "test/"+devA, cert)
	if err != nil {
		t.Fatal(err)
	}
	c.Publish("test/"+devA, 2, false, values.Name+":1:0;").WaitTimeout(2 * time.Second) // trailing ';' is invalid
	a.WaitEvent(t, devA, "error invalid_introspection", 0)
	c.Disconnect(0)

	c, err = dial(a, "test/"+devA, cert)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(0)
	c.Publish("test/"+devA, 2, false, values.Name+":1:0").WaitTimeout(5 * time.Second)
	c.Publish("test/"+devA+"/"+values.Name+"/v", 1, false, payload).WaitTimeout(5 * time.Second)
	got := a.WaitReceived(t, devA, 1)
	if got[0].Value != int32(1) || got[0].QoS != 1 {
		t.Errorf("received %+v", got[0])
	}
}

// TestIdentityFromCertificate: as in Astarte, the device is who its
// certificate says, whatever client id it sends (the official Python SDK
// sends an empty one with a clean session).
func TestIdentityFromCertificate(t *testing.T) {
	a := astartetest.New(t, values)
	cert := issue(t, a, devA)
	c, err := dialClean(a, "", true, cert)
	if err != nil {
		t.Fatalf("empty client id refused: %v", err)
	}
	defer c.Disconnect(0)
	if n := a.Connections(devA); n != 1 {
		t.Errorf("Connections(devA) = %d, want 1", n)
	}
	// The ACL follows the CN: own topics granted, another device's refused.
	tok := c.SubscribeMultiple(map[string]byte{"test/" + devB + "/#": 1, "test/" + devA + "/x/#": 1}, nil)
	tok.Wait()
	if granted := tok.(*mqtt.SubscribeToken).Result(); granted["test/"+devB+"/#"] != 0x80 || granted["test/"+devA+"/x/#"] != 1 {
		t.Errorf("SUBACK results %v: foreign filter must be refused (0x80), own granted", granted)
	}
	var p wire.Payload
	p.Reset(values, 0)
	payload, _ := p.Integer(7).Finish(time.Time{})
	c.Publish("test/"+devA, 2, false, values.Name+":1:0").WaitTimeout(5 * time.Second)
	c.Publish("test/"+devA+"/"+values.Name+"/v", 1, false, payload).WaitTimeout(5 * time.Second)
	if got := a.WaitReceived(t, devA, 1); got[0].Value != int32(7) {
		t.Errorf("received %+v", got[0])
	}

	// A forged client id naming another device changes nothing: the
	// connection is devA's and takes over devA's session.
	c2, err := dial(a, "test/"+devB, cert)
	if err != nil {
		t.Fatalf("client id other than the CN refused: %v", err)
	}
	defer c2.Disconnect(0)
	if a.Connections(devA) != 2 || a.Connections(devB) != 0 {
		t.Errorf("connections devA=%d devB=%d, want 2 and 0", a.Connections(devA), a.Connections(devB))
	}
	a.WaitFor(t, "first connection taken over", func() bool { return !c.IsConnectionOpen() })
}
