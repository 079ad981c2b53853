package runtime_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/astarte-gen/astarte-gen/runtime"
	"github.com/astarte-gen/astarte-gen/runtime/astartetest"
	"github.com/astarte-gen/astarte-gen/runtime/pairing"
)

// New, Connect and the dynamic Send, for programs that load interfaces at
// run time (generated packages offer typed senders instead).
func ExampleNew() {
	sensors := &runtime.Interface{
		Name: "org.example.Sensors", Major: 1, Type: runtime.Datastream, Ownership: runtime.OwnershipDevice,
		Mappings: []runtime.Mapping{{Endpoint: "/%{sensor_id}/temperature", Type: runtime.Double, Reliability: runtime.Guaranteed}},
	}
	a, err := astartetest.Start(sensors) // a fake Astarte; use your instance's settings instead
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	cfg, err := a.DeviceConfig("AJInS0w3VpWpuOqkXhgZdA")
	if err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	d, err := runtime.New(cfg, sensors)
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close(ctx)
	if err := d.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	if err := d.Send(ctx, "org.example.Sensors", "/s1/temperature", 21.5); err != nil {
		log.Fatal(err)
	}
	err = d.Send(ctx, "org.example.Sensors", "/s1/temperature", "warm")
	fmt.Println(err)
	// Output: org.example.Sensors/s1/temperature: value type does not match mapping: string (warm) does not fit double
}

// A device that registers itself on its first start with a pairing token
// (an agent JWT from the operator), after the application approved it; it
// keeps the credentials secret in StoreDir and needs no token afterwards.
func ExampleConfig_selfRegistration() {
	sensors := &runtime.Interface{
		Name: "org.example.Sensors", Major: 1, Type: runtime.Datastream, Ownership: runtime.OwnershipDevice,
		Mappings: []runtime.Mapping{{Endpoint: "/%{sensor_id}/temperature", Type: runtime.Double}},
	}
	a, err := astartetest.Start(sensors) // a fake Astarte; use your instance's settings instead
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	token, err := pairing.AgentToken(a.RealmPrivateKeyPEM(), []string{"POST::agent/devices"}, time.Hour)
	if err != nil {
		log.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "device-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	cfg := runtime.Config{
		Realm: a.Realm(), DeviceID: "AJInS0w3VpWpuOqkXhgZdA", PairingURL: a.PairingURL(), RootCAs: a.CA().Pool(),
		StoreDir:     dir,
		PairingToken: token,
		OnRegister: func(_ context.Context, deviceID string) error {
			fmt.Println("registering", deviceID)
			return nil // return an error to refuse
		},
	}
	ctx := context.Background()
	d, err := runtime.New(cfg, sensors)
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close(ctx)
	if err := d.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	_, err = os.Stat(filepath.Join(dir, pairing.SecretFile))
	fmt.Println("secret stored:", err == nil)
	// Output:
	// registering AJInS0w3VpWpuOqkXhgZdA
	// secret stored: true
}
