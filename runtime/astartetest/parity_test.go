package astartetest_test

import (
	"bytes"
	"compress/zlib"
	"crypto/tls"
	"encoding/binary"
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"

	"github.com/astarte-gen/astarte-gen/runtime/astartetest"
	"github.com/astarte-gen/astarte-gen/runtime/model"
)

// Interfaces of the decoder parity tests.
var (
	parityDS = &model.Interface{
		Name: "org.astartegen.parity.Stream", Major: 1, Type: model.Datastream, Ownership: model.OwnershipDevice,
		Mappings: []model.Mapping{
			{Endpoint: "/i", Type: model.Integer},
			{Endpoint: "/l", Type: model.LongInteger},
			{Endpoint: "/d", Type: model.Double},
			{Endpoint: "/s", Type: model.String},
			{Endpoint: "/b", Type: model.BinaryBlob},
			{Endpoint: "/bool", Type: model.Boolean},
			{Endpoint: "/la", Type: model.LongIntegerArray},
			{Endpoint: "/ia", Type: model.IntegerArray},
			{Endpoint: "/ts", Type: model.Integer, ExplicitTimestamp: true},
			{Endpoint: "/deep/%{p}/x", Type: model.Integer},
		},
	}
	parityProps = &model.Interface{
		Name: "org.astartegen.parity.Props", Major: 1, Type: model.Properties, Ownership: model.OwnershipDevice,
		Mappings: []model.Mapping{
			{Endpoint: "/%{s}/blob", Type: model.BinaryBlob, AllowUnset: true},
			{Endpoint: "/%{s}/fixed", Type: model.BinaryBlob},
		},
	}
	parityObj = &model.Interface{
		Name: "org.astartegen.parity.Obj", Major: 1, Type: model.Datastream, Ownership: model.OwnershipDevice,
		Aggregation: model.Object,
		Mappings: []model.Mapping{
			{Endpoint: "/%{s}/a", Type: model.Double},
			{Endpoint: "/%{s}/b", Type: model.Integer},
		},
	}
	parityServer = &model.Interface{
		Name: "org.astartegen.parity.Server", Major: 1, Type: model.Datastream, Ownership: model.OwnershipServer,
		Mappings: []model.Mapping{{Endpoint: "/i", Type: model.Integer}},
	}
	parityIntrospection = "org.astartegen.parity.Stream:1:0;org.astartegen.parity.Props:1:0;org.astartegen.parity.Obj:1:0;org.astartegen.parity.Server:1:0"
)

// doc builds a BSON document from key/value pairs appended by fn.
func doc(fn func(b *bsoncore.DocumentBuilder)) []byte {
	b := bsoncore.NewDocumentBuilder()
	fn(b)
	return b.Build()
}

func vInt32(n int32) []byte { return doc(func(b *bsoncore.DocumentBuilder) { b.AppendInt32("v", n) }) }
func vInt64(n int64) []byte { return doc(func(b *bsoncore.DocumentBuilder) { b.AppendInt64("v", n) }) }
func vDouble(f float64) []byte {
	return doc(func(b *bsoncore.DocumentBuilder) { b.AppendDouble("v", f) })
}
func vBinary(sub byte, data []byte) []byte {
	return doc(func(b *bsoncore.DocumentBuilder) { b.AppendBinary("v", sub, data) })
}

// nanPayload is {"v": NaN} with the given bit pattern.
func nanPayload(bits uint64) []byte {
	p := vDouble(0)
	binary.LittleEndian.PutUint64(p[7:], bits)
	return p
}

func int32Array(n int) []byte {
	ab := bsoncore.NewArrayBuilder()
	for i := range n {
		ab.AppendInt32(int32(i))
	}
	arr := ab.Build()
	return doc(func(b *bsoncore.DocumentBuilder) { b.AppendArray("v", arr) })
}

// parityCase is one device message and what Astarte does with it (spec
// §3.5, §5.2): accept it (value, or unset), or refuse it with an error name,
// disconnecting the device for every error but unset_on_datastream.
type parityCase struct {
	name    string
	rest    string // topic after <realm>/<device_id>/
	payload []byte
	value   any    // accepted value (nil with unset)
	unset   bool   // accepted as an unset
	ts      bool   // accepted with the explicit timestamp of tsPayload
	errName string // refused with this error
}

var tsValue = time.UnixMilli(1537449422890).UTC()

func parityCases() []parityCase {
	ds, props, obj := parityDS.Name, parityProps.Name, parityObj.Name
	return []parityCase{
		// §3.5.1 types accepted from a device.
		{name: "integer as int32", rest: ds + "/i", payload: vInt32(5), value: int32(5)},
		{name: "integer as int64 in range", rest: ds + "/i", payload: vInt64(-2147483647), value: int32(-2147483647)},
		{name: "integer -2^31 refused", rest: ds + "/i", payload: vInt32(math.MinInt32), errName: "unexpected_value_type"},
		{name: "integer int64 out of range", rest: ds + "/i", payload: vInt64(1 << 31), errName: "unexpected_value_type"},
		{name: "longinteger as int32", rest: ds + "/l", payload: vInt32(42), value: int64(42)},
		{name: "longinteger -2^63 refused", rest: ds + "/l", payload: vInt64(math.MinInt64), errName: "unexpected_value_type"},
		{name: "longinteger as double refused", rest: ds + "/l", payload: vDouble(1), errName: "unexpected_value_type"},
		{name: "double as int32", rest: ds + "/d", payload: vInt32(5), value: float64(5)},
		{name: "double as int64", rest: ds + "/d", payload: vInt64(1 << 40), value: float64(1 << 40)},
		{name: "double +Inf", rest: ds + "/d", payload: vDouble(math.Inf(1)), errName: "unexpected_value_type"},
		{name: "double canonical NaN", rest: ds + "/d", payload: nanPayload(0x7ff8000000000000), errName: "unexpected_value_type"},
		{name: "double other NaN undecodable", rest: ds + "/d", payload: nanPayload(0x7ff8000000000001), errName: "undecodable_bson_payload"},
		{name: "double subnormal accepted", rest: ds + "/d", payload: vDouble(5e-324), value: 5e-324},
		{name: "boolean as int32 refused", rest: ds + "/bool", payload: vInt32(1), errName: "unexpected_value_type"},
		{name: "string not UTF-8", rest: ds + "/s", payload: doc(func(b *bsoncore.DocumentBuilder) { b.AppendString("v", "\xff") }), errName: "unexpected_value_type"},
		{name: "binaryblob any subtype", rest: ds + "/b", payload: vBinary(0x80, []byte{1}), value: []byte{1}},
		{name: "binaryblob as string refused", rest: ds + "/b", payload: doc(func(b *bsoncore.DocumentBuilder) { b.AppendString("v", "x") }), errName: "unexpected_value_type"},
		{name: "longintegerarray of int32", rest: ds + "/la", payload: int32Array(3), value: []int64{0, 1, 2}},
		{name: "empty array", rest: ds + "/ia", payload: int32Array(0), value: []int32{}},
		{name: "array over 1024 elements", rest: ds + "/ia", payload: int32Array(1025), errName: "value_size_exceeded"},
		// §3.5 document keys.
		{name: "unknown keys and metadata ignored", rest: ds + "/i", payload: doc(func(b *bsoncore.DocumentBuilder) {
			b.AppendInt32("v", 3).AppendString("x", "y").AppendDocument("m", doc(func(*bsoncore.DocumentBuilder) {}))
		}), value: int32(3)},
		{name: "t used with explicit_timestamp", rest: ds + "/ts", payload: doc(func(b *bsoncore.DocumentBuilder) {
			b.AppendInt32("v", 1).AppendDateTime("t", tsValue.UnixMilli())
		}), value: int32(1), ts: true},
		{name: "t ignored without explicit_timestamp", rest: ds + "/i", payload: doc(func(b *bsoncore.DocumentBuilder) {
			b.AppendInt32("v", 1).AppendDateTime("t", tsValue.UnixMilli())
		}), value: int32(1)},
		{name: "t of another type ignored", rest: ds + "/ts", payload: doc(func(b *bsoncore.DocumentBuilder) {
			b.AppendInt32("v", 2).AppendString("t", "yesterday")
		}), value: int32(2)},
		{name: "missing t on explicit_timestamp accepted", rest: ds + "/ts", payload: vInt32(4), value: int32(4)},
		{name: "no v on an individual", rest: ds + "/i", payload: doc(func(b *bsoncore.DocumentBuilder) { b.AppendInt32("w", 1) }), errName: "unexpected_value_type"},
		{name: "not BSON", rest: ds + "/i", payload: []byte{1, 2, 3}, errName: "undecodable_bson_payload"},
		// §3.5.4 unset.
		{name: "empty binary v on property is an unset", rest: props + "/x/blob", payload: vBinary(0, nil), unset: true},
		{name: "null v on property is an unset", rest: props + "/x/blob", payload: doc(func(b *bsoncore.DocumentBuilder) { b.AppendNull("v") }), unset: true},
		{name: "empty payload on property is an unset", rest: props + "/x/blob", payload: nil, unset: true},
		{name: "empty binary v without allow_unset", rest: props + "/x/fixed", payload: vBinary(0, nil), errName: "unset_not_allowed"},
		{name: "empty payload on datastream dropped", rest: ds + "/i", payload: nil, errName: "unset_on_datastream"},
		{name: "empty binary v on datastream dropped", rest: ds + "/b", payload: vBinary(0, nil), errName: "unset_on_datastream"},
		{name: "empty binary v with t is an empty value", rest: ds + "/b", payload: doc(func(b *bsoncore.DocumentBuilder) {
			b.AppendBinary("v", 0, nil).AppendDateTime("t", tsValue.UnixMilli())
		}), value: []byte{}},
		{name: "null v with t on property is an unset", rest: props + "/x/blob", payload: doc(func(b *bsoncore.DocumentBuilder) {
			b.AppendNull("v").AppendDateTime("t", tsValue.UnixMilli())
		}), unset: true},
		// §3.5.3 objects.
		{name: "object", rest: obj + "/r1", payload: doc(func(b *bsoncore.DocumentBuilder) {
			b.AppendDocument("v", doc(func(o *bsoncore.DocumentBuilder) { o.AppendInt32("b", 1).AppendDouble("a", 0.5) }))
		}), value: map[string]any{"a": 0.5, "b": int32(1)}},
		{name: "legacy object without v", rest: obj + "/r1", payload: doc(func(b *bsoncore.DocumentBuilder) { b.AppendDouble("a", 1.5) }), value: map[string]any{"a": 1.5}},
		{name: "object with unknown key", rest: obj + "/r1", payload: doc(func(b *bsoncore.DocumentBuilder) {
			b.AppendDocument("v", doc(func(o *bsoncore.DocumentBuilder) { o.AppendInt32("c", 1) }))
		}), errName: "unexpected_object_key"},
		{name: "object on an individual", rest: ds + "/i", payload: doc(func(b *bsoncore.DocumentBuilder) {
			b.AppendDocument("v", doc(func(o *bsoncore.DocumentBuilder) { o.AppendInt32("i", 1) }))
		}), errName: "unexpected_value_type"},
		{name: "individual on an object", rest: obj + "/r1", payload: vDouble(1), errName: "unexpected_value_type"},
		// §4.6, §5.2 topics.
		{name: "path with //", rest: ds + "/deep//x", payload: vInt32(1), errName: "invalid_path"},
		{name: "path prefix of an endpoint", rest: ds + "/deep/p1", payload: vInt32(1), errName: "ambiguous_path"},
		{name: "path of no endpoint", rest: ds + "/nope", payload: vInt32(1), errName: "mapping_not_found"},
		{name: "server-owned interface", rest: parityServer.Name + "/i", payload: vInt32(1), errName: "write_on_server_owned_interface"},
		{name: "interface not in the introspection", rest: "org.astartegen.parity.Other/i", payload: vInt32(1), errName: "interface_loading_failed"},
		{name: "unknown control message", rest: "control/nope", payload: []byte("1"), errName: "unexpected_control_message"},
		{name: "malformed capabilities", rest: "capabilities", payload: doc(func(b *bsoncore.DocumentBuilder) {
			b.AppendString("purge_properties_compression_format", "gzip")
		}), errName: "malformed_capabilities_message"},
		{name: "invalid purge list", rest: "control/producer/properties", payload: []byte{0, 0, 0, 5, 1, 2}, errName: "purge_properties_error"},
	}
}

// parityClient keeps one raw MQTT connection for a device, reconnecting
// after the fake disconnected it.
type parityClient struct {
	t    *testing.T
	a    *astartetest.Astarte
	cert tls.Certificate
	c    mqtt.Client
}

func (p *parityClient) conn() mqtt.Client {
	p.t.Helper()
	if p.c != nil && p.c.IsConnectionOpen() {
		return p.c
	}
	c, err := dialClean(p.a, "", true, p.cert)
	if err != nil {
		p.t.Fatal(err)
	}
	p.c = c
	p.t.Cleanup(func() { c.Disconnect(0) })
	return c
}

func (p *parityClient) publish(rest string, qos byte, payload []byte) {
	topic := "test/" + devA
	if rest != "" {
		topic += "/" + rest
	}
	p.conn().Publish(topic, qos, false, payload).WaitTimeout(2 * time.Second)
}

// TestDecoderParity: every payload rule of spec §3.5 and §5.2, decided as
// Astarte decides it.
func TestDecoderParity(t *testing.T) {
	a := astartetest.New(t, parityDS, parityProps, parityObj, parityServer)
	p := &parityClient{t: t, a: a, cert: issue(t, a, devA)}
	p.publish("", 2, []byte(parityIntrospection))
	sentinel := vInt32(77) // an accepted message proves the connection alive
	for _, tc := range parityCases() {
		t.Run(tc.name, func(t *testing.T) {
			received, errs := a.ReceivedCount(devA), len(a.Errors(devA))
			p.publish(tc.rest, 2, tc.payload)
			if tc.errName != "" {
				ev := a.WaitEvent(t, devA, "error ", errs)
				if ev != "error "+tc.errName {
					t.Fatalf("got %q, want error %s", ev, tc.errName)
				}
				if got := a.ReceivedCount(devA); got != received {
					t.Errorf("refused message stored: %d messages, want %d", got, received)
				}
				if tc.errName != "unset_on_datastream" {
					a.WaitFor(t, "device disconnected", func() bool { return !p.c.IsConnectionOpen() })
					return
				}
				p.publish(parityDS.Name+"/i", 2, sentinel)
				if got := a.WaitReceived(t, devA, received+1); got[len(got)-1].Value != int32(77) || !p.c.IsConnectionOpen() {
					t.Errorf("device disconnected after %s", tc.errName)
				}
				return
			}
			got := a.WaitReceived(t, devA, received+1)[received]
			if len(a.Errors(devA)) != errs {
				t.Fatalf("errors %q", a.Errors(devA))
			}
			if got.Unset != tc.unset || !reflect.DeepEqual(got.Value, tc.value) {
				t.Errorf("received %+v, want value %#v unset %v", got, tc.value, tc.unset)
			}
			if tc.ts != !got.Timestamp.IsZero() || tc.ts && !got.Timestamp.Equal(tsValue) {
				t.Errorf("timestamp %v, want explicit %v", got.Timestamp, tc.ts)
			}
		})
	}
}

// TestPacketSizeLimit: a device packet whose remaining length exceeds
// 65,535 bytes closes the connection (spec §3.1); one at the limit passes.
func TestPacketSizeLimit(t *testing.T) {
	a := astartetest.New(t, parityDS, parityProps, parityObj, parityServer)
	p := &parityClient{t: t, a: a, cert: issue(t, a, devA)}
	p.publish("", 2, []byte(parityIntrospection))
	topic := "test/" + devA + "/" + parityDS.Name + "/b"
	// remaining length = 2 + len(topic) + 2 (packet id) + payload
	room := 65535 - 2 - len(topic) - 2
	blob := func(n int) []byte { return vBinary(0, make([]byte, n-(len(vBinary(0, nil))))) }
	p.publish(parityDS.Name+"/b", 1, blob(room))
	if got := a.WaitReceived(t, devA, 1); len(got[0].Value.([]byte)) != room-len(vBinary(0, nil)) {
		t.Fatalf("payload at the limit not received intact")
	}
	p.publish(parityDS.Name+"/b", 1, blob(room+1))
	a.WaitFor(t, "device disconnected", func() bool { return !p.c.IsConnectionOpen() })
	if n := a.ReceivedCount(devA); n != 1 {
		t.Errorf("%d messages received, want 1", n)
	}
}

// TestPurgeFormats: the purge list header is not checked (the Python SDK
// writes it little-endian), the bare 00000000 is an empty list, and after
// the plaintext capability the list is raw text in both directions.
func TestPurgeFormats(t *testing.T) {
	a := astartetest.New(t, parityDS, parityProps, parityObj, parityServer)
	p := &parityClient{t: t, a: a, cert: issue(t, a, devA)}
	p.publish("", 2, []byte(parityIntrospection))
	set := func(path string) {
		p.publish(parityProps.Name+path, 2, vBinary(0, []byte{1}))
	}
	set("/k1/blob")
	set("/k2/blob")
	set("/k3/blob")
	a.WaitReceived(t, devA, 3)

	var z bytes.Buffer
	w := zlib.NewWriter(&z)
	_, _ = w.Write([]byte(parityProps.Name + "/k1/blob;" + parityProps.Name + "/k2/blob"))
	_ = w.Close()
	le := binary.LittleEndian.AppendUint32(nil, uint32(2*len(parityProps.Name)+16))
	p.publish("control/producer/properties", 2, append(le, z.Bytes()...))
	a.WaitEvent(t, devA, "producer/properties", 0)
	if got := mapsKeys(a.DeviceProperties(devA)); !slices.Equal(got, []string{parityProps.Name + "/k1/blob", parityProps.Name + "/k2/blob"}) {
		t.Fatalf("after a little-endian purge: %v", got)
	}
	p.publish("capabilities", 2, doc(func(b *bsoncore.DocumentBuilder) {
		b.AppendString("purge_properties_compression_format", "plaintext")
	}))
	p.publish("control/producer/properties", 2, []byte(parityProps.Name+"/k2/blob"))
	a.WaitEvent(t, devA, "producer/properties", 1)
	if got := mapsKeys(a.DeviceProperties(devA)); !slices.Equal(got, []string{parityProps.Name + "/k2/blob"}) {
		t.Fatalf("after a plaintext purge: %v", got)
	}
	p.publish("capabilities", 2, doc(func(b *bsoncore.DocumentBuilder) {
		b.AppendString("purge_properties_compression_format", "zlib")
	}))
	p.publish("control/producer/properties", 2, []byte{0, 0, 0, 0})
	a.WaitEvent(t, devA, "producer/properties", 2)
	if got := a.DeviceProperties(devA); len(got) != 0 || len(a.Errors(devA)) != 0 {
		t.Fatalf("after an empty purge: %v, errors %q", got, a.Errors(devA))
	}
}

func mapsKeys(m map[string]any) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
