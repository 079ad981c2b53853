package runtime_test

import (
	"context"
	"errors"
	"testing"
	"time"

	astarte "github.com/astarte-gen/astarte-gen/runtime"
	"github.com/astarte-gen/astarte-gen/runtime/store"
)

var timesIface = &astarte.Interface{
	Name: "org.astartegen.fault.Times", Major: 1, Type: astarte.Datastream, Ownership: astarte.OwnershipDevice,
	Mappings: []astarte.Mapping{
		{Endpoint: "/at", Type: astarte.DateTime, Reliability: astarte.Guaranteed, Retention: astarte.Stored},
		{Endpoint: "/ts", Type: astarte.Double, Reliability: astarte.Guaranteed, Retention: astarte.Stored, ExplicitTimestamp: true},
	},
}

// offlineDevice is a device that is never connected, over st.
func offlineDevice(t *testing.T, st store.Store, ifaces ...*astarte.Interface) *astarte.Device {
	t.Helper()
	d, err := astarte.New(astarte.Config{Realm: "test", DeviceID: "AJInS0w3VpWpuOqkXhgZdA", PairingURL: "https://127.0.0.1:1/pairing", Store: st}, ifaces...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	return d
}

// TestOutOfRangeTimesNotQueued: a datetime value or an explicit timestamp
// that BSON milliseconds cannot carry is refused with ErrInvalidValue and
// nothing reaches the stored queue (year 300,000,000 used to arrive as year
// −284,554,050).
func TestOutOfRangeTimesNotQueued(t *testing.T) {
	st := store.NewMemory()
	d := offlineDevice(t, st, timesIface)
	ctx := context.Background()
	far := time.Date(300_000_000, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := d.Send(ctx, timesIface.Name, "/at", far); !errors.Is(err, astarte.ErrInvalidValue) {
		t.Errorf("datetime in year 300,000,000: %v, want ErrInvalidValue", err)
	}
	if err := d.Send(ctx, timesIface.Name, "/ts", 1.0, astarte.WithTimestamp(far)); !errors.Is(err, astarte.ErrInvalidValue) {
		t.Errorf("timestamp in year 300,000,000: %v, want ErrInvalidValue", err)
	}
	if err := d.Send(ctx, timesIface.Name, "/ts", 1.0, astarte.WithTimestamp(time.Date(-300_000_000, 1, 1, 0, 0, 0, 0, time.UTC))); !errors.Is(err, astarte.ErrInvalidValue) {
		t.Errorf("timestamp in year −300,000,000: %v, want ErrInvalidValue", err)
	}
	if n, _ := st.Len(ctx); n != 0 {
		t.Fatalf("%d messages queued after refused sends", n)
	}
	if err := d.Send(ctx, timesIface.Name, "/ts", 1.0, astarte.WithTimestamp(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))); err != nil {
		t.Fatal(err)
	}
	if n, _ := st.Len(ctx); n != 1 {
		t.Errorf("%d messages queued after a valid send, want 1", n)
	}
}
