// Command quickstart is a typed Astarte device: it reports its configuration,
// sends telemetry, applies the configuration the operator wants, and answers
// commands, all through the API astarte-gen generated in ./api.
//
// With no flags it starts a fake Astarte in-process (runtime/astartetest),
// has it send a desired configuration and a command, prints what went each
// way and exits. To run against a real Astarte:
//
//	go run ./examples/quickstart -pairing-url https://api.example.com/pairing \
//	    -realm myrealm -device-id 2imLILqtRP2vq0ZVy-TGRQ -secret ...
//
// (or set ASTARTE_PAIRING_URL, ASTARTE_REALM, ASTARTE_DEVICE_ID and
// ASTARTE_CREDENTIALS_SECRET); the interfaces in ./interfaces must be
// installed in the realm.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"time"

	"github.com/astarte-gen/astarte-gen/examples/quickstart/api"
	"github.com/astarte-gen/astarte-gen/runtime"
	"github.com/astarte-gen/astarte-gen/runtime/astartetest"
)

const demoDevice = "AJInS0w3VpWpuOqkXhgZdA"

func main() {
	cfg := runtime.Config{}
	flag.StringVar(&cfg.PairingURL, "pairing-url", os.Getenv("ASTARTE_PAIRING_URL"), "Pairing API base URL (empty: run against an in-process fake Astarte)")
	flag.StringVar(&cfg.Realm, "realm", os.Getenv("ASTARTE_REALM"), "realm")
	flag.StringVar(&cfg.DeviceID, "device-id", os.Getenv("ASTARTE_DEVICE_ID"), "device ID")
	flag.StringVar(&cfg.CredentialsSecret, "secret", os.Getenv("ASTARTE_CREDENTIALS_SECRET"), "credentials secret")
	flag.StringVar(&cfg.StoreDir, "store", filepath.Join(os.TempDir(), "astarte-quickstart"), "directory for credentials and queued data")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// run runs the device; with no pairing URL, against a fake Astarte that it
// drives through one exchange before returning.
func run(ctx context.Context, cfg runtime.Config, out io.Writer) error {
	var fake *astartetest.Astarte
	if cfg.PairingURL == "" {
		var err error
		if fake, err = astartetest.Start(api.Interfaces()...); err != nil {
			return err
		}
		defer fake.Close()
		store := cfg.StoreDir
		if cfg, err = fake.DeviceConfig(demoDevice); err != nil {
			return err
		}
		cfg.StoreDir = filepath.Join(store, "fake-"+time.Now().Format("20060102150405.000"))
		defer os.RemoveAll(cfg.StoreDir)
		fmt.Fprintf(out, "started a fake Astarte (realm %q); device %s pairs with it\n", cfg.Realm, cfg.DeviceID)
	}
	d, err := runtime.New(cfg, api.Interfaces()...)
	if err != nil {
		return err
	}
	defer d.Close(context.Background())
	dev := &device{d: d, out: out, reported: api.NewReportedConfig(d), responses: api.NewCommandResponses(d), handled: make(chan string, 8)}
	if err := dev.start(ctx); err != nil {
		return err
	}
	if fake == nil {
		return dev.loop(ctx) // a real device runs until interrupted
	}
	return dev.demo(ctx, fake, cfg.DeviceID)
}

// device is the application: it owns the generated senders and implements
// the generated handlers.
type device struct {
	api.UnimplementedDesiredConfigHandler
	api.UnimplementedCommandsHandler
	d         *runtime.Device
	out       io.Writer
	mu        sync.Mutex
	reported  api.ReportedConfig
	responses api.CommandResponses
	handled   chan string
}

func (v *device) printf(format string, args ...any) {
	v.mu.Lock()
	defer v.mu.Unlock()
	fmt.Fprintf(v.out, format+"\n", args...)
}

func (v *device) start(ctx context.Context) error {
	if err := api.RegisterDesiredConfig(v.d, v); err != nil {
		return err
	}
	if err := api.RegisterCommands(v.d, v); err != nil {
		return err
	}
	if err := v.d.Connect(ctx); err != nil {
		return err
	}
	v.printf("→ connected")
	if err := v.reported.SetFirmwareVersion(ctx, "1.0.0"); err != nil {
		return err
	}
	if err := v.reported.SetSamplingPeriodMs(ctx, 1000); err != nil {
		return err
	}
	v.printf("→ reported configuration: firmware 1.0.0, sampling every 1000 ms")
	return v.sample(ctx)
}

// sample sends one reading of each sensor.
func (v *device) sample(ctx context.Context) error {
	t := api.NewTelemetry(v.d)
	now := time.Now()
	if err := t.SendTemperature(ctx, "kitchen", 21.5, now); err != nil {
		return err
	}
	if err := t.SendHumidity(ctx, "kitchen", 40.2, now); err != nil {
		return err
	}
	v.printf("→ telemetry: kitchen 21.5 °C, 40.2 %%")
	return nil
}

// SetSamplingPeriodMs applies the desired configuration and reports it.
func (v *device) SetSamplingPeriodMs(ctx context.Context, ms int32) error {
	v.printf("← desired configuration: sampling every %d ms", ms)
	if err := v.reported.SetSamplingPeriodMs(ctx, ms); err != nil {
		return err
	}
	v.printf("→ reported configuration: sampling every %d ms", ms)
	v.handled <- "config"
	return nil
}

// Run executes a command and sends its result.
func (v *device) Run(ctx context.Context, commandID, command string) error {
	v.printf("← command %s: %q", commandID, command)
	result := "done: " + command
	if err := v.responses.SendResult(ctx, commandID, result); err != nil {
		return err
	}
	v.printf("→ command %s result: %q", commandID, result)
	v.handled <- "command"
	return nil
}

// loop samples until ctx ends.
func (v *device) loop(ctx context.Context) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if err := v.sample(ctx); err != nil {
				v.printf("sending telemetry: %v", err)
			}
		}
	}
}

// demo plays the operator's side on the fake Astarte.
func (v *device) demo(ctx context.Context, fake *astartetest.Astarte, id string) error {
	if err := fake.SetProperty(id, api.DesiredConfigInterface().Name, "/sampling_period_ms", int32(500)); err != nil {
		return err
	}
	if err := fake.SendDatastream(id, api.CommandsInterface().Name, "/c1/run", "reboot"); err != nil {
		return err
	}
	for range 2 {
		select {
		case <-v.handled:
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Second):
			return fmt.Errorf("the device did not handle the server's messages")
		}
	}
	if err := v.d.Flush(ctx); err != nil {
		return err
	}
	v.printf("Astarte received %d messages from the device; its reported configuration there: %v", len(fake.Received(id)), fake.DeviceProperties(id))
	return nil
}
