package model

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestEnumsRoundTrip(t *testing.T) {
	for _, vt := range ValueTypes() {
		got, ok := ParseValueType(vt.String())
		if !ok || got != vt {
			t.Errorf("ParseValueType(%q) = %v, %v", vt, got, ok)
		}
	}
	if len(ValueTypes()) != 14 {
		t.Fatalf("want 14 value types, have %d", len(ValueTypes()))
	}
	if DoubleArray.Scalar() != Double || DateTimeArray.Scalar() != DateTime || String.Scalar() != String {
		t.Error("Scalar is wrong")
	}
	if Double.Array() != DoubleArray || BinaryBlob.Array() != BinaryBlobArray {
		t.Error("Array is wrong")
	}
	for in, want := range map[string]Ownership{"device": OwnershipDevice, "server": OwnershipServer, "producer": OwnershipDevice, "consumer": OwnershipServer} {
		if got, ok := ParseOwnership(in); !ok || got != want {
			t.Errorf("ParseOwnership(%q) = %v, %v", in, got, ok)
		}
	}
	if _, ok := ParseRetention("forever"); ok {
		t.Error("ParseRetention accepted an unknown value")
	}
	if ValueType(0).String() != "invalid" || ValueType(99).String() != "invalid" {
		t.Error("out-of-range enum should print invalid")
	}
}

func TestParseEndpoint(t *testing.T) {
	got, err := ParseEndpoint("/%{sensor_id}/temperature")
	if err != nil {
		t.Fatal(err)
	}
	want := []Level{{Name: "sensor_id", Param: true}, {Name: "temperature"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("levels (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"", "value", "/", "//a", "/a/", "/a%{x}", "/%{1x}", "/1a", "/a-b", "/%{}"} {
		if _, err := ParseEndpoint(bad); !errors.Is(err, ErrInvalidEndpoint) {
			t.Errorf("ParseEndpoint(%q) = %v, want ErrInvalidEndpoint", bad, err)
		}
	}
}

func TestMatchIndividual(t *testing.T) {
	iface := &Interface{
		Name: "org.example.Sensors", Major: 1, Type: Datastream, Ownership: OwnershipDevice,
		Mappings: []Mapping{
			{Endpoint: "/%{sensor_id}/temperature", Type: Double},
			{Endpoint: "/%{sensor_id}/name", Type: String},
			{Endpoint: "/global/%{a}/%{b}", Type: Integer},
		},
	}
	tests := []struct {
		path    string
		want    Match
		wantErr error
	}{
		{"/s1/temperature", Match{Index: 0, Params: []string{"s1"}}, nil},
		{"/s1/name", Match{Index: 1, Params: []string{"s1"}}, nil},
		{"/global/x/y", Match{Index: 2, Params: []string{"x", "y"}}, nil},
		{"/s1/Temperature", Match{}, ErrMappingNotFound},
		{"/s1", Match{}, ErrMappingNotFound},
		{"/s1/temperature/x", Match{}, ErrMappingNotFound},
		{"/", Match{}, ErrMappingNotFound},
		{"s1/temperature", Match{}, ErrInvalidPath},
		{"/s1//temperature", Match{}, ErrInvalidPath},
		{"/s1/temperature/", Match{}, ErrInvalidPath},
		{"/s+1/temperature", Match{}, ErrInvalidParameter},
		{"/s#/temperature", Match{}, ErrInvalidParameter},
		{"/%{x}/temperature", Match{}, ErrInvalidParameter},
		{"/\xff/temperature", Match{}, ErrInvalidPath},
	}
	for _, tt := range tests {
		got, err := iface.Match(tt.path)
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("Match(%q) error = %v, want %v", tt.path, err, tt.wantErr)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Match(%q) (-want +got):\n%s", tt.path, diff)
		}
	}
}

func TestMatchObject(t *testing.T) {
	iface := &Interface{
		Name: "org.example.Geo", Major: 1, Type: Datastream, Ownership: OwnershipDevice, Aggregation: Object,
		Mappings: []Mapping{
			{Endpoint: "/%{vehicle}/gps/latitude", Type: Double},
			{Endpoint: "/%{vehicle}/gps/longitude", Type: Double},
		},
	}
	got, err := iface.Match("/car1/gps")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Match{Params: []string{"car1"}}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, p := range []string{"/car1/gps/latitude", "/car1", "/car1/gsp", "/"} {
		if _, err := iface.Match(p); !errors.Is(err, ErrMappingNotFound) {
			t.Errorf("Match(%q) = %v, want ErrMappingNotFound", p, err)
		}
	}
	shallow := &Interface{Name: "a.B", Aggregation: Object, Mappings: []Mapping{{Endpoint: "/x"}, {Endpoint: "/y"}}}
	if _, err := shallow.Match("/"); err != nil {
		t.Errorf("depth-1 object path /: %v", err)
	}
}

func TestQoSAndIntrospection(t *testing.T) {
	ds := &Interface{Name: "b.Ds", Major: 1, Minor: 2, Type: Datastream}
	props := &Interface{Name: "a.Props", Major: 0, Minor: 3, Type: Properties}
	for rel, want := range map[Reliability]byte{Unreliable: 0, Guaranteed: 1, Unique: 2} {
		if got := ds.QoS(&Mapping{Reliability: rel}); got != want {
			t.Errorf("QoS(%v) = %d, want %d", rel, got, want)
		}
	}
	if got := props.QoS(&Mapping{}); got != 2 {
		t.Errorf("properties QoS = %d, want 2", got)
	}
	if got := Introspection([]*Interface{ds, props}); got != "a.Props:0:3;b.Ds:1:2" {
		t.Errorf("Introspection = %q", got)
	}
	if got := Introspection(nil); got != "" {
		t.Errorf("empty introspection = %q", got)
	}
}

func TestBuildPathAndObjectPrefix(t *testing.T) {
	m := Mapping{Endpoint: "/%{vehicle}/gps/latitude"}
	if got := m.ObjectPrefix(); got != "/%{vehicle}/gps" {
		t.Errorf("ObjectPrefix = %q", got)
	}
	if got := m.LastLevel(); got != "latitude" {
		t.Errorf("LastLevel = %q", got)
	}
	if got := (&Mapping{Endpoint: "/value"}).ObjectPrefix(); got != "/" {
		t.Errorf("depth-1 ObjectPrefix = %q", got)
	}
	p, err := BuildPath(m.Levels(), "car1")
	if err != nil || p != "/car1/gps/latitude" {
		t.Errorf("BuildPath = %q, %v", p, err)
	}
	for _, params := range [][]string{{}, {"a", "b"}, {""}, {"a/b"}} {
		if _, err := BuildPath(m.Levels(), params...); !errors.Is(err, ErrInvalidParameter) {
			t.Errorf("BuildPath(%q) = %v, want ErrInvalidParameter", params, err)
		}
	}
}

func TestParseEndpointNamesLevelAndCharacter(t *testing.T) {
	for endpoint, want := range map[string]string{
		"/sensors/temp-c":     `level 2 "temp-c": character '-' at position 5`,
		"/%{id}/x%{y}":        `level 2 "x%{y}": character '%' at position 2`,
		"/a//b":               `level 2 "": empty level`,
		"/%{}/b":              `level 1 "%{}": empty parameter name`,
		"/%{sensor id}/value": `level 1 "%{sensor id}": character ' ' at position 9`,
		"/2fast":              `level 1 "2fast": character '2' at position 1`,
	} {
		_, err := ParseEndpoint(endpoint)
		if !errors.Is(err, ErrInvalidEndpoint) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseEndpoint(%q) = %v, want it to contain %q", endpoint, err, want)
		}
	}
}
