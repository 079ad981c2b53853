package testifaces_test

// Code below exercises every generated sender, setter, unsetter, getter and
// handler of package testifaces against the fake Astarte.

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/astarte-gen/astarte-gen/internal/testifaces"
	"github.com/astarte-gen/astarte-gen/runtime"
	"github.com/astarte-gen/astarte-gen/runtime/astartetest"
)

var t0 = time.Date(2026, 11, 24, 10, 30, 0, 123_000_000, time.UTC)

const deviceID = "AJInS0w3VpWpuOqkXhgZdA"

// value is one value a server-side handler received.
type value struct {
	Method string
	Param  string
	Value  any
}

func connect(t *testing.T) (*astartetest.Astarte, *runtime.Device) {
	t.Helper()
	return connectB(t)
}

// connectB starts a fake Astarte with the package's interfaces and a
// device connected to it.
func connectB(t testing.TB) (*astartetest.Astarte, *runtime.Device) {
	t.Helper()
	a := astartetest.New(t, testifaces.Interfaces()...)
	cfg, err := a.DeviceConfig(deviceID)
	if err != nil {
		t.Fatal(err)
	}
	cfg.StoreDir = t.TempDir()
	d, err := runtime.New(cfg, testifaces.Interfaces()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	return a, d
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func next(t *testing.T, ch <-chan value) value {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("handler not called")
		return value{}
	}
}

var byPath = cmpopts.SortSlices(func(a, b astartetest.Received) bool { return a.Path < b.Path })

func TestGeneratedDeviceDatastream(t *testing.T) {
	a, d := connect(t)
	s := testifaces.NewDeviceDatastream(d)
	ctx := context.Background()
	must(t, s.SendDouble(ctx, "s1", 21.5, t0))
	must(t, s.SendInteger(ctx, "s1", int32(-7)))
	must(t, s.SendBoolean(ctx, "s1", true, t0))
	must(t, s.SendLonginteger(ctx, "s1", int64(1)<<40))
	must(t, s.SendString(ctx, "s1", "héllo", t0))
	must(t, s.SendBinaryblob(ctx, "s1", []byte{1, 2, 3}))
	must(t, s.SendDatetime(ctx, "s1", t0, t0))
	must(t, s.SendDoublearray(ctx, "s1", []float64{1.5, -2}))
	must(t, s.SendIntegerarray(ctx, "s1", []int32{1, 2}, t0))
	must(t, s.SendBooleanarray(ctx, "s1", []bool{true, false}))
	must(t, s.SendLongintegerarray(ctx, "s1", []int64{-1, 1 << 50}, t0))
	must(t, s.SendStringarray(ctx, "s1", []string{"a", "b"}))
	must(t, s.SendBinaryblobarray(ctx, "s1", [][]byte{{0}, {1}}, t0))
	must(t, s.SendDatetimearray(ctx, "s1", []time.Time{t0}))
	want := []astartetest.Received{
		{Interface: testifaces.DeviceDatastreamInterface().Name, Path: "/s1/double", Value: 21.5, Timestamp: t0, QoS: 0},
		{Interface: testifaces.DeviceDatastreamInterface().Name, Path: "/s1/integer", Value: int32(-7), Timestamp: time.Time{}, QoS: 1},
		{Interface: testifaces.DeviceDatastreamInterface().Name, Path: "/s1/boolean", Value: true, Timestamp: t0, QoS: 2},
		{Interface: testifaces.DeviceDatastreamInterface().Name, Path: "/s1/longinteger", Value: int64(1) << 40, Timestamp: time.Time{}, QoS: 0},
		{Interface: testifaces.DeviceDatastreamInterface().Name, Path: "/s1/string", Value: "héllo", Timestamp: t0, QoS: 1},
		{Interface: testifaces.DeviceDatastreamInterface().Name, Path: "/s1/binaryblob", Value: []byte{1, 2, 3}, Timestamp: time.Time{}, QoS: 2},
		{Interface: testifaces.DeviceDatastreamInterface().Name, Path: "/s1/datetime", Value: t0, Timestamp: t0, QoS: 0},
		{Interface: testifaces.DeviceDatastreamInterface().Name, Path: "/s1/doublearray", Value: []float64{1.5, -2}, Timestamp: time.Time{}, QoS: 1},
		{Interface: testifaces.DeviceDatastreamInterface().Name, Path: "/s1/integerarray", Value: []int32{1, 2}, Timestamp: t0, QoS: 2},
		{Interface: testifaces.DeviceDatastreamInterface().Name, Path: "/s1/booleanarray", Value: []bool{true, false}, Timestamp: time.Time{}, QoS: 0},
		{Interface: testifaces.DeviceDatastreamInterface().Name, Path: "/s1/longintegerarray", Value: []int64{-1, 1 << 50}, Timestamp: t0, QoS: 1},
		{Interface: testifaces.DeviceDatastreamInterface().Name, Path: "/s1/stringarray", Value: []string{"a", "b"}, Timestamp: time.Time{}, QoS: 2},
		{Interface: testifaces.DeviceDatastreamInterface().Name, Path: "/s1/binaryblobarray", Value: [][]byte{{0}, {1}}, Timestamp: t0, QoS: 0},
		{Interface: testifaces.DeviceDatastreamInterface().Name, Path: "/s1/datetimearray", Value: []time.Time{t0}, Timestamp: time.Time{}, QoS: 1},
	}
	got := a.WaitReceived(t, deviceID, len(want))
	if diff := cmp.Diff(want, got, byPath); diff != "" {
		t.Errorf("received (-want +got):\n%s", diff)
	}
}

func TestGeneratedDeviceAggregateAndDraft(t *testing.T) {
	a, d := connect(t)
	ctx := context.Background()
	v := testifaces.DeviceAggregateClimate{Temperature: 21.5, Humidity: ptr(40.0), Co2Ppm: ptr[int32](420), WindowOpen: ptr(true), Readings: ptr([]float64{1, 2}), SensorName: ptr("k1")}
	must(t, testifaces.NewDeviceAggregate(d).SendClimate(ctx, "hq", "kitchen", v, t0))
	must(t, testifaces.NewDraft(d).SendStatusUptime(ctx, 42))
	want := []astartetest.Received{
		{Interface: testifaces.DeviceAggregateInterface().Name, Path: "/hq/kitchen/climate", Timestamp: t0, QoS: 1, Value: map[string]any{
			"temperature": 21.5, "humidity": 40.0, "co2_ppm": int32(420), "window_open": true, "readings": []float64{1, 2}, "sensor_name": "k1"}},
		{Interface: testifaces.DraftInterface().Name, Path: "/status/uptime", Value: int64(42), QoS: 1},
	}
	if diff := cmp.Diff(want, a.WaitReceived(t, deviceID, 2), byPath); diff != "" {
		t.Errorf("received (-want +got):\n%s", diff)
	}
}

func TestGeneratedDeviceProperties(t *testing.T) {
	a, d := connect(t)
	s := testifaces.NewDeviceProperties(d)
	ctx := context.Background()
	must(t, s.SetDouble(ctx, "g", "i", 21.5))
	must(t, s.SetInteger(ctx, "g", "i", int32(-7)))
	must(t, s.SetBoolean(ctx, "g", "i", true))
	must(t, s.SetLonginteger(ctx, "g", "i", int64(1)<<40))
	must(t, s.SetString(ctx, "g", "i", "héllo"))
	must(t, s.SetBinaryblob(ctx, "g", "i", []byte{1, 2, 3}))
	must(t, s.SetDatetime(ctx, "g", "i", t0))
	must(t, s.SetDoublearray(ctx, "g", "i", []float64{1.5, -2}))
	must(t, s.SetIntegerarray(ctx, "g", "i", []int32{1, 2}))
	must(t, s.SetBooleanarray(ctx, "g", "i", []bool{true, false}))
	must(t, s.SetLongintegerarray(ctx, "g", "i", []int64{-1, 1 << 50}))
	must(t, s.SetStringarray(ctx, "g", "i", []string{"a", "b"}))
	must(t, s.SetBinaryblobarray(ctx, "g", "i", [][]byte{{0}, {1}}))
	must(t, s.SetDatetimearray(ctx, "g", "i", []time.Time{t0}))
	if v, ok, err := s.GetDouble("g", "i"); err != nil || !ok || !cmp.Equal(v, float64(21.5)) {
		t.Errorf("getter Double = %v, %v, %v", v, ok, err)
	}
	if v, ok, err := s.GetInteger("g", "i"); err != nil || !ok || !cmp.Equal(v, int32(int32(-7))) {
		t.Errorf("getter Integer = %v, %v, %v", v, ok, err)
	}
	if v, ok, err := s.GetBoolean("g", "i"); err != nil || !ok || !cmp.Equal(v, bool(true)) {
		t.Errorf("getter Boolean = %v, %v, %v", v, ok, err)
	}
	if v, ok, err := s.GetLonginteger("g", "i"); err != nil || !ok || !cmp.Equal(v, int64(int64(1)<<40)) {
		t.Errorf("getter Longinteger = %v, %v, %v", v, ok, err)
	}
	if v, ok, err := s.GetString("g", "i"); err != nil || !ok || !cmp.Equal(v, string("héllo")) {
		t.Errorf("getter String = %v, %v, %v", v, ok, err)
	}
	if v, ok, err := s.GetBinaryblob("g", "i"); err != nil || !ok || !cmp.Equal(v, []byte([]byte{1, 2, 3})) {
		t.Errorf("getter Binaryblob = %v, %v, %v", v, ok, err)
	}
	if v, ok, err := s.GetDatetime("g", "i"); err != nil || !ok || !cmp.Equal(v, time.Time(t0)) {
		t.Errorf("getter Datetime = %v, %v, %v", v, ok, err)
	}
	if v, ok, err := s.GetDoublearray("g", "i"); err != nil || !ok || !cmp.Equal(v, []float64([]float64{1.5, -2})) {
		t.Errorf("getter Doublearray = %v, %v, %v", v, ok, err)
	}
	if v, ok, err := s.GetIntegerarray("g", "i"); err != nil || !ok || !cmp.Equal(v, []int32([]int32{1, 2})) {
		t.Errorf("getter Integerarray = %v, %v, %v", v, ok, err)
	}
	if v, ok, err := s.GetBooleanarray("g", "i"); err != nil || !ok || !cmp.Equal(v, []bool([]bool{true, false})) {
		t.Errorf("getter Booleanarray = %v, %v, %v", v, ok, err)
	}
	if v, ok, err := s.GetLongintegerarray("g", "i"); err != nil || !ok || !cmp.Equal(v, []int64([]int64{-1, 1 << 50})) {
		t.Errorf("getter Longintegerarray = %v, %v, %v", v, ok, err)
	}
	if v, ok, err := s.GetStringarray("g", "i"); err != nil || !ok || !cmp.Equal(v, []string([]string{"a", "b"})) {
		t.Errorf("getter Stringarray = %v, %v, %v", v, ok, err)
	}
	if v, ok, err := s.GetBinaryblobarray("g", "i"); err != nil || !ok || !cmp.Equal(v, [][]byte([][]byte{{0}, {1}})) {
		t.Errorf("getter Binaryblobarray = %v, %v, %v", v, ok, err)
	}
	if v, ok, err := s.GetDatetimearray("g", "i"); err != nil || !ok || !cmp.Equal(v, []time.Time([]time.Time{t0})) {
		t.Errorf("getter Datetimearray = %v, %v, %v", v, ok, err)
	}
	a.WaitFor(t, "14 device properties stored", func() bool { return len(a.DeviceProperties(deviceID)) == 14 })
	must(t, s.UnsetDouble(ctx, "g", "i"))
	if _, ok, err := s.GetDouble("g", "i"); ok || err != nil {
		t.Errorf("Double still set after unset (%v)", err)
	}
	must(t, s.UnsetBoolean(ctx, "g", "i"))
	if _, ok, err := s.GetBoolean("g", "i"); ok || err != nil {
		t.Errorf("Boolean still set after unset (%v)", err)
	}
	must(t, s.UnsetString(ctx, "g", "i"))
	if _, ok, err := s.GetString("g", "i"); ok || err != nil {
		t.Errorf("String still set after unset (%v)", err)
	}
	must(t, s.UnsetDatetime(ctx, "g", "i"))
	if _, ok, err := s.GetDatetime("g", "i"); ok || err != nil {
		t.Errorf("Datetime still set after unset (%v)", err)
	}
	must(t, s.UnsetIntegerarray(ctx, "g", "i"))
	if _, ok, err := s.GetIntegerarray("g", "i"); ok || err != nil {
		t.Errorf("Integerarray still set after unset (%v)", err)
	}
	must(t, s.UnsetLongintegerarray(ctx, "g", "i"))
	if _, ok, err := s.GetLongintegerarray("g", "i"); ok || err != nil {
		t.Errorf("Longintegerarray still set after unset (%v)", err)
	}
	must(t, s.UnsetBinaryblobarray(ctx, "g", "i"))
	if _, ok, err := s.GetBinaryblobarray("g", "i"); ok || err != nil {
		t.Errorf("Binaryblobarray still set after unset (%v)", err)
	}
	a.WaitFor(t, "7 device properties left", func() bool { return len(a.DeviceProperties(deviceID)) == 7 })
}

type streamRecorder struct{ ch chan value }

func (r streamRecorder) Double(_ context.Context, channel string, v float64) error {
	r.ch <- value{"Double", channel, v}
	return nil
}

func (r streamRecorder) Integer(_ context.Context, channel string, v int32) error {
	r.ch <- value{"Integer", channel, v}
	return nil
}

func (r streamRecorder) Boolean(_ context.Context, channel string, v bool) error {
	r.ch <- value{"Boolean", channel, v}
	return nil
}

func (r streamRecorder) Longinteger(_ context.Context, channel string, v int64) error {
	r.ch <- value{"Longinteger", channel, v}
	return nil
}

func (r streamRecorder) String(_ context.Context, channel string, v string) error {
	r.ch <- value{"String", channel, v}
	return nil
}

func (r streamRecorder) Binaryblob(_ context.Context, channel string, v []byte) error {
	r.ch <- value{"Binaryblob", channel, v}
	return nil
}

func (r streamRecorder) Datetime(_ context.Context, channel string, v time.Time) error {
	r.ch <- value{"Datetime", channel, v}
	return nil
}

func (r streamRecorder) Doublearray(_ context.Context, channel string, v []float64) error {
	r.ch <- value{"Doublearray", channel, v}
	return nil
}

func (r streamRecorder) Integerarray(_ context.Context, channel string, v []int32) error {
	r.ch <- value{"Integerarray", channel, v}
	return nil
}

func (r streamRecorder) Booleanarray(_ context.Context, channel string, v []bool) error {
	r.ch <- value{"Booleanarray", channel, v}
	return nil
}

func (r streamRecorder) Longintegerarray(_ context.Context, channel string, v []int64) error {
	r.ch <- value{"Longintegerarray", channel, v}
	return nil
}

func (r streamRecorder) Stringarray(_ context.Context, channel string, v []string) error {
	r.ch <- value{"Stringarray", channel, v}
	return nil
}

func (r streamRecorder) Binaryblobarray(_ context.Context, channel string, v [][]byte) error {
	r.ch <- value{"Binaryblobarray", channel, v}
	return nil
}

// Stamped is the one mapping with explicit_timestamp: its handler method
// alone receives the timestamp.
func (r streamRecorder) Stamped(_ context.Context, channel string, v float64, timestamp time.Time) error {
	r.ch <- value{"Stamped", channel, []any{v, timestamp}}
	return nil
}

func (r streamRecorder) Datetimearray(_ context.Context, channel string, v []time.Time) error {
	r.ch <- value{"Datetimearray", channel, v}
	return nil
}

type propsRecorder struct{ ch chan value }

func (r propsRecorder) SetLedsTarget(_ context.Context, led string, v float64) error {
	r.ch <- value{"SetLedsTarget", led, v}
	return nil
}

func (r propsRecorder) UnsetLedsTarget(_ context.Context, led string) error {
	r.ch <- value{"UnsetLedsTarget", led, nil}
	return nil
}

func (r propsRecorder) SetSettingsDouble(_ context.Context, v float64) error {
	r.ch <- value{"SetDouble", "", v}
	return nil
}

func (r propsRecorder) SetSettingsInteger(_ context.Context, v int32) error {
	r.ch <- value{"SetInteger", "", v}
	return nil
}

func (r propsRecorder) UnsetSettingsInteger(context.Context) error {
	r.ch <- value{"UnsetInteger", "", nil}
	return nil
}

func (r propsRecorder) SetSettingsBoolean(_ context.Context, v bool) error {
	r.ch <- value{"SetBoolean", "", v}
	return nil
}

func (r propsRecorder) SetSettingsLonginteger(_ context.Context, v int64) error {
	r.ch <- value{"SetLonginteger", "", v}
	return nil
}

func (r propsRecorder) UnsetSettingsLonginteger(context.Context) error {
	r.ch <- value{"UnsetLonginteger", "", nil}
	return nil
}

func (r propsRecorder) SetSettingsString(_ context.Context, v string) error {
	r.ch <- value{"SetString", "", v}
	return nil
}

func (r propsRecorder) SetSettingsBinaryblob(_ context.Context, v []byte) error {
	r.ch <- value{"SetBinaryblob", "", v}
	return nil
}

func (r propsRecorder) UnsetSettingsBinaryblob(context.Context) error {
	r.ch <- value{"UnsetBinaryblob", "", nil}
	return nil
}

func (r propsRecorder) SetSettingsDatetime(_ context.Context, v time.Time) error {
	r.ch <- value{"SetDatetime", "", v}
	return nil
}

func (r propsRecorder) SetSettingsDoublearray(_ context.Context, v []float64) error {
	r.ch <- value{"SetDoublearray", "", v}
	return nil
}

func (r propsRecorder) UnsetSettingsDoublearray(context.Context) error {
	r.ch <- value{"UnsetDoublearray", "", nil}
	return nil
}

func (r propsRecorder) SetSettingsIntegerarray(_ context.Context, v []int32) error {
	r.ch <- value{"SetIntegerarray", "", v}
	return nil
}

func (r propsRecorder) SetSettingsBooleanarray(_ context.Context, v []bool) error {
	r.ch <- value{"SetBooleanarray", "", v}
	return nil
}

func (r propsRecorder) UnsetSettingsBooleanarray(context.Context) error {
	r.ch <- value{"UnsetBooleanarray", "", nil}
	return nil
}

func (r propsRecorder) SetSettingsLongintegerarray(_ context.Context, v []int64) error {
	r.ch <- value{"SetLongintegerarray", "", v}
	return nil
}

func (r propsRecorder) SetSettingsStringarray(_ context.Context, v []string) error {
	r.ch <- value{"SetStringarray", "", v}
	return nil
}

func (r propsRecorder) UnsetSettingsStringarray(context.Context) error {
	r.ch <- value{"UnsetStringarray", "", nil}
	return nil
}

func (r propsRecorder) SetSettingsBinaryblobarray(_ context.Context, v [][]byte) error {
	r.ch <- value{"SetBinaryblobarray", "", v}
	return nil
}

func (r propsRecorder) SetSettingsDatetimearray(_ context.Context, v []time.Time) error {
	r.ch <- value{"SetDatetimearray", "", v}
	return nil
}

func (r propsRecorder) UnsetSettingsDatetimearray(context.Context) error {
	r.ch <- value{"UnsetDatetimearray", "", nil}
	return nil
}

func TestGeneratedServerDatastreamHandler(t *testing.T) {
	a, d := connect(t)
	ch := make(chan value, 16)
	must(t, testifaces.RegisterServerDatastream(d, streamRecorder{ch}))
	must(t, a.SendDatastream(deviceID, testifaces.ServerDatastreamInterface().Name, "/c7/double", 21.5))
	if diff := cmp.Diff(value{"Double", "c7", float64(21.5)}, next(t, ch)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	must(t, a.SendDatastream(deviceID, testifaces.ServerDatastreamInterface().Name, "/c7/integer", int32(-7)))
	if diff := cmp.Diff(value{"Integer", "c7", int32(int32(-7))}, next(t, ch)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	must(t, a.SendDatastream(deviceID, testifaces.ServerDatastreamInterface().Name, "/c7/boolean", true))
	if diff := cmp.Diff(value{"Boolean", "c7", bool(true)}, next(t, ch)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	must(t, a.SendDatastream(deviceID, testifaces.ServerDatastreamInterface().Name, "/c7/longinteger", int64(1)<<40))
	if diff := cmp.Diff(value{"Longinteger", "c7", int64(int64(1) << 40)}, next(t, ch)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	must(t, a.SendDatastream(deviceID, testifaces.ServerDatastreamInterface().Name, "/c7/string", "héllo"))
	if diff := cmp.Diff(value{"String", "c7", string("héllo")}, next(t, ch)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	must(t, a.SendDatastream(deviceID, testifaces.ServerDatastreamInterface().Name, "/c7/binaryblob", []byte{1, 2, 3}))
	if diff := cmp.Diff(value{"Binaryblob", "c7", []byte([]byte{1, 2, 3})}, next(t, ch)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	must(t, a.SendDatastream(deviceID, testifaces.ServerDatastreamInterface().Name, "/c7/datetime", t0))
	if diff := cmp.Diff(value{"Datetime", "c7", time.Time(t0)}, next(t, ch)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	must(t, a.SendDatastream(deviceID, testifaces.ServerDatastreamInterface().Name, "/c7/doublearray", []float64{1.5, -2}))
	if diff := cmp.Diff(value{"Doublearray", "c7", []float64([]float64{1.5, -2})}, next(t, ch)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	must(t, a.SendDatastream(deviceID, testifaces.ServerDatastreamInterface().Name, "/c7/integerarray", []int32{1, 2}))
	if diff := cmp.Diff(value{"Integerarray", "c7", []int32([]int32{1, 2})}, next(t, ch)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	must(t, a.SendDatastream(deviceID, testifaces.ServerDatastreamInterface().Name, "/c7/booleanarray", []bool{true, false}))
	if diff := cmp.Diff(value{"Booleanarray", "c7", []bool([]bool{true, false})}, next(t, ch)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	must(t, a.SendDatastream(deviceID, testifaces.ServerDatastreamInterface().Name, "/c7/longintegerarray", []int64{-1, 1 << 50}))
	if diff := cmp.Diff(value{"Longintegerarray", "c7", []int64([]int64{-1, 1 << 50})}, next(t, ch)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	must(t, a.SendDatastream(deviceID, testifaces.ServerDatastreamInterface().Name, "/c7/stringarray", []string{"a", "b"}))
	if diff := cmp.Diff(value{"Stringarray", "c7", []string([]string{"a", "b"})}, next(t, ch)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	must(t, a.SendDatastream(deviceID, testifaces.ServerDatastreamInterface().Name, "/c7/binaryblobarray", [][]byte{{0}, {1}}))
	if diff := cmp.Diff(value{"Binaryblobarray", "c7", [][]byte([][]byte{{0}, {1}})}, next(t, ch)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	must(t, a.SendDatastream(deviceID, testifaces.ServerDatastreamInterface().Name, "/c7/datetimearray", []time.Time{t0}))
	if diff := cmp.Diff(value{"Datetimearray", "c7", []time.Time([]time.Time{t0})}, next(t, ch)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	must(t, a.SendDatastreamAt(deviceID, testifaces.ServerDatastreamInterface().Name, "/c7/stamped", 1.5, t0))
	if diff := cmp.Diff(value{"Stamped", "c7", []any{1.5, t0}}, next(t, ch)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

type commandRecorder struct {
	testifaces.UnimplementedServerAggregateHandler
	ch chan testifaces.ServerAggregateCommand
}

func (r commandRecorder) Command(_ context.Context, v testifaces.ServerAggregateCommand) error {
	r.ch <- v
	return nil
}

func TestGeneratedServerAggregateHandler(t *testing.T) {
	a, d := connect(t)
	ch := make(chan testifaces.ServerAggregateCommand, 1)
	must(t, testifaces.RegisterServerAggregate(d, commandRecorder{ch: ch}))
	must(t, a.SendDatastream(deviceID, testifaces.ServerAggregateInterface().Name, "/command", map[string]any{
		"name": "reboot", "args": []string{"now"}, "issued_at": t0, "payload": []byte{9}, "priority": int64(3)}))
	want := testifaces.ServerAggregateCommand{Name: "reboot", Args: ptr([]string{"now"}), IssuedAt: ptr(t0), Payload: ptr([]byte{9}), Priority: ptr[int64](3)}
	expectCommand(t, ch, want)
}

// expectCommand waits for the next object the handler received and
// compares it with want.
func expectCommand(t *testing.T, ch <-chan testifaces.ServerAggregateCommand, want testifaces.ServerAggregateCommand) {
	t.Helper()
	select {
	case got := <-ch:
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("handler not called")
	}
}

// ptr returns a pointer to v, for optional object fields.
func ptr[T any](v T) *T { return &v }

// TestOptionalObjectFieldsRoundTrip: an optional field left nil is absent
// on the wire, a zero value is sent as zero; from the server, an absent
// field arrives as nil and a zero one as a pointer to zero.
func TestOptionalObjectFieldsRoundTrip(t *testing.T) {
	a, d := connect(t)
	ctx := context.Background()
	sender := testifaces.NewDeviceAggregate(d)
	must(t, sender.SendClimate(ctx, "hq", "a", testifaces.DeviceAggregateClimate{Temperature: 0}, t0))
	must(t, sender.SendClimate(ctx, "hq", "b", testifaces.DeviceAggregateClimate{Temperature: 0, Humidity: ptr(0.0), Co2Ppm: ptr[int32](0), WindowOpen: ptr(false), Readings: ptr([]float64{}), SensorName: ptr("")}, t0))
	name := testifaces.DeviceAggregateInterface().Name
	want := []astartetest.Received{
		{Interface: name, Path: "/hq/a/climate", Timestamp: t0, QoS: 1, Value: map[string]any{"temperature": 0.0}},
		{Interface: name, Path: "/hq/b/climate", Timestamp: t0, QoS: 1, Value: map[string]any{
			"temperature": 0.0, "humidity": 0.0, "co2_ppm": int32(0), "window_open": false, "readings": []float64{}, "sensor_name": ""}},
	}
	if diff := cmp.Diff(want, a.WaitReceived(t, deviceID, 2), byPath); diff != "" {
		t.Errorf("received (-want +got):\n%s", diff)
	}

	ch := make(chan testifaces.ServerAggregateCommand, 2)
	must(t, testifaces.RegisterServerAggregate(d, commandRecorder{ch: ch}))
	cmd := testifaces.ServerAggregateInterface().Name
	must(t, a.SendDatastream(deviceID, cmd, "/command", map[string]any{"name": "absent"}))
	must(t, a.SendDatastream(deviceID, cmd, "/command", map[string]any{"name": "zero", "args": []string{}, "payload": []byte{}, "priority": int64(0)}))
	for _, want := range []testifaces.ServerAggregateCommand{
		{Name: "absent"},
		{Name: "zero", Args: ptr([]string{}), Payload: ptr([]byte{}), Priority: ptr[int64](0)},
	} {
		expectCommand(t, ch, want)
	}
}

func TestGeneratedServerPropertiesHandlerAndGetters(t *testing.T) {
	a, d := connect(t)
	ch := make(chan value, 32)
	must(t, testifaces.RegisterServerProperties(d, propsRecorder{ch}))
	p := testifaces.NewServerProperties(d)
	must(t, a.SetProperty(deviceID, testifaces.ServerPropertiesInterface().Name, "/settings/double", 21.5))
	if diff := cmp.Diff(value{"SetDouble", "", float64(21.5)}, next(t, ch)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if v, ok, err := p.GetSettingsDouble(); err != nil || !ok || !cmp.Equal(v, float64(21.5)) {
		t.Errorf("getter SettingsDouble = %v, %v, %v", v, ok, err)
	}
	must(t, a.SetProperty(deviceID, testifaces.ServerPropertiesInterface().Name, "/settings/integer", int32(-7)))
	if diff := cmp.Diff(value{"SetInteger", "", int32(int32(-7))}, next(t, ch)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if v, ok, err := p.GetSettingsInteger(); err != nil || !ok || !cmp.Equal(v, int32(int32(-7))) {
		t.Errorf("getter SettingsInteger = %v, %v, %v", v, ok, err)
	}
	must(t, a.UnsetProperty(deviceID, testifaces.ServerPropertiesInterface().Name, "/settings/integer"))
	if got := next(t, ch); got.Method != "UnsetInteger" {
		t.Errorf("unset reached %s", got.Method)
	}
	if _, ok, _ := p.GetSettingsInteger(); ok {
		t.Errorf("SettingsInteger still cached after unset")
	}
	must(t, a.SetProperty(deviceID, testifaces.ServerPropertiesInterface().Name, "/settings/boolean", true))
	if diff := cmp.Diff(value{"SetBoolean", "", bool(true)}, next(t, ch)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if v, ok, err := p.GetSettingsBoolean(); err != nil || !ok || !cmp.Equal(v, bool(true)) {
		t.Errorf("getter SettingsBoolean = %v, %v, %v", v, ok, err)
	}
	must(t, a.SetProperty(deviceID, testifaces.ServerPropertiesInterface().Name, "/settings/longinteger", int64(1)<<40))
	if diff := cmp.Diff(value{"SetLonginteger", "", int64(int64(1) << 40)}, next(t, ch)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if v, ok, err := p.GetSettingsLonginteger(); err != nil || !ok || !cmp.Equal(v, int64(int64(1)<<40)) {
		t.Errorf("getter SettingsLonginteger = %v, %v, %v", v, ok, err)
	}
	must(t, a.UnsetProperty(deviceID, testifaces.ServerPropertiesInterface().Name, "/settings/longinteger"))
	if got := next(t, ch); got.Method != "UnsetLonginteger" {
		t.Errorf("unset reached %s", got.Method)
	}
	if _, ok, _ := p.GetSettingsLonginteger(); ok {
		t.Errorf("SettingsLonginteger still cached after unset")
	}
	must(t, a.SetProperty(deviceID, testifaces.ServerPropertiesInterface().Name, "/settings/string", "héllo"))
	if diff := cmp.Diff(value{"SetString", "", string("héllo")}, next(t, ch)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if v, ok, err := p.GetSettingsString(); err != nil || !ok || !cmp.Equal(v, string("héllo")) {
		t.Errorf("getter SettingsString = %v, %v, %v", v, ok, err)
	}
	must(t, a.SetProperty(deviceID, testifaces.ServerPropertiesInterface().Name, "/settings/binaryblob", []byte{1, 2, 3}))
	if diff := cmp.Diff(value{"SetBinaryblob", "", []byte([]byte{1, 2, 3})}, next(t, ch)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if v, ok, err := p.GetSettingsBinaryblob(); err != nil || !ok || !cmp.Equal(v, []byte([]byte{1, 2, 3})) {
		t.Errorf("getter SettingsBinaryblob = %v, %v, %v", v, ok, err)
	}
	must(t, a.UnsetProperty(deviceID, testifaces.ServerPropertiesInterface().Name, "/settings/binaryblob"))
	if got := next(t, ch); got.Method != "UnsetBinaryblob" {
		t.Errorf("unset reached %s", got.Method)
	}
	if _, ok, _ := p.GetSettingsBinaryblob(); ok {
		t.Errorf("SettingsBinaryblob still cached after unset")
	}
	must(t, a.SetProperty(deviceID, testifaces.ServerPropertiesInterface().Name, "/settings/datetime", t0))
	if diff := cmp.Diff(value{"SetDatetime", "", time.Time(t0)}, next(t, ch)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if v, ok, err := p.GetSettingsDatetime(); err != nil || !ok || !cmp.Equal(v, time.Time(t0)) {
		t.Errorf("getter SettingsDatetime = %v, %v, %v", v, ok, err)
	}
	must(t, a.SetProperty(deviceID, testifaces.ServerPropertiesInterface().Name, "/settings/doublearray", []float64{1.5, -2}))
	if diff := cmp.Diff(value{"SetDoublearray", "", []float64([]float64{1.5, -2})}, next(t, ch)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if v, ok, err := p.GetSettingsDoublearray(); err != nil || !ok || !cmp.Equal(v, []float64([]float64{1.5, -2})) {
		t.Errorf("getter SettingsDoublearray = %v, %v, %v", v, ok, err)
	}
	must(t, a.UnsetProperty(deviceID, testifaces.ServerPropertiesInterface().Name, "/settings/doublearray"))
	if got := next(t, ch); got.Method != "UnsetDoublearray" {
		t.Errorf("unset reached %s", got.Method)
	}
	if _, ok, _ := p.GetSettingsDoublearray(); ok {
		t.Errorf("SettingsDoublearray still cached after unset")
	}
	must(t, a.SetProperty(deviceID, testifaces.ServerPropertiesInterface().Name, "/settings/integerarray", []int32{1, 2}))
	if diff := cmp.Diff(value{"SetIntegerarray", "", []int32([]int32{1, 2})}, next(t, ch)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if v, ok, err := p.GetSettingsIntegerarray(); err != nil || !ok || !cmp.Equal(v, []int32([]int32{1, 2})) {
		t.Errorf("getter SettingsIntegerarray = %v, %v, %v", v, ok, err)
	}
	must(t, a.SetProperty(deviceID, testifaces.ServerPropertiesInterface().Name, "/settings/booleanarray", []bool{true, false}))
	if diff := cmp.Diff(value{"SetBooleanarray", "", []bool([]bool{true, false})}, next(t, ch)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if v, ok, err := p.GetSettingsBooleanarray(); err != nil || !ok || !cmp.Equal(v, []bool([]bool{true, false})) {
		t.Errorf("getter SettingsBooleanarray = %v, %v, %v", v, ok, err)
	}
	must(t, a.UnsetProperty(deviceID, testifaces.ServerPropertiesInterface().Name, "/settings/booleanarray"))
	if got := next(t, ch); got.Method != "UnsetBooleanarray" {
		t.Errorf("unset reached %s", got.Method)
	}
	if _, ok, _ := p.GetSettingsBooleanarray(); ok {
		t.Errorf("SettingsBooleanarray still cached after unset")
	}
	must(t, a.SetProperty(deviceID, testifaces.ServerPropertiesInterface().Name, "/settings/longintegerarray", []int64{-1, 1 << 50}))
	if diff := cmp.Diff(value{"SetLongintegerarray", "", []int64([]int64{-1, 1 << 50})}, next(t, ch)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if v, ok, err := p.GetSettingsLongintegerarray(); err != nil || !ok || !cmp.Equal(v, []int64([]int64{-1, 1 << 50})) {
		t.Errorf("getter SettingsLongintegerarray = %v, %v, %v", v, ok, err)
	}
	must(t, a.SetProperty(deviceID, testifaces.ServerPropertiesInterface().Name, "/settings/stringarray", []string{"a", "b"}))
	if diff := cmp.Diff(value{"SetStringarray", "", []string([]string{"a", "b"})}, next(t, ch)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if v, ok, err := p.GetSettingsStringarray(); err != nil || !ok || !cmp.Equal(v, []string([]string{"a", "b"})) {
		t.Errorf("getter SettingsStringarray = %v, %v, %v", v, ok, err)
	}
	must(t, a.UnsetProperty(deviceID, testifaces.ServerPropertiesInterface().Name, "/settings/stringarray"))
	if got := next(t, ch); got.Method != "UnsetStringarray" {
		t.Errorf("unset reached %s", got.Method)
	}
	if _, ok, _ := p.GetSettingsStringarray(); ok {
		t.Errorf("SettingsStringarray still cached after unset")
	}
	must(t, a.SetProperty(deviceID, testifaces.ServerPropertiesInterface().Name, "/settings/binaryblobarray", [][]byte{{0}, {1}}))
	if diff := cmp.Diff(value{"SetBinaryblobarray", "", [][]byte([][]byte{{0}, {1}})}, next(t, ch)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if v, ok, err := p.GetSettingsBinaryblobarray(); err != nil || !ok || !cmp.Equal(v, [][]byte([][]byte{{0}, {1}})) {
		t.Errorf("getter SettingsBinaryblobarray = %v, %v, %v", v, ok, err)
	}
	must(t, a.SetProperty(deviceID, testifaces.ServerPropertiesInterface().Name, "/settings/datetimearray", []time.Time{t0}))
	if diff := cmp.Diff(value{"SetDatetimearray", "", []time.Time([]time.Time{t0})}, next(t, ch)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if v, ok, err := p.GetSettingsDatetimearray(); err != nil || !ok || !cmp.Equal(v, []time.Time([]time.Time{t0})) {
		t.Errorf("getter SettingsDatetimearray = %v, %v, %v", v, ok, err)
	}
	must(t, a.UnsetProperty(deviceID, testifaces.ServerPropertiesInterface().Name, "/settings/datetimearray"))
	if got := next(t, ch); got.Method != "UnsetDatetimearray" {
		t.Errorf("unset reached %s", got.Method)
	}
	if _, ok, _ := p.GetSettingsDatetimearray(); ok {
		t.Errorf("SettingsDatetimearray still cached after unset")
	}
}

// TestPropertyListing: the All accessors return exactly the set instances
// of a parametric property after sets, unsets and a restart of the device
// on the same store; one parameter keys by string, several by a struct.
func TestPropertyListing(t *testing.T) {
	a := astartetest.New(t, testifaces.Interfaces()...)
	cfg, err := a.DeviceConfig(deviceID)
	if err != nil {
		t.Fatal(err)
	}
	cfg.StoreDir = t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := runtime.New(cfg, testifaces.Interfaces()...)
	must(t, err)
	must(t, d.Connect(ctx))
	ch := make(chan value, 8)
	must(t, testifaces.RegisterServerProperties(d, propsRecorder{ch}))

	th, dp := testifaces.NewThresholds(d), testifaces.NewDeviceProperties(d)
	must(t, th.SetSensorsThreshold(ctx, "s1", 10))
	must(t, th.SetSensorsThreshold(ctx, "s2", 0))
	must(t, th.SetSensorsThreshold(ctx, "s3", 30))
	must(t, th.UnsetSensorsThreshold(ctx, "s2"))
	must(t, th.SetSensorsThreshold(ctx, "s1", 11))
	must(t, dp.SetDouble(ctx, "g1", "a", 1.5))
	must(t, dp.SetDouble(ctx, "g2", "a", 2.5))
	must(t, dp.UnsetDouble(ctx, "g1", "a"))
	leds := testifaces.ServerPropertiesInterface().Name
	must(t, a.SetProperty(deviceID, leds, "/leds/l1/target", 0.5))
	must(t, a.SetProperty(deviceID, leds, "/leds/l2/target", 0.25))
	must(t, a.UnsetProperty(deviceID, leds, "/leds/l1/target"))
	for range 3 {
		next(t, ch)
	}
	check := func(when string, d *runtime.Device) {
		t.Helper()
		thresholds, err := testifaces.NewThresholds(d).AllSensorsThreshold()
		if diff := cmp.Diff(map[string]int32{"s1": 11, "s3": 30}, thresholds); err != nil || diff != "" {
			t.Errorf("%s: AllSensorsThreshold: %v (-want +got):\n%s", when, err, diff)
		}
		doubles, err := testifaces.NewDeviceProperties(d).AllDouble()
		if diff := cmp.Diff(map[testifaces.DevicePropertiesDoubleKey]float64{{Group: "g2", Item: "a"}: 2.5}, doubles); err != nil || diff != "" {
			t.Errorf("%s: AllDouble: %v (-want +got):\n%s", when, err, diff)
		}
		targets, err := testifaces.NewServerProperties(d).AllLedsTarget()
		if diff := cmp.Diff(map[string]float64{"l2": 0.25}, targets); err != nil || diff != "" {
			t.Errorf("%s: AllLedsTarget: %v (-want +got):\n%s", when, err, diff)
		}
		all, err := d.Properties(testifaces.ThresholdsInterface().Name)
		var paths []string
		for _, p := range all {
			v, _ := p.Value.Integer()
			paths = append(paths, fmt.Sprintf("%s %v %d", p.Path, p.Params, v))
		}
		if diff := cmp.Diff([]string{"/sensors/s1/threshold [s1] 11", "/sensors/s3/threshold [s3] 30"}, paths); err != nil || diff != "" {
			t.Errorf("%s: Device.Properties: %v (-want +got):\n%s", when, err, diff)
		}
	}
	check("connected", d)
	must(t, d.Close(ctx))
	d2, err := runtime.New(cfg, testifaces.Interfaces()...)
	must(t, err)
	defer d2.Close(context.Background())
	check("after a restart", d2)
}
