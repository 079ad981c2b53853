package runtime_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/astarte-gen/astarte-gen/runtime"
	"github.com/astarte-gen/astarte-gen/runtime/astartetest"
	"github.com/astarte-gen/astarte-gen/runtime/model"
)

// Interfaces added to a connected device reach the broker before any data
// on them: a server-owned one is subscribed, the new introspection is
// published and acknowledged, and then data flows both ways (the fake
// Astarte disconnects a device that sends data on an interface missing
// from its introspection). Removing them publishes the introspection
// without them and unsubscribes; sending on them fails at once, and server
// data on them is reported, without a disconnection.
func TestAddAndRemoveInterfacesConnected(t *testing.T) {
	a := astartetest.New(t, retentionIface, qosIface, serverStreamIface)
	cfg := testConfig(t, a, "AJInS0w3VpWpuOqkXhgZdA")
	var mu sync.Mutex
	var reported []error
	cfg.OnError = func(err error) { mu.Lock(); reported = append(reported, err); mu.Unlock() }
	d := newDevice(t, a, cfg, retentionIface)
	ctx := ctxT(t)
	id := cfg.DeviceID
	connections := a.Connections(id)

	if err := d.Send(ctx, qosIface.Name, "/unique", int32(1)); !errors.Is(err, runtime.ErrUnknownInterface) {
		t.Fatalf("send before the interface was added: %v", err)
	}
	if err := d.AddInterfaces(ctx, qosIface, serverStreamIface); err != nil {
		t.Fatal(err)
	}
	if got := a.Introspection(id); !strings.Contains(got, qosIface.Name+":1:0") || !strings.Contains(got, serverStreamIface.Name+":1:0") {
		t.Errorf("introspection after AddInterfaces: %q", got)
	}
	if !slices.Contains(a.Events(id), "subscribe "+serverStreamIface.Name+"/#") {
		t.Errorf("no subscription to the added server-owned interface: %q", a.Events(id))
	}
	if err := d.Send(ctx, qosIface.Name, "/unique", int32(2)); err != nil {
		t.Fatal(err)
	}
	if got := a.WaitReceived(t, id, 1); got[0].Interface != qosIface.Name || got[0].Value != int32(2) {
		t.Errorf("received %+v", got)
	}
	handled := handleDoubles(t, d)
	if err := a.SendDatastream(id, serverStreamIface.Name, "/s1/double", 4.5); err != nil {
		t.Fatal(err)
	}
	if v := <-handled; v != 4.5 {
		t.Errorf("handler got %v", v)
	}

	if err := d.RemoveInterfaces(ctx, qosIface.Name, serverStreamIface.Name); err != nil {
		t.Fatal(err)
	}
	if got := a.Introspection(id); strings.Contains(got, qosIface.Name) || strings.Contains(got, serverStreamIface.Name) || !strings.Contains(got, retentionIface.Name) {
		t.Errorf("introspection after RemoveInterfaces: %q", got)
	}
	a.WaitEvent(t, id, "unsubscribe "+serverStreamIface.Name+"/#", 0)
	if err := d.Send(ctx, qosIface.Name, "/unique", int32(3)); !errors.Is(err, runtime.ErrUnknownInterface) {
		t.Errorf("send on a removed interface: %v", err)
	}
	if err := d.Send(ctx, retentionIface.Name, "/stored", int64(4)); err != nil {
		t.Fatal(err)
	}
	a.WaitReceived(t, id, 2)
	if errs := a.Errors(id); len(errs) > 0 || a.Connections(id) != connections {
		t.Errorf("the fake saw errors %v, or reconnections (%d, was %d)", errs, a.Connections(id), connections)
	}
	if len(d.Interfaces()) != 1 {
		t.Errorf("Interfaces after removal: %v", d.Interfaces())
	}
}

var addedIface = &model.Interface{
	Name: "org.astartegen.e2e.Added", Major: 1, Type: model.Datastream, Ownership: model.OwnershipDevice,
	Mappings: []model.Mapping{{Endpoint: "/v", Type: model.Integer, Reliability: model.Guaranteed, Retention: model.Stored}},
}

// Interfaces added while the device is offline are announced by the next
// connection before any data; removing one while offline drops the stored
// data queued for it, which Astarte would refuse.
func TestAddAndRemoveInterfacesOffline(t *testing.T) {
	a := astartetest.New(t, retentionIface, qosIface, addedIface, serverStreamIface)
	cfg := testConfig(t, a, "AJInS0w3VpWpuOqkXhgZdA")
	d := newDevice(t, a, cfg, retentionIface, qosIface)
	ctx := ctxT(t)
	id := cfg.DeviceID
	a.StopBroker()
	a.WaitFor(t, "the device offline", func() bool { return d.State() != runtime.Connected })
	for i := range 5 {
		if err := d.Send(ctx, qosIface.Name, "/stored", int32(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.RemoveInterfaces(ctx, qosIface.Name); err != nil {
		t.Fatal(err)
	}
	if err := d.AddInterfaces(ctx, addedIface, serverStreamIface); err != nil {
		t.Fatal(err)
	}
	handled := handleDoubles(t, d)
	if err := d.Send(ctx, addedIface.Name, "/v", int32(7)); err != nil {
		t.Fatal(err)
	}
	if err := a.StartBroker(); err != nil {
		t.Fatal(err)
	}
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := a.WaitReceived(t, id, 1)
	if len(got) != 1 || got[0].Interface != addedIface.Name || got[0].Value != int32(7) {
		t.Errorf("received %+v; want only the message on the added interface", got)
	}
	if intro := a.Introspection(id); !strings.Contains(intro, addedIface.Name+":1:0") || strings.Contains(intro, qosIface.Name) {
		t.Errorf("introspection %q", intro)
	}
	if errs := a.Errors(id); len(errs) > 0 {
		t.Errorf("the fake refused data: %v", errs)
	}
	if !slices.Contains(a.Events(id), "subscribe "+serverStreamIface.Name+"/#") {
		t.Errorf("no subscription to the server-owned interface added offline: %q", a.Events(id))
	}
	if err := a.SendDatastream(id, serverStreamIface.Name, "/s1/double", 2.5); err != nil {
		t.Fatal(err)
	}
	if v := <-handled; v != 2.5 {
		t.Errorf("handler got %v", v)
	}

	// A restart with another interface set announces it before any data.
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	d = newDevice(t, a, cfg, retentionIface, qosIface)
	if err := d.Send(ctx, qosIface.Name, "/unique", int32(8)); err != nil {
		t.Fatal(err)
	}
	a.WaitReceived(t, id, 2)
	if intro := a.Introspection(id); !strings.Contains(intro, qosIface.Name) || strings.Contains(intro, addedIface.Name) {
		t.Errorf("introspection after a restart with another set: %q", intro)
	}
	if errs := a.Errors(id); len(errs) > 0 {
		t.Errorf("the fake refused data after the restart: %v", errs)
	}
}

// Adding an invalid interface or removing an unknown one is refused with
// nothing changed; after Close both say the device is closed.
func TestChangeInterfacesErrors(t *testing.T) {
	a := astartetest.New(t, retentionIface)
	d := newDevice(t, a, testConfig(t, a, "AJInS0w3VpWpuOqkXhgZdA"), retentionIface)
	ctx := ctxT(t)
	bad := &model.Interface{Name: "org.astartegen.e2e.Bad", Major: 1, Type: model.Datastream, Ownership: model.OwnershipDevice,
		Mappings: []model.Mapping{{Endpoint: "/a/%{x", Type: model.Integer}}}
	if err := d.AddInterfaces(ctx, bad); !errors.Is(err, runtime.ErrConfig) {
		t.Errorf("adding an interface with a bad endpoint: %v", err)
	}
	if err := d.RemoveInterfaces(ctx, "org.astartegen.e2e.Nope"); !errors.Is(err, runtime.ErrUnknownInterface) {
		t.Errorf("removing an unknown interface: %v", err)
	}
	if len(d.Interfaces()) != 1 {
		t.Errorf("interfaces changed: %v", d.Interfaces())
	}
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.AddInterfaces(ctx, qosIface); !errors.Is(err, runtime.ErrClosed) {
		t.Errorf("AddInterfaces after Close: %v", err)
	}
}

// handleDoubles registers a handler for serverStreamIface that passes on
// the double values it receives.
func handleDoubles(t *testing.T, d *runtime.Device) <-chan float64 {
	t.Helper()
	handled := make(chan float64, 1)
	if err := d.Handle(serverStreamIface, func(_ context.Context, in *runtime.Incoming) error {
		v, err := in.Value.Double()
		handled <- v
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return handled
}
