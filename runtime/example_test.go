package runtime_test

import (
	"context"
	"fmt"
	"log"

	"github.com/astarte-gen/astarte-gen/runtime"
	"github.com/astarte-gen/astarte-gen/runtime/astartetest"
	"github.com/astarte-gen/astarte-gen/runtime/model"
)

// New, Connect and the dynamic Send, for programs that load interfaces at
// run time (generated packages offer typed senders instead).
func ExampleNew() {
	sensors := &model.Interface{
		Name: "org.example.Sensors", Major: 1, Type: model.Datastream, Ownership: model.OwnershipDevice,
		Mappings: []model.Mapping{{Endpoint: "/%{sensor_id}/temperature", Type: model.Double, Reliability: model.Guaranteed}},
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
