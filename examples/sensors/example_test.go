package sensors_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/astarte-gen/astarte-gen/examples/sensors"
	"github.com/astarte-gen/astarte-gen/runtime"
	"github.com/astarte-gen/astarte-gen/runtime/astartetest"
)

// connect starts a fake Astarte and a device connected to it; a real
// device fills runtime.Config with its realm, ID, secret and pairing URL.
func connect(ctx context.Context) (*astartetest.Astarte, *runtime.Device) {
	a, err := astartetest.Start(sensors.Interfaces()...)
	if err != nil {
		log.Fatal(err)
	}
	cfg, err := a.DeviceConfig("AJInS0w3VpWpuOqkXhgZdA")
	if err != nil {
		log.Fatal(err)
	}
	d, err := runtime.New(cfg, sensors.Interfaces()...)
	if err != nil {
		log.Fatal(err)
	}
	if err := d.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	return a, d
}

// A typed sender: the path parameter, the value's type and the explicit
// timestamp are all checked by the compiler.
func ExampleSensors_SendTemperature() {
	ctx := context.Background()
	a, d := connect(ctx)
	defer a.Close()
	defer d.Close(ctx)

	at := time.Date(2026, 11, 24, 10, 30, 0, 0, time.UTC)
	if err := sensors.NewSensors(d).SendTemperature(ctx, "kitchen", 21.5, at); err != nil {
		log.Fatal(err)
	}
	if err := d.Flush(ctx); err != nil {
		log.Fatal(err)
	}
	for _, r := range a.Received("AJInS0w3VpWpuOqkXhgZdA") {
		fmt.Printf("Astarte received %v on %s at %s\n", r.Value, r.Path, r.Timestamp.Format(time.RFC3339))
	}
	// Output: Astarte received 21.5 on /kitchen/temperature at 2026-11-24T10:30:00Z
}

type commands struct {
	sensors.UnimplementedCommandsHandler
	done chan string
}

func (c commands) Reboot(_ context.Context, reason string) error {
	c.done <- reason
	return nil
}

// A typed handler: one method per server-owned endpoint.
func ExampleRegisterCommands() {
	ctx := context.Background()
	a, d := connect(ctx)
	defer a.Close()
	defer d.Close(ctx)

	h := commands{done: make(chan string, 1)}
	if err := sensors.RegisterCommands(d, h); err != nil {
		log.Fatal(err)
	}
	if err := a.SendDatastream("AJInS0w3VpWpuOqkXhgZdA", sensors.CommandsInterface().Name, "/reboot", "firmware update"); err != nil {
		log.Fatal(err)
	}
	fmt.Println("reboot requested:", <-h.done)
	// Output: reboot requested: firmware update
}
