package astartetest

import (
	"bytes"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/astarte-gen/astarte-gen/internal/testcorpus"
	"github.com/astarte-gen/astarte-gen/internal/wire"
	"github.com/astarte-gen/astarte-gen/runtime/model"
	"github.com/astarte-gen/astarte-gen/schema"
)

// recordedSession is session.json of ../shared/conformance/<client>/ (see
// its README).
type recordedSession struct {
	Realm      string   `json:"realm"`
	DeviceID   string   `json:"device_id"`
	Interfaces []string `json:"interfaces"`
	Calls      []struct {
		Op    string          `json:"op"`
		Name  string          `json:"name"`
		Iface string          `json:"iface"`
		Path  string          `json:"path"`
		Type  string          `json:"type"`
		Value json.RawMessage `json:"value"`
		Obj   map[string]struct {
			Type  string          `json:"type"`
			Value json.RawMessage `json:"value"`
		} `json:"object"`
	} `json:"calls"`
	Packets []struct {
		Conn    int    `json:"conn"`
		Phase   string `json:"phase"`
		Type    string `json:"type"`
		Clean   bool   `json:"clean_session"`
		Topic   string `json:"topic"`
		QoS     byte   `json:"qos"`
		Payload string `json:"payload_hex"`
		Filters []struct {
			Filter string `json:"filter"`
			QoS    byte   `json:"qos"`
		} `json:"filters"`
	} `json:"device_packets"`
	FakeErrors []string `json:"fake_errors"`
}

// conformanceDir locates ../shared/conformance beside the repository (or
// $ASTARTE_CONFORMANCE) and skips the test when it is absent.
func conformanceDir(t *testing.T) string {
	dir := os.Getenv("ASTARTE_CONFORMANCE")
	if dir == "" {
		_, file, _, _ := goruntime.Caller(0) // <root>/runtime/astartetest/conformance_test.go
		dir = filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "conformance")
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		t.Skipf("conformance recordings not found at %s (set ASTARTE_CONFORMANCE): skipping", dir)
	}
	return dir
}

// TestConformancePythonSDK replays what the official Python SDK 0.14 put on
// the wire, packet by packet, as a raw MQTT client with a certificate from
// the fake and the SDK's empty client id. The fake must accept every
// message Astarte accepts and refuse (with a forced disconnect) the one it
// refuses; the runtime's device decoder must decode every data payload to
// the value the SDK was asked to send.
func TestConformancePythonSDK(t *testing.T) {
	dir := filepath.Join(conformanceDir(t), "python-sdk-0.14.0")
	data, err := os.ReadFile(filepath.Join(dir, "session.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s recordedSession
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	corpus := testcorpus.Dir(t)
	files := make([]string, len(s.Interfaces))
	for i, f := range s.Interfaces {
		files[i] = filepath.Join(corpus, f)
	}
	res, err := schema.LoadFiles(files)
	if err != nil || len(res.Errors()) > 0 {
		t.Fatalf("interfaces: %v %v", err, res.Errors())
	}
	var ifaces []*model.Interface
	for _, l := range res.Interfaces {
		ifaces = append(ifaces, l.Interface)
	}
	a := New(t, ifaces...)
	if s.Realm != a.Realm() {
		t.Fatalf("recorded realm %s", s.Realm)
	}
	cert, err := a.IssueCertificate(s.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	base := s.Realm + "/" + s.DeviceID
	expand := func(topic string) string {
		return strings.NewReplacer("{realm}", s.Realm, "{device_id}", s.DeviceID).Replace(topic)
	}

	// Replay, one connection after the other.
	var c mqtt.Client
	dataPackets := map[string][][]byte{} // phase → data payloads in order
	dataTopics := map[string][]string{}
	published := 0
	for _, p := range s.Packets {
		switch p.Type {
		case "Connect":
			if c != nil {
				c.Disconnect(0)
				a.WaitFor(t, "previous connection closed", func() bool { return !c.IsConnectionOpen() })
			}
			c = replayConnect(t, a, cert, p.Clean)
			defer c.Disconnect(0)
			a.WaitConnections(t, s.DeviceID, p.Conn)
		case "Subscribe":
			filters := map[string]byte{}
			for _, f := range p.Filters {
				filters[expand(f.Filter)] = f.QoS
			}
			if tok := c.SubscribeMultiple(filters, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				t.Fatalf("subscribe %v: %v", filters, tok.Error())
			}
		case "Publish":
			payload, err := hex.DecodeString(p.Payload)
			if err != nil {
				t.Fatal(err)
			}
			topic := expand(p.Topic)
			before := len(a.Events(s.DeviceID))
			c.Publish(topic, p.QoS, false, payload).WaitTimeout(5 * time.Second)
			a.WaitFor(t, "fake handled "+topic, func() bool { return len(a.Events(s.DeviceID)) > before })
			rest := strings.TrimPrefix(topic, base+"/")
			if topic != base && !strings.HasPrefix(rest, "control/") {
				dataPackets[p.Phase] = append(dataPackets[p.Phase], payload)
				dataTopics[p.Phase] = append(dataTopics[p.Phase], rest)
				published++
			}
		}
	}

	// The fake refused exactly what Astarte refuses, and accepted the rest.
	if got := a.Errors(s.DeviceID); !slices.Equal(got, s.FakeErrors) {
		t.Errorf("fake errors %q, want %q", got, s.FakeErrors)
	}
	if got := a.ReceivedCount(s.DeviceID); got != published-len(s.FakeErrors) {
		t.Errorf("fake accepted %d of %d data messages, want all but %d", got, published, len(s.FakeErrors))
	}
	if n := a.Connections(s.DeviceID); n != 4 {
		t.Errorf("%d connections, want 4 (the refusal forces a reconnection)", n)
	}

	// The decoder reads each call's payload as the recorded value.
	phase, index := "", map[string]int{}
	decoded := 0
	for _, call := range s.Calls {
		if call.Op == "mark" {
			phase = call.Name
		}
		if call.Op != "send" && call.Op != "object" && call.Op != "set" && call.Op != "unset" {
			continue
		}
		i := index[phase]
		index[phase]++
		if i >= len(dataPackets[phase]) {
			t.Fatalf("%s: no packet recorded", call.Name)
		}
		topic := dataTopics[phase][i]
		name, path, _ := strings.Cut(topic, "/")
		if name != call.Iface {
			t.Fatalf("%s: packet on %s", call.Name, topic)
		}
		iface := a.ifaces[name]
		m, err := iface.Match("/" + path)
		if err != nil {
			t.Fatalf("%s: %v", call.Name, err)
		}
		dec, err := wire.DecodeDevice(iface, m, dataPackets[phase][i])
		want := recordedValue(t, iface, call.Type, call.Value, call.Obj)
		switch {
		case call.Type == "integer" && want == int32(math.MinInt32):
			// Astarte's integer range excludes -2^31 (spec §4.7).
			if err == nil {
				t.Errorf("%s: -2^31 decoded as an integer", call.Name)
			}
		case call.Op == "unset" || call.Op == "set" && isEmptyBlob(want):
			// An unset, or {"v": <empty binary>} with no t: Astarte's
			// decoder reads both as an unset (spec §3.5.4).
			if err != nil || !dec.Unset {
				t.Errorf("%s: want an unset, got %+v, %v", call.Name, dec, err)
			}
		case err != nil:
			t.Errorf("%s: %v", call.Name, err)
		default:
			got := dec.Value.Any()
			if iface.Aggregation == model.Object {
				obj := map[string]any{}
				for _, f := range dec.Fields {
					obj[iface.Mappings[f.Mapping].LastLevel()] = f.Value.Any()
				}
				got = obj
			}
			if !sameValue(got, want) {
				t.Errorf("%s: decoded %#v, recorded %#v", call.Name, got, want)
			}
		}
		decoded++
	}
	if decoded == 0 {
		t.Fatal("no call replayed")
	}
}

// replayConnect connects as the SDK did: empty client id, its clean session.
func replayConnect(t *testing.T, a *Astarte, cert tls.Certificate, clean bool) mqtt.Client {
	t.Helper()
	opts := mqtt.NewClientOptions().AddBroker(a.BrokerURL()).SetClientID("").SetCleanSession(clean).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).SetKeepAlive(60 * time.Second).
		SetTLSConfig(&tls.Config{RootCAs: a.CA().Pool(), MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}})
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect with an empty client id: %v", tok.Error())
	}
	return c
}

// recordedValue converts a recorded JSON value to what Value.Any returns
// for its Astarte type (for an object, per field).
func recordedValue(t *testing.T, iface *model.Interface, typ string, raw json.RawMessage, obj map[string]struct {
	Type  string          `json:"type"`
	Value json.RawMessage `json:"value"`
}) any {
	t.Helper()
	if obj != nil {
		out := map[string]any{}
		for k, f := range obj {
			out[k] = recordedValue(t, iface, f.Type, f.Value, nil)
		}
		return out
	}
	if raw == nil {
		return nil
	}
	vt, ok := model.ParseValueType(typ)
	if !ok {
		t.Fatalf("recorded type %q", typ)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	x, err := fromJSON(vt, v)
	if err != nil {
		t.Fatalf("recorded %s %s: %v", typ, raw, err)
	}
	return normalize(vt, x)
}

// normalize gives fromJSON's result the Go type Value.Any returns.
func normalize(t model.ValueType, x any) any {
	conv := func(st model.ValueType, e any) any {
		switch st {
		case model.Integer:
			return int32(e.(int64))
		case model.LongInteger:
			return e.(int64)
		case model.DateTime:
			return e.(time.Time).UTC()
		}
		return e
	}
	if !t.IsArray() {
		return conv(t, x)
	}
	elems := x.([]any)
	switch t.Scalar() {
	case model.Double:
		return typed[float64](elems, t, conv)
	case model.Integer:
		return typed[int32](elems, t, conv)
	case model.LongInteger:
		return typed[int64](elems, t, conv)
	case model.Boolean:
		return typed[bool](elems, t, conv)
	case model.String:
		return typed[string](elems, t, conv)
	case model.BinaryBlob:
		return typed[[]byte](elems, t, conv)
	}
	return typed[time.Time](elems, t, conv)
}

func typed[T any](elems []any, t model.ValueType, conv func(model.ValueType, any) any) []T {
	out := make([]T, len(elems))
	for i, e := range elems {
		out[i] = conv(t.Scalar(), e).(T)
	}
	return out
}

func isEmptyBlob(v any) bool { b, ok := v.([]byte); return ok && len(b) == 0 }

// sameValue compares decoded and recorded values; datetimes may differ by
// the millisecond py-bson rounds where Go truncates.
func sameValue(got, want any) bool {
	switch w := want.(type) {
	case time.Time:
		g, ok := got.(time.Time)
		return ok && g.Sub(w).Abs() <= time.Millisecond
	case []time.Time:
		g, ok := got.([]time.Time)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !sameValue(g[i], w[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for k := range w {
			if !sameValue(g[k], w[k]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(got, want)
}
