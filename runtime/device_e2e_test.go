package runtime_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/astarte-gen/astarte-gen/runtime"
	"github.com/astarte-gen/astarte-gen/runtime/astartetest"
	"github.com/astarte-gen/astarte-gen/runtime/model"
)

// Interfaces used by the end-to-end tests.
var (
	allTypesIface = &model.Interface{
		Name: "org.astartegen.e2e.AllTypes", Major: 1, Minor: 0,
		Type: model.Datastream, Ownership: model.OwnershipDevice,
		Mappings: allTypeMappings(model.Guaranteed),
	}
	serverStreamIface = &model.Interface{
		Name: "org.astartegen.e2e.ServerStream", Major: 1, Minor: 0,
		Type: model.Datastream, Ownership: model.OwnershipServer,
		Mappings: allTypeMappings(model.Unique),
	}
	objectIface = &model.Interface{
		Name: "org.astartegen.e2e.Object", Major: 1, Minor: 0,
		Type: model.Datastream, Ownership: model.OwnershipDevice, Aggregation: model.Object,
		Mappings: []model.Mapping{
			{Endpoint: "/%{room}/env/temperature", Type: model.Double, Reliability: model.Unique, ExplicitTimestamp: true},
			{Endpoint: "/%{room}/env/count", Type: model.Integer, Reliability: model.Unique, ExplicitTimestamp: true},
			{Endpoint: "/%{room}/env/tags", Type: model.StringArray, Reliability: model.Unique, ExplicitTimestamp: true},
		},
	}
	deviceProps = &model.Interface{
		Name: "org.astartegen.e2e.DeviceProps", Major: 1, Minor: 0,
		Type: model.Properties, Ownership: model.OwnershipDevice,
		Mappings: []model.Mapping{
			{Endpoint: "/%{led}/brightness", Type: model.Integer, AllowUnset: true},
			{Endpoint: "/name", Type: model.String},
		},
	}
	serverProps = &model.Interface{
		Name: "org.astartegen.e2e.ServerProps", Major: 1, Minor: 0,
		Type: model.Properties, Ownership: model.OwnershipServer,
		Mappings: []model.Mapping{
			{Endpoint: "/%{led}/target", Type: model.Double, AllowUnset: true},
			{Endpoint: "/mode", Type: model.String},
		},
	}
	qosIface = &model.Interface{
		Name: "org.astartegen.e2e.QoS", Major: 1, Minor: 0,
		Type: model.Datastream, Ownership: model.OwnershipDevice,
		Mappings: []model.Mapping{
			{Endpoint: "/unreliable", Type: model.Integer},
			{Endpoint: "/guaranteed", Type: model.Integer, Reliability: model.Guaranteed},
			{Endpoint: "/unique", Type: model.Integer, Reliability: model.Unique},
			{Endpoint: "/stored", Type: model.Integer, Reliability: model.Guaranteed, Retention: model.Stored},
			{Endpoint: "/volatile", Type: model.Integer, Reliability: model.Guaranteed, Retention: model.Volatile},
		},
	}
	e2eIfaces = []*model.Interface{allTypesIface, serverStreamIface, objectIface, deviceProps, serverProps, qosIface}
)

// allTypeMappings has one mapping per Astarte type, /%{sensor}/<type>.
func allTypeMappings(rel model.Reliability) []model.Mapping {
	var ms []model.Mapping
	for _, vt := range model.ValueTypes() {
		ms = append(ms, model.Mapping{Endpoint: "/%{sensor}/" + vt.String(), Type: vt, Reliability: rel})
	}
	return ms
}

// sampleValues has a value of each type, indexed like ValueTypes().
var (
	t0           = time.Date(2026, 11, 24, 10, 30, 0, 123_000_000, time.UTC)
	sampleValues = []any{
		25.5, int32(-7), true, int64(1) << 40, "héllo", []byte{1, 2, 3}, t0,
		[]float64{1.5, -2}, []int32{1, 2, 3}, []bool{true, false}, []int64{-1, 1 << 50},
		[]string{"a", ""}, [][]byte{{0}, {}}, []time.Time{t0, t0.Add(time.Second)},
	}
)

type fixture struct {
	a  *astartetest.Astarte
	d  *runtime.Device
	id string
}

func testConfig(t *testing.T, a *astartetest.Astarte, id string) runtime.Config {
	cfg, err := a.DeviceConfig(id)
	if err != nil {
		t.Fatal(err)
	}
	cfg.StoreDir = t.TempDir()
	cfg.ReconnectMin, cfg.ReconnectMax = 20*time.Millisecond, 200*time.Millisecond
	cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return cfg
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	a := astartetest.New(t, e2eIfaces...)
	id := "AJInS0w3VpWpuOqkXhgZdA"
	d, err := runtime.New(testConfig(t, a, id), e2eIfaces...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	if err := d.Connect(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	return &fixture{a: a, d: d, id: id}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestAllTypesIndividual(t *testing.T) {
	f := newFixture(t)
	var want []astartetest.Received
	for n, vt := range model.ValueTypes() {
		if err := f.d.Send(ctxT(t), allTypesIface.Name, "/s1/"+vt.String(), sampleValues[n]); err != nil {
			t.Fatalf("send %s: %v", vt, err)
		}
		want = append(want, astartetest.Received{Interface: allTypesIface.Name, Path: "/s1/" + vt.String(), Value: sampleValues[n], QoS: 1})
	}
	got := f.a.WaitReceived(t, f.id, len(want))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("received (-want +got):\n%s", diff)
	}
}

func TestTypedMessageAndObject(t *testing.T) {
	f := newFixture(t)
	m := runtime.GeneratedMessage(f.d, objectIface, 0, "kitchen")
	m.Field(0).Double(21.5)
	m.Field(1).Integer(3)
	m.Field(2).StringArray([]string{"x", "y"})
	if err := m.Send(ctxT(t), t0); err != nil {
		t.Fatal(err)
	}
	got := f.a.WaitReceived(t, f.id, 1)
	want := []astartetest.Received{{
		Interface: objectIface.Name, Path: "/kitchen/env", QoS: 2, Timestamp: t0,
		Value: map[string]any{"temperature": 21.5, "count": int32(3), "tags": []string{"x", "y"}},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("received (-want +got):\n%s", diff)
	}
	// A missing explicit timestamp is caught before anything is sent.
	m = runtime.GeneratedMessage(f.d, objectIface, 0, "kitchen")
	m.Field(0).Double(1)
	if err := m.Send(ctxT(t), time.Time{}); !errors.Is(err, runtime.ErrMissingTimestamp) {
		t.Errorf("send without timestamp: %v, want ErrMissingTimestamp", err)
	}
}

func TestQoSPerReliability(t *testing.T) {
	f := newFixture(t)
	paths := []string{"/unreliable", "/guaranteed", "/unique", "/stored", "/volatile"}
	for n, p := range paths {
		if err := f.d.Send(ctxT(t), qosIface.Name, p, int32(n)); err != nil {
			t.Fatal(err)
		}
	}
	got := f.a.WaitReceived(t, f.id, len(paths))
	qos := map[string]byte{}
	for _, r := range got {
		qos[r.Path] = r.QoS
	}
	want := map[string]byte{"/unreliable": 0, "/guaranteed": 1, "/unique": 2, "/stored": 1, "/volatile": 1}
	if diff := cmp.Diff(want, qos); diff != "" {
		t.Errorf("QoS per path (-want +got):\n%s", diff)
	}
}

func TestServerDataReachesHandlers(t *testing.T) {
	f := newFixture(t)
	got := make(chan *runtime.Incoming, 32)
	h := func(ctx context.Context, in *runtime.Incoming) error { got <- in; return nil }
	if err := f.d.Handle(serverStreamIface, h); err != nil {
		t.Fatal(err)
	}
	if err := f.d.Handle(serverProps, h); err != nil {
		t.Fatal(err)
	}
	for n, vt := range model.ValueTypes() {
		if err := f.a.SendDatastream(f.id, serverStreamIface.Name, "/s9/"+vt.String(), sampleValues[n]); err != nil {
			t.Fatal(err)
		}
		in := next(t, got)
		if in.Path != "/s9/"+vt.String() || in.Mapping != n || in.Params[0] != "s9" {
			t.Fatalf("incoming %s: path %q mapping %d params %q", vt, in.Path, in.Mapping, in.Params)
		}
		if diff := cmp.Diff(sampleValues[n], in.Value.Any()); diff != "" {
			t.Errorf("%s value (-want +got):\n%s", vt, diff)
		}
	}
	if err := f.a.SetProperty(f.id, serverProps.Name, "/l1/target", 0.75); err != nil {
		t.Fatal(err)
	}
	if in := next(t, got); in.Unset || in.Value.Any() != 0.75 {
		t.Fatalf("property set: %+v", in)
	}
	v, ok, err := runtime.GeneratedProperty(f.d, serverProps, 0, "l1")
	if x, _ := v.Double(); err != nil || !ok || x != 0.75 {
		t.Fatalf("cached server property = %v %v %v", x, ok, err)
	}
	if err := f.a.UnsetProperty(f.id, serverProps.Name, "/l1/target"); err != nil {
		t.Fatal(err)
	}
	if in := next(t, got); !in.Unset || in.Path != "/l1/target" {
		t.Fatalf("property unset: %+v", in)
	}
	if _, ok, _ := runtime.GeneratedProperty(f.d, serverProps, 0, "l1"); ok {
		t.Error("unset server property still cached")
	}
}

func next(t *testing.T, ch <-chan *runtime.Incoming) *runtime.Incoming {
	t.Helper()
	select {
	case in := <-ch:
		return in
	case <-time.After(10 * time.Second):
		t.Fatal("no message reached the handler")
		return nil
	}
}

func TestDevicePropertiesSetUnsetAndDedup(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	// The owner loop sends the latest value of a property, so changes made
	// before the previous one was sent may be coalesced: wait for each.
	for n, v := range []int32{10, 10, 20} { // the repeated 10 publishes nothing
		m := runtime.GeneratedMessage(f.d, deviceProps, 0, "l1")
		m.Integer(v)
		if err := m.Send(ctx, time.Time{}); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			f.a.WaitReceived(t, f.id, min(n+1, 2))
		}
	}
	if err := runtime.GeneratedUnset(ctx, f.d, deviceProps, 0, "l1"); err != nil {
		t.Fatal(err)
	}
	if err := runtime.GeneratedUnset(ctx, f.d, deviceProps, 1); !errors.Is(err, runtime.ErrUnsetNotAllowed) {
		t.Errorf("unset without allow_unset: %v", err)
	}
	got := f.a.WaitReceived(t, f.id, 3)
	want := []astartetest.Received{
		{Interface: deviceProps.Name, Path: "/l1/brightness", Value: int32(10), QoS: 2},
		{Interface: deviceProps.Name, Path: "/l1/brightness", Value: int32(20), QoS: 2},
		{Interface: deviceProps.Name, Path: "/l1/brightness", Unset: true, QoS: 2},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("received (-want +got):\n%s", diff)
	}
	if _, ok, err := runtime.GeneratedProperty(f.d, deviceProps, 0, "l1"); ok || err != nil {
		t.Errorf("unset property still stored (%v)", err)
	}
}

func TestConnectOrderAndNoDataBeforeIntrospection(t *testing.T) {
	f := newFixture(t)
	if err := f.d.Send(ctxT(t), qosIface.Name, "/unique", int32(1)); err != nil {
		t.Fatal(err)
	}
	f.a.WaitReceived(t, f.id, 1)
	events := f.a.Events(f.id)
	index := func(prefix string) int {
		for n, e := range events {
			if len(e) >= len(prefix) && e[:len(prefix)] == prefix {
				return n
			}
		}
		t.Fatalf("event %q missing from %q", prefix, events)
		return -1
	}
	sub, intro, empty, producer, data := index("subscribe"), index("introspection"), index("emptyCache"), index("producer/properties"), index("data")
	if !(sub < intro && intro < empty && empty < producer && producer < data) {
		t.Errorf("connect order wrong: %q", events)
	}
}

func TestReconnectWithAndWithoutSession(t *testing.T) {
	f := newFixture(t)
	f.a.DropConnection(f.id)
	waitFor(t, func() bool { return f.a.Connections(f.id) == 2 && f.d.State() == runtime.Connected })
	if err := f.d.Send(ctxT(t), qosIface.Name, "/unique", int32(1)); err != nil {
		t.Fatal(err)
	}
	f.a.WaitReceived(t, f.id, 1)
	if n := count(f.a.Events(f.id), "introspection"); n != 1 {
		t.Errorf("with a session present, introspection sent %d times, want 1", n)
	}
	f.a.ClearSession(f.id)
	f.a.DropConnection(f.id)
	waitFor(t, func() bool { return count(f.a.Events(f.id), "introspection") == 2 })
}

func count(events []string, prefix string) int {
	n := 0
	for _, e := range events {
		if len(e) >= len(prefix) && e[:len(prefix)] == prefix {
			n++
		}
	}
	return n
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStoredSurvivesBrokerOutage(t *testing.T) {
	f := newFixture(t)
	f.a.StopBroker()
	waitFor(t, func() bool { return f.d.State() != runtime.Connected })
	ctx := ctxT(t)
	for i := range 50 {
		if err := f.d.Send(ctx, qosIface.Name, "/stored", int32(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.d.Send(ctx, qosIface.Name, "/guaranteed", int32(0)); !errors.Is(err, runtime.ErrNotConnected) {
		t.Errorf("discard while offline: %v, want ErrNotConnected", err)
	}
	if err := f.a.StartBroker(); err != nil {
		t.Fatal(err)
	}
	if err := f.d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := f.a.WaitReceived(t, f.id, 50)
	for i, r := range got {
		if r.Value != int32(i) {
			t.Fatalf("message %d has value %v: stored data out of order or lost", i, r.Value)
		}
	}
}
