package schema

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/astarte-gen/astarte-gen/runtime/model"
)

// doc builds an interface file from a base and overrides; mappings are given
// as JSON fragments.
func doc(t *testing.T, over map[string]any, mappings ...string) []byte {
	t.Helper()
	d := map[string]any{
		"interface_name": "org.astartegen.test.Rules", "version_major": 1, "version_minor": 0,
		"type": "datastream", "ownership": "device",
	}
	ms := make([]json.RawMessage, len(mappings))
	for i, m := range mappings {
		ms[i] = json.RawMessage(m)
	}
	d["mappings"] = ms
	for k, v := range over {
		if v == nil {
			delete(d, k)
		} else {
			d[k] = v
		}
	}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const value = `{"endpoint": "/value", "type": "double"}`

func ep(endpoint string) string { return fmt.Sprintf(`{"endpoint": %q, "type": "integer"}`, endpoint) }

// TestRules has, for every rule, an accepted and a rejected interface; the
// rejected ones name the JSON pointer and a fragment of the message.
func TestRules(t *testing.T) {
	props := map[string]any{"type": "properties"}
	object := map[string]any{"aggregation": "object"}
	tests := []struct {
		name     string
		data     []byte
		pointer  string // "" with ok
		contains string
	}{
		// JSON and schema
		{"valid minimal", doc(t, nil, value), "", ""},
		{"not JSON", []byte(`{"interface_name": `), "", "not valid JSON"},
		{"missing type", doc(t, map[string]any{"type": nil}, value), "", "missing required field"},
		{"bad type", doc(t, map[string]any{"type": "stream"}, value), "/type", "must be one of"},
		{"no mappings", doc(t, nil), "/mappings", "minimum 1 items"},
		{"bad mapping type", doc(t, nil, `{"endpoint": "/v", "type": "float"}`), "/mappings/0/type", ""},
		{"negative major", doc(t, map[string]any{"version_major": -1}, value), "/version_major", ""},
		{"name too long", doc(t, map[string]any{"interface_name": "org." + strings.Repeat("a", 125)}, value), "/interface_name", ""},
		{"description too long", doc(t, map[string]any{"description": strings.Repeat("x", 1001)}, value), "/description", ""},
		{"endpoint too long", doc(t, nil, ep("/"+strings.Repeat("a", 256))), "/mappings/0/endpoint", ""},
		{"65 levels", doc(t, nil, ep(strings.Repeat("/a", 65))), "/mappings/0/endpoint", "64 levels"},
		{"64 levels", doc(t, nil, ep(strings.Repeat("/a", 63)+"/b")), "", ""},
		{"parameter inside a level", doc(t, nil, ep("/a%{x}")), "/mappings/0/endpoint", "whole-level parameter"},
		{"major written as a float", doc(t, map[string]any{"version_major": json.Number("1.0")}, value), "/version_major", "must be written as an integer, not 1.0"},
		{"expiry with an exponent", doc(t, nil, `{"endpoint": "/v", "type": "double", "retention": "stored", "expiry": 6e1}`), "/mappings/0/expiry", "not 6e1"},
		{"ttl written as a float", doc(t, nil, `{"endpoint": "/v", "type": "double", "database_retention_policy": "use_ttl", "database_retention_ttl": 60.0}`), "/mappings/0/database_retention_ttl", "not 60.0"},
		{"ttl too low", doc(t, nil, `{"endpoint": "/v", "type": "double", "database_retention_policy": "use_ttl", "database_retention_ttl": 59}`), "/mappings/0/database_retention_ttl", ""},
		// versions
		{"version 0.0", doc(t, map[string]any{"version_major": 0, "version_minor": 0}, value), "/version_minor", "greater than 0"},
		{"version 0.1", doc(t, map[string]any{"version_major": 0, "version_minor": 1}, value), "", ""},
		// names
		{"reserved name", doc(t, map[string]any{"interface_name": "control"}, value), "/interface_name", "reserved"},
		// ownership
		{"no ownership", doc(t, map[string]any{"ownership": nil}, value), "", "ownership"},
		// applicability on properties
		{"reliability on properties", doc(t, props, `{"endpoint": "/v", "type": "double", "reliability": "unique"}`), "/mappings/0/reliability", "only applies to datastreams"},
		{"retention on properties", doc(t, props, `{"endpoint": "/v", "type": "double", "retention": "stored"}`), "/mappings/0/retention", "only applies to datastreams"},
		{"expiry on properties", doc(t, props, `{"endpoint": "/v", "type": "double", "expiry": 5}`), "/mappings/0/expiry", "only applies"},
		{"explicit_timestamp on properties", doc(t, props, `{"endpoint": "/v", "type": "double", "explicit_timestamp": true}`), "/mappings/0/explicit_timestamp", "only applies"},
		{"ttl on properties", doc(t, props, `{"endpoint": "/v", "type": "double", "database_retention_policy": "use_ttl", "database_retention_ttl": 60}`), "/mappings/0/database_retention_policy", "only applies"},
		{"allow_unset on datastream", doc(t, nil, `{"endpoint": "/v", "type": "double", "allow_unset": true}`), "/mappings/0/allow_unset", "only applies to properties"},
		{"allow_unset on properties", doc(t, props, `{"endpoint": "/v", "type": "double", "allow_unset": true}`), "", ""},
		{"required on individual", doc(t, nil, `{"endpoint": "/v", "type": "double", "required": true}`), "/mappings/0/required", "object-aggregated"},
		{"object properties", doc(t, map[string]any{"type": "properties", "aggregation": "object"}, ep("/a/b")), "/aggregation", "datastreams only"},
		// database retention
		{"use_ttl without ttl", doc(t, nil, `{"endpoint": "/v", "type": "double", "database_retention_policy": "use_ttl"}`), "/mappings/0/database_retention_ttl", "required"},
		{"ttl without use_ttl", doc(t, nil, `{"endpoint": "/v", "type": "double", "database_retention_ttl": 60}`), "/mappings/0/database_retention_ttl", "needs"},
		{"use_ttl with ttl", doc(t, nil, `{"endpoint": "/v", "type": "double", "database_retention_policy": "use_ttl", "database_retention_ttl": 60}`), "", ""},
		// encrypted
		{"encrypted", doc(t, nil, `{"endpoint": "/v", "type": "double", "encrypted": true}`), "/mappings/0/encrypted", "key agreement"},
		// uniqueness and clashes (spec §4.4)
		{"case duplicates", doc(t, nil, ep("/Value"), ep("/value")), "/mappings/1/endpoint", "duplicates"},
		{"parameter-name duplicates", doc(t, nil, ep("/%{pretty}/endpoint"), ep("/%{UGLY}/endpOiNt")), "/mappings/1/endpoint", "duplicates"},
		{"clash param vs literal", doc(t, nil, ep("/%{itemIndex}/value"), ep("/myPath/value")), "/mappings/1/endpoint", "a path like /myPath/value would match both"},
		{"clash prefix", doc(t, nil, ep("/some/thing"), ep("/some/%{param}/value")), "/mappings/1/endpoint", "prefix"},
		{"clash prefix 2", doc(t, nil, ep("/some/%{param}"), ep("/some/thing/here")), "/mappings/1/endpoint", "prefix"},
		{"clash crossed", doc(t, nil, ep("/some/%{param}"), ep("/%{some}/param")), "/mappings/1/endpoint", "a path like /some/param would match both"},
		{"clash same shape", doc(t, nil, ep("/param/%{a}"), ep("/param/%{b}")), "/mappings/1/endpoint", "duplicates"},
		{"clash /a /a/b", doc(t, nil, ep("/a"), ep("/a/b")), "/mappings/1/endpoint", "prefix"},
		{"clash /%{p} /a/b", doc(t, nil, ep("/%{p}"), ep("/a/b")), "/mappings/1/endpoint", "prefix"},
		{"no clash first levels differ", doc(t, nil, ep("/a/%{x}"), ep("/b/%{y}")), "", ""},
		{"no clash last levels differ", doc(t, nil, ep("/%{x}/a"), ep("/%{y}/b")), "", ""},
		{"no clash /a/%{p}/c /a/b/d", doc(t, nil, ep("/a/%{p}/c"), ep("/a/b/d")), "", ""},
		{"no clash server test case", doc(t, nil, ep("/b/%{a}/%{b}/a"), ep("/a/a/a/b"), ep("/a/a/b"), ep("/a/b")), "", ""},
		// objects (spec §4.5)
		{"object valid", doc(t, object, ep("/%{s}/a"), ep("/%{s}/b")), "", ""},
		{"object prefix differs", doc(t, object, ep("/%{s}/a"), ep("/x/b")), "/mappings/1/endpoint", "share one prefix"},
		{"object parameter names differ", doc(t, object, ep("/%{a}/x"), ep("/%{b}/y")), "/mappings/1/endpoint", "share one prefix"},
		{"object attributes differ", doc(t, object, `{"endpoint": "/s/a", "type": "double", "reliability": "unique"}`, ep("/s/b")), "/mappings/1/reliability", "same on every mapping"},
		{"object parametric last level", doc(t, object, ep("/s/%{key}")), "/mappings/0/endpoint", "must be a literal"},
		{"object required field", doc(t, object, `{"endpoint": "/s/a", "type": "double", "required": true}`, ep("/s/b")), "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("rules.json", tt.data)
			if tt.pointer == "" && tt.contains == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("accepted, want an error at %q", tt.pointer)
			}
			for _, d := range e.Diagnostics {
				if d.Pointer == tt.pointer && strings.Contains(d.Message, tt.contains) && d.File == "rules.json" {
					return
				}
			}
			t.Errorf("no diagnostic at %q containing %q in:\n%v", tt.pointer, tt.contains, err)
		})
	}
}

// TestNameVectors uses the server's accepted and rejected names (spec §4.3).
func TestNameVectors(t *testing.T) {
	for _, name := range []string{"com.astarte-platform.InterfaceName", "a.InterfaceName", "com.0.aa", "aaa.a-.aaaaa", "c0m.InterfaceName", "com.a-.interfacename"} {
		if _, err := Parse("n.json", doc(t, map[string]any{"interface_name": name}, value)); err != nil {
			t.Errorf("%s rejected: %v", name, err)
		}
	}
	for _, name := range []string{"com.-.InterfaceName", "c-m.InterfaceName", "a-.a", "1JustInterfaceName", "just-interface-name", "com.astarte-platform.InterfaceName-", "com.astarte-platform.InterfaceName.", "0.test.InterfaceName"} {
		if _, err := Parse("n.json", doc(t, map[string]any{"interface_name": name}, value)); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		name     string
		data     []byte
		pointer  string
		contains string
	}{
		{"single component name", doc(t, map[string]any{"interface_name": "JustInterfaceName"}, value), "/interface_name", "single component"},
		{"quality", doc(t, map[string]any{"ownership": nil, "quality": "producer"}, value), "/quality", "legacy"},
		{"consumer", doc(t, map[string]any{"ownership": "consumer"}, value), "/ownership", "legacy spelling"},
		{"aggregate", doc(t, map[string]any{"aggregate": true}, ep("/a/b")), "/aggregate", "legacy"},
		{"path", doc(t, nil, `{"path": "/v", "type": "double"}`), "/mappings/0/path", "legacy name of endpoint"},
		{"default on wrong kind", doc(t, map[string]any{"type": "properties"}, `{"endpoint": "/v", "type": "double", "reliability": "unreliable"}`), "/mappings/0/reliability", "default value"},
		{"unknown field", doc(t, map[string]any{"colour": "red"}, value), "/colour", "unknown field"},
		{"interface explicit_timestamp", doc(t, map[string]any{"explicit_timestamp": true}, value), "/explicit_timestamp", "not an interface-level field"},
		{"leading underscore", doc(t, nil, ep("/_hidden")), "/mappings/0/endpoint", "starts with '_'"},
		{"depth-1 object", doc(t, map[string]any{"aggregation": "object"}, ep("/a"), ep("/b")), "/mappings/0/endpoint", "deprecated"},
	}
	for _, tt := range tests {
		iface, warns, err := ParseWithWarnings("w.json", tt.data)
		if err != nil || iface == nil {
			t.Errorf("%s: rejected: %v", tt.name, err)
			continue
		}
		found := false
		for _, w := range warns {
			found = found || (w.Pointer == tt.pointer && strings.Contains(w.Message, tt.contains) && w.Severity == SeverityWarning)
		}
		if !found {
			t.Errorf("%s: no warning at %q containing %q in %v", tt.name, tt.pointer, tt.contains, warns)
		}
	}
}

func TestDescriptorDefaultsAndLegacy(t *testing.T) {
	data := doc(t, map[string]any{"ownership": nil, "quality": "consumer", "aggregate": true, "doc": "D"},
		`{"path": "/%{id}/a", "type": "doublearray", "reliability": "guaranteed", "retention": "stored", "expiry": 60, "explicit_timestamp": true, "database_retention_policy": "use_ttl", "database_retention_ttl": 3600, "description": "d"}`,
		`{"endpoint": "/%{id}/b", "type": "datetime", "reliability": "guaranteed", "retention": "stored", "expiry": 60, "explicit_timestamp": true, "database_retention_policy": "use_ttl", "database_retention_ttl": 3600, "required": true}`)
	got, err := Parse("d.json", data)
	if err != nil {
		t.Fatal(err)
	}
	want := &model.Interface{
		Name: "org.astartegen.test.Rules", Major: 1, Type: model.Datastream, Ownership: model.OwnershipServer,
		Aggregation: model.Object, Doc: "D",
		Mappings: []model.Mapping{
			{Endpoint: "/%{id}/a", Type: model.DoubleArray, Reliability: model.Guaranteed, Retention: model.Stored,
				Expiry: time.Minute, ExplicitTimestamp: true, DatabaseRetentionPolicy: model.UseTTL, DatabaseRetentionTTL: time.Hour, Description: "d"},
			{Endpoint: "/%{id}/b", Type: model.DateTime, Reliability: model.Guaranteed, Retention: model.Stored,
				Expiry: time.Minute, ExplicitTimestamp: true, DatabaseRetentionPolicy: model.UseTTL, DatabaseRetentionTTL: time.Hour, Required: true},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("descriptor (-want +got):\n%s", diff)
	}
}

func TestAllProblemsReported(t *testing.T) {
	data := doc(t, map[string]any{"version_major": 0, "version_minor": 0, "type": "properties"},
		`{"endpoint": "/a", "type": "double", "retention": "stored"}`,
		`{"endpoint": "/b", "type": "double", "explicit_timestamp": true}`)
	_, err := Parse("many.json", data)
	var e *Error
	if !errors.As(err, &e) || len(e.Diagnostics) != 3 {
		t.Fatalf("want 3 diagnostics, got: %v", err)
	}
	if !strings.HasPrefix(err.Error(), "many.json:/") {
		t.Errorf("lines must read file:pointer: message, got %q", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"interface_name":"a.B","version_major":1,"version_minor":0,"type":"datastream","ownership":"device","mappings":[{"endpoint":"/%{x}/v","type":"double"}]}`))
	f.Add([]byte(`{"interface_name":"a.B","version_major":0,"version_minor":1,"type":"datastream","ownership":"device","aggregation":"object","mappings":[{"endpoint":"/s/a","type":"integer"},{"endpoint":"/s/b","type":"string"}]}`))
	f.Add([]byte(`{"interface_name":"a.P","version_major":1,"version_minor":0,"type":"properties","ownership":"server","mappings":[{"endpoint":"/a","type":"boolean","allow_unset":true}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		iface, err := Parse("fuzz.json", data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || len(e.Diagnostics) == 0 {
				t.Fatalf("error without diagnostics: %v", err)
			}
			return
		}
		// An accepted interface has usable endpoints and parses again the
		// same way.
		for _, m := range iface.Mappings {
			if _, err := model.ParseEndpoint(m.Endpoint); err != nil {
				t.Fatalf("accepted a bad endpoint: %v", err)
			}
		}
		again, err := Parse("fuzz.json", data)
		if err != nil || !cmp.Equal(iface, again) {
			t.Fatal("parsing is not deterministic")
		}
	})
}
