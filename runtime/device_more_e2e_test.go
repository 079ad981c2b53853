package runtime_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	astarte "github.com/astarte-gen/astarte-gen/runtime"
	"github.com/astarte-gen/astarte-gen/runtime/astartetest"
)

var serverObject = &astarte.Interface{
	Name: "org.astartegen.e2e.ServerObject", Major: 1, Minor: 0,
	Type: astarte.Datastream, Ownership: astarte.OwnershipServer, Aggregation: astarte.Object,
	Mappings: []astarte.Mapping{
		{Endpoint: "/cmd/name", Type: astarte.String, Reliability: astarte.Guaranteed},
		{Endpoint: "/cmd/args", Type: astarte.LongIntegerArray, Reliability: astarte.Guaranteed},
	},
}

// errorsSeen collects what the device reports through Config.OnError.
type errorsSeen struct {
	mu   sync.Mutex
	errs []error
}

func (e *errorsSeen) add(err error) { e.mu.Lock(); e.errs = append(e.errs, err); e.mu.Unlock() }
func (e *errorsSeen) list() []error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]error(nil), e.errs...)
}

func newDevice(t *testing.T, a *astartetest.Astarte, cfg astarte.Config, ifaces ...*astarte.Interface) *astarte.Device {
	t.Helper()
	d, err := astarte.New(cfg, ifaces...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	if err := d.Connect(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestServerObjectAndInvalidServerData(t *testing.T) {
	ifaces := []*astarte.Interface{serverObject, serverProps}
	a := astartetest.New(t, ifaces...)
	seen := &errorsSeen{}
	cfg := testConfig(t, a, "AJInS0w3VpWpuOqkXhgZdA")
	cfg.OnError = seen.add
	d := newDevice(t, a, cfg, ifaces...)
	got := make(chan *astarte.Incoming, 8)
	if err := d.Handle(serverObject, func(_ context.Context, in *astarte.Incoming) error { got <- in; return nil }); err != nil {
		t.Fatal(err)
	}
	// Garbage on every kind of topic: dropped and reported, never a panic
	// or a disconnect.
	for _, raw := range []struct {
		suffix  string
		payload []byte
	}{
		{serverObject.Name + "/cmd", []byte{1, 2, 3}},
		{serverObject.Name + "/nope", []byte{5, 0, 0, 0, 0}},
		{serverProps.Name + "/mode", []byte{0x0c, 0, 0, 0, 0x10, 'v', 0, 1, 0, 0, 0, 0}},
		{"control/consumer/properties", []byte{0, 0, 0, 9, 1}},
	} {
		if err := a.SendRaw(cfg.DeviceID, raw.suffix, raw.payload, 1); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return len(seen.list()) == 4 })
	if err := a.SendDatastream(cfg.DeviceID, serverObject.Name, "/cmd", map[string]any{"name": "reboot", "args": []int64{1, 2}}); err != nil {
		t.Fatal(err)
	}
	in := next(t, got)
	name, _ := in.Field(0)
	args, _ := in.Field(1)
	if diff := cmp.Diff([]any{"reboot", []int64{1, 2}}, []any{name.Any(), args.Any()}); diff != "" {
		t.Errorf("object fields (-want +got):\n%s", diff)
	}
	if n := a.Connections(cfg.DeviceID); n != 1 {
		t.Errorf("invalid server data caused %d connections, want 1", n)
	}
	for _, err := range seen.list() {
		if !errors.Is(err, astarte.ErrInvalidPayload) && !errors.Is(err, astarte.ErrMappingNotFound) && !errors.Is(err, astarte.ErrUnknownInterface) {
			t.Errorf("reported error does not say what was wrong: %v", err)
		}
	}
}

func TestConsumerPropertiesPurge(t *testing.T) {
	f := newFixture(t)
	unsets := make(chan string, 8)
	if err := f.d.Handle(serverProps, func(_ context.Context, in *astarte.Incoming) error {
		if in.Unset {
			unsets <- in.Path
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, led := range []string{"/a/target", "/b/target"} {
		if err := f.a.SetProperty(f.id, serverProps.Name, led, 1.0); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { _, ok, _ := f.d.Property(serverProps, 0, "b"); return ok })
	// Astarte lists only /a/target as set: the device must drop /b/target.
	purge := astarte.EncodePurge([]string{serverProps.Name + "/a/target"})
	if err := f.a.SendRaw(f.id, "control/consumer/properties", purge, 2); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-unsets:
		if p != "/b/target" {
			t.Errorf("purge unset %s, want /b/target", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("purge did not reach the handler")
	}
	if _, ok, _ := f.d.Property(serverProps, 0, "b"); ok {
		t.Error("purged property still cached")
	}
	if _, ok, _ := f.d.Property(serverProps, 0, "a"); !ok {
		t.Error("listed property was dropped")
	}
}

func TestRestartReusesCredentialsAndResendsStored(t *testing.T) {
	a := astartetest.New(t, e2eIfaces...)
	cfg := testConfig(t, a, "AJInS0w3VpWpuOqkXhgZdA")
	d, err := astarte.New(cfg, e2eIfaces...)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Connect(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	a.StopBroker()
	for i := range 20 {
		if err := d.Send(ctxT(t), qosIface.Name, "/stored", int32(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := a.StartBroker(); err != nil {
		t.Fatal(err)
	}
	// A new process: same store directory.
	newDevice(t, a, cfg, e2eIfaces...)
	got := a.WaitReceived(t, cfg.DeviceID, 20)
	seen := map[any]bool{}
	for _, r := range got {
		seen[r.Value] = true
	}
	for i := range 20 {
		if !seen[int32(i)] {
			t.Errorf("stored message %d lost across the restart", i)
		}
	}
	if n := a.PairingRequests(cfg.DeviceID)["credentials"]; n != 1 {
		t.Errorf("%d certificate requests, want 1: the stored certificate must be reused", n)
	}
}

func TestSendErrors(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"unknown interface", f.d.Send(ctx, "org.nope.X", "/a", 1), astarte.ErrUnknownInterface},
		{"server-owned", f.d.Send(ctx, serverStreamIface.Name, "/s/double", 1.0), astarte.ErrWrongOwnership},
		{"no mapping", f.d.Send(ctx, allTypesIface.Name, "/s1/nope", 1.0), astarte.ErrMappingNotFound},
		{"bad parameter", f.d.Send(ctx, allTypesIface.Name, "/s+1/double", 1.0), astarte.ErrInvalidParameter},
		{"wrong type", f.d.Send(ctx, allTypesIface.Name, "/s1/double", "x"), astarte.ErrTypeMismatch},
		{"too large", f.d.Send(ctx, allTypesIface.Name, "/s1/string", string(make([]byte, 65530))), astarte.ErrPacketTooLarge},
		{"unexpected timestamp", f.d.Send(ctx, allTypesIface.Name, "/s1/double", 1.0, astarte.WithTimestamp(time.Now())), astarte.ErrUnexpectedTimestamp},
	}
	for _, c := range cases {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, c.err, c.want)
		}
	}
	if got := f.a.Errors(f.id); len(got) != 0 {
		t.Errorf("invalid sends reached Astarte: %q", got)
	}
}

// An empty binaryblob reaches Astarte as a value when its payload carries a
// timestamp (only a "v" of empty binary without "t" reads as an unset), and
// so does an empty array; setting a property to an empty blob is refused
// (it would unset it).
func TestEmptyValues(t *testing.T) {
	stream := &astarte.Interface{
		Name: "org.astartegen.e2e.Empty", Major: 1, Type: astarte.Datastream, Ownership: astarte.OwnershipDevice,
		Mappings: []astarte.Mapping{
			{Endpoint: "/blob", Type: astarte.BinaryBlob, ExplicitTimestamp: true, Reliability: astarte.Unique},
			{Endpoint: "/list", Type: astarte.IntegerArray, Reliability: astarte.Unique},
		},
	}
	props := &astarte.Interface{
		Name: "org.astartegen.e2e.EmptyProps", Major: 1, Type: astarte.Properties, Ownership: astarte.OwnershipDevice,
		Mappings: []astarte.Mapping{{Endpoint: "/blob", Type: astarte.BinaryBlob, AllowUnset: true}},
	}
	a := astartetest.New(t, stream, props)
	cfg := testConfig(t, a, "AJInS0w3VpWpuOqkXhgZdA")
	d := newDevice(t, a, cfg, stream, props)
	ctx := ctxT(t)
	if err := d.Send(ctx, stream.Name, "/blob", []byte{}, astarte.WithTimestamp(time.UnixMilli(1537449422890))); err != nil {
		t.Fatal(err)
	}
	if err := d.Send(ctx, stream.Name, "/list", []int32{}); err != nil {
		t.Fatal(err)
	}
	got := a.WaitReceived(t, cfg.DeviceID, 2)
	if b, ok := got[0].Value.([]byte); !ok || len(b) != 0 || got[0].Path != "/blob" {
		t.Errorf("empty blob arrived as %#v", got[0])
	}
	if l, ok := got[1].Value.([]int32); !ok || len(l) != 0 {
		t.Errorf("empty array arrived as %#v", got[1])
	}
	if err := d.Send(ctx, props.Name, "/blob", []byte{}); !errors.Is(err, astarte.ErrInvalidValue) || !strings.Contains(err.Error(), "Unset") {
		t.Errorf("property set to an empty blob: %v", err)
	}
	if errs := a.Errors(cfg.DeviceID); len(errs) > 0 {
		t.Errorf("the fake refused: %v", errs)
	}
}
