package astartetest_test

import (
	"crypto/tls"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"

	"github.com/astarte-gen/astarte-gen/runtime"
	"github.com/astarte-gen/astarte-gen/runtime/astartetest"
	"github.com/astarte-gen/astarte-gen/runtime/model"
)

var serverIfaces = []*model.Interface{
	{
		Name: "org.astartegen.test.ServerStream", Major: 1, Type: model.Datastream, Ownership: model.OwnershipServer,
		Mappings: []model.Mapping{
			{Endpoint: "/at", Type: model.Integer, ExplicitTimestamp: true, Reliability: model.Guaranteed},
		},
	},
	{
		Name: "org.astartegen.test.ServerProps", Major: 1, Type: model.Properties, Ownership: model.OwnershipServer,
		Mappings: []model.Mapping{
			{Endpoint: "/fixed", Type: model.Integer},
			{Endpoint: "/free", Type: model.Integer, AllowUnset: true},
		},
	},
}

// deviceInfoStatus asks the Pairing API for the device's info with secret.
func deviceInfoStatus(t *testing.T, a *astartetest.Astarte, id, secret string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, a.PairingURL()+"/v1/test/devices/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig(a)}}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestDeviceConfigIsIdempotent(t *testing.T) {
	a := astartetest.New(t, values)
	first, err := a.DeviceConfig(devA)
	if err != nil {
		t.Fatal(err)
	}
	second, err := a.DeviceConfig(devA)
	if err != nil || second.CredentialsSecret != first.CredentialsSecret {
		t.Fatalf("second DeviceConfig: %v, same secret %v", err, second.CredentialsSecret == first.CredentialsSecret)
	}
	if code := deviceInfoStatus(t, a, devA, first.CredentialsSecret); code != http.StatusOK {
		t.Fatalf("first config's secret: HTTP %d", code)
	}
	issue(t, a, devA) // the device pairs
	third, err := a.DeviceConfig(devA)
	if err != nil || third.CredentialsSecret != first.CredentialsSecret {
		t.Fatalf("DeviceConfig after pairing: %v", err)
	}
	_, err = a.RegisterDevice(devA)
	if !errors.Is(err, astartetest.ErrAlreadyRegistered) || !strings.HasPrefix(err.Error(), "astartetest: device "+devA+": ") {
		t.Errorf("RegisterDevice after pairing: %v", err)
	}
}

func TestServerSideValidationErrors(t *testing.T) {
	a := astartetest.New(t, serverIfaces...)
	props := serverIfaces[1].Name
	for _, tc := range []struct {
		name string
		err  error
		is   error
	}{
		{"unset without allow_unset", a.UnsetProperty(devA, props, "/fixed"), runtime.ErrUnsetNotAllowed},
		{"unset of no mapping", a.UnsetProperty(devA, props, "/nope"), runtime.ErrMappingNotFound},
		{"unset on a datastream", a.UnsetProperty(devA, serverIfaces[0].Name, "/at"), nil},
		{"set of an unknown interface", a.SetProperty(devA, "org.Nope", "/x", int32(1)), nil},
		{"datastream on properties", a.SendDatastream(devA, props, "/free", int32(1)), nil},
	} {
		if tc.err == nil || !strings.HasPrefix(tc.err.Error(), "astartetest: device "+devA+": ") || tc.is != nil && !errors.Is(tc.err, tc.is) {
			t.Errorf("%s: %v", tc.name, tc.err)
		}
	}
	if err := a.UnsetProperty(devA, props, "/free"); err != nil {
		t.Errorf("valid unset: %v", err)
	}
}

func TestSendDatastreamAtExplicitTimestamp(t *testing.T) {
	a := astartetest.New(t, serverIfaces...)
	c, err := dial(a, "test/"+devA, issue(t, a, devA))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(0)
	got := make(chan []byte, 2)
	c.Subscribe("test/"+devA+"/"+serverIfaces[0].Name+"/#", 1, func(_ mqtt.Client, m mqtt.Message) { got <- m.Payload() }).Wait()
	at := time.Date(2022, 11, 22, 10, 11, 21, 123e6, time.UTC)
	if err := a.SendDatastreamAt(devA, serverIfaces[0].Name, "/at", int32(5), at); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		ts, ok := bsoncore.Document(p).Lookup("t").DateTimeOK()
		if !ok || ts != at.UnixMilli() {
			t.Errorf("t = %d (%v), want %d", ts, ok, at.UnixMilli())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing received")
	}
}

func tlsConfig(a *astartetest.Astarte) *tls.Config {
	return &tls.Config{RootCAs: a.CA().Pool(), MinVersion: tls.VersionTLS12}
}
