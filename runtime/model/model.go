// Package model describes Astarte interfaces as plain Go data: the
// Interface and Mapping descriptors with their defaults applied, the enums
// of interface files, endpoint parsing, path matching, path-parameter
// checks and the introspection string. It imports only the standard
// library, so that the generator (schema, gen, cmd/astarte-gen) and the
// device runtime share one model without the generator linking the
// device's MQTT client, store or pairing code.
//
// Descriptors come from schema.Parse or from generated code (each
// generated package returns fresh copies from its Interfaces function).
// They are plain values: a Device copies the ones it is given, so changing
// a descriptor later changes nothing on a running device.
package model

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Interface describes one Astarte interface with its defaults applied. It is
// plain data: schema.Parse builds it from JSON and generated code declares it
// as a Go literal. Treat a value as read-only once it is handed to a Device.
type Interface struct {
	Name        string
	Major       int
	Minor       int
	Type        InterfaceType
	Ownership   Ownership
	Aggregation Aggregation
	Description string
	Doc         string
	Mappings    []Mapping
}

// Mapping describes one endpoint of an interface with its defaults applied.
type Mapping struct {
	// Endpoint is the template, e.g. "/%{sensor_id}/temperature".
	Endpoint string
	Type     ValueType
	// Reliability, Retention, Expiry and ExplicitTimestamp only mean
	// something on datastreams.
	Reliability       Reliability
	Retention         Retention
	Expiry            time.Duration // 0: never expires
	ExplicitTimestamp bool
	// AllowUnset only means something on properties.
	AllowUnset bool
	// Required only means something on object aggregations (Astarte ≥ 1.4).
	Required bool
	// DatabaseRetentionPolicy and DatabaseRetentionTTL are server-side
	// storage settings; the device carries them only so that descriptors
	// round-trip.
	DatabaseRetentionPolicy DatabaseRetentionPolicy
	DatabaseRetentionTTL    time.Duration
	Description             string
	Doc                     string
}

// Sentinel errors of path handling; the returned errors wrap them.
var (
	// ErrInvalidEndpoint: an endpoint template is not well-formed.
	ErrInvalidEndpoint = errors.New("invalid endpoint")
	// ErrInvalidPath: a concrete path is not well-formed (spec §4.6).
	ErrInvalidPath = errors.New("invalid path")
	// ErrInvalidParameter: a path parameter value is empty or holds a
	// character MQTT or Astarte reserve.
	ErrInvalidParameter = errors.New("invalid path parameter")
	// ErrMappingNotFound: a path matches no mapping of the interface.
	ErrMappingNotFound = errors.New("no mapping matches path")
)

// Level is one level of an endpoint template: a literal or a parameter.
type Level struct {
	// Name is the literal text, or the parameter name without "%{" "}".
	Name  string
	Param bool
}

// String returns the level as written in an endpoint.
func (l Level) String() string {
	if l.Param {
		return "%{" + l.Name + "}"
	}
	return l.Name
}

// ParseEndpoint splits an endpoint template into its levels. It checks the
// syntax of each level (a literal or "%{name}" occupying the whole level,
// identifiers of [A-Za-z_][A-Za-z0-9_]*) but not the limits on length and
// depth, which schema enforces with file positions.
func ParseEndpoint(endpoint string) ([]Level, error) {
	if !strings.HasPrefix(endpoint, "/") {
		return nil, fmt.Errorf("%w %q: must start with /", ErrInvalidEndpoint, endpoint)
	}
	levels := splitEndpoint(endpoint)
	for n, l := range levels {
		if IsIdentifier(l.Name) {
			continue
		}
		raw := strings.Split(endpoint[1:], "/")[n]
		return nil, fmt.Errorf("%w %q: level %d %q: %s", ErrInvalidEndpoint, endpoint, n+1, raw, levelProblem(raw, l))
	}
	return levels, nil
}

// levelProblem says what is wrong with one level of an endpoint: which
// character, where, or that it is empty.
func levelProblem(raw string, l Level) string {
	const rule = "a level is a literal [A-Za-z_][A-Za-z0-9_]* or a whole-level parameter %{name}"
	name, offset := l.Name, 0
	if l.Param {
		offset = 2
	}
	switch {
	case raw == "":
		return "empty level (two '/' in a row, or a trailing '/'); " + rule
	case l.Param && name == "":
		return "empty parameter name; " + rule
	}
	for i, r := range name {
		if r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9' {
			continue
		}
		return fmt.Sprintf("character %q at position %d is not allowed; %s", r, offset+i+1, rule)
	}
	return rule
}

// splitEndpoint splits a template at "/" without checking identifiers.
func splitEndpoint(endpoint string) []Level {
	parts := strings.Split(strings.TrimPrefix(endpoint, "/"), "/")
	levels := make([]Level, len(parts))
	for n, p := range parts {
		levels[n] = Level{Name: p}
		if len(p) >= 3 && strings.HasPrefix(p, "%{") && strings.HasSuffix(p, "}") {
			levels[n] = Level{Name: p[2 : len(p)-1], Param: true}
		}
	}
	return levels
}

// IsIdentifier reports whether s matches [A-Za-z_][A-Za-z0-9_]*, the syntax
// of endpoint literals and parameter names.
func IsIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// Levels returns the levels of m's endpoint. It does not validate: a
// descriptor from schema.Parse or the generator is already valid, and Device
// validates hand-written ones when it is created.
func (m *Mapping) Levels() []Level { return splitEndpoint(m.Endpoint) }

// LastLevel returns the last level of the endpoint: the key of this mapping
// inside an object-aggregated value.
func (m *Mapping) LastLevel() string {
	return m.Endpoint[strings.LastIndexByte(m.Endpoint, '/')+1:]
}

// ObjectPrefix returns the endpoint without its last level: the path template
// an object-aggregated value is published on ("/" for depth-1 endpoints).
func (m *Mapping) ObjectPrefix() string {
	i := strings.LastIndexByte(m.Endpoint, '/')
	if i <= 0 {
		return "/"
	}
	return m.Endpoint[:i]
}

// QoS returns the MQTT QoS for data of mapping m on interface i (spec §3.4):
// 2 for properties, and 0, 1 or 2 for unreliable, guaranteed and unique
// datastreams.
func (i *Interface) QoS(m *Mapping) byte {
	if i.Type == Properties {
		return 2
	}
	return byte(m.Reliability)
}

// IntrospectionEntry returns "name:major:minor".
func (i *Interface) IntrospectionEntry() string {
	return i.Name + ":" + strconv.Itoa(i.Major) + ":" + strconv.Itoa(i.Minor)
}

// Introspection returns the introspection payload for the given interfaces:
// their entries sorted by name and joined by ";" (spec §3.6).
func Introspection(ifaces []*Interface) string {
	entries := make([]string, len(ifaces))
	for n, i := range ifaces {
		entries[n] = i.IntrospectionEntry()
	}
	slices.Sort(entries)
	return strings.Join(entries, ";")
}

// Match is the result of resolving a concrete path against an interface.
type Match struct {
	// Index is the index of the matched mapping in Interface.Mappings. For
	// object aggregations every mapping shares the path and Index is 0.
	Index int
	// Params holds the values of the path parameters, in endpoint order.
	Params []string
}

// Match resolves a concrete path (spec §4.6). On an individual interface the
// path must have as many levels as exactly one endpoint, with equal literals
// and a valid value for each parameter. On an object interface the path must
// match the endpoints' common prefix, one level shorter than the endpoints.
func (i *Interface) Match(path string) (Match, error) {
	levels, err := splitPath(path)
	if err != nil {
		return Match{}, err
	}
	if i.Aggregation == Object {
		if len(i.Mappings) == 0 {
			return Match{}, fmt.Errorf("%w: %s has no mappings", ErrMappingNotFound, i.Name)
		}
		prefix := i.Mappings[0].Levels()
		prefix = prefix[:len(prefix)-1]
		if len(prefix) == 0 && path == "/" {
			return Match{}, nil
		}
		params, ok, err := matchLevels(prefix, levels)
		if err != nil || !ok {
			return Match{}, notFound(i, path, err)
		}
		return Match{Params: params}, nil
	}
	if path == "/" {
		return Match{}, notFound(i, path, nil)
	}
	for n := range i.Mappings {
		params, ok, err := matchLevels(i.Mappings[n].Levels(), levels)
		if err != nil {
			return Match{}, err
		}
		if ok {
			return Match{Index: n, Params: params}, nil
		}
	}
	return Match{}, notFound(i, path, nil)
}

func notFound(i *Interface, path string, err error) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("%w: %s%s", ErrMappingNotFound, i.Name, path)
}

// splitPath splits a concrete path into levels. "/" gives no levels (only
// meaningful for depth-1 object aggregations).
func splitPath(path string) ([]string, error) {
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("%w %q: must start with /", ErrInvalidPath, path)
	}
	if !utf8.ValidString(path) {
		return nil, fmt.Errorf("%w %q: not valid UTF-8", ErrInvalidPath, path)
	}
	if path == "/" {
		return nil, nil
	}
	levels := strings.Split(path[1:], "/")
	if slices.Contains(levels, "") {
		return nil, fmt.Errorf("%w %q: empty level", ErrInvalidPath, path)
	}
	return levels, nil
}

// matchLevels matches concrete levels against a template. A literal must be
// equal (case-sensitive); a parameter takes any valid parameter value.
func matchLevels(template []Level, levels []string) (params []string, ok bool, err error) {
	if len(template) != len(levels) {
		return nil, false, nil
	}
	for n, l := range template {
		if !l.Param {
			if l.Name != levels[n] {
				return nil, false, nil
			}
			continue
		}
		if err := CheckParameter(levels[n]); err != nil {
			return nil, false, err
		}
		params = append(params, levels[n])
	}
	return params, true, nil
}

// CheckParameter reports whether v may stand for a path parameter: it must
// be non-empty valid UTF-8 without "/", "+", "#", NUL, or the "%{" that the
// server would read as a template.
func CheckParameter(v string) error {
	switch {
	case v == "":
		return fmt.Errorf("%w: empty", ErrInvalidParameter)
	case !utf8.ValidString(v):
		return fmt.Errorf("%w %q: not valid UTF-8", ErrInvalidParameter, v)
	case strings.ContainsAny(v, "/+#\x00"):
		return fmt.Errorf("%w %q: contains one of / + # NUL", ErrInvalidParameter, v)
	case strings.Contains(v, "%{"):
		return fmt.Errorf("%w %q: contains %%{", ErrInvalidParameter, v)
	}
	return nil
}

// BuildPath substitutes params, in order, for the parameters of an endpoint
// template given as levels, checking each value with CheckParameter.
func BuildPath(template []Level, params ...string) (string, error) {
	var b strings.Builder
	n := 0
	for _, l := range template {
		b.WriteByte('/')
		if !l.Param {
			b.WriteString(l.Name)
			continue
		}
		if n >= len(params) {
			return "", fmt.Errorf("%w: %d parameters given, endpoint needs more", ErrInvalidParameter, len(params))
		}
		if err := CheckParameter(params[n]); err != nil {
			return "", fmt.Errorf("%%{%s}: %w", l.Name, err)
		}
		b.WriteString(params[n])
		n++
	}
	if n != len(params) {
		return "", fmt.Errorf("%w: %d parameters given, endpoint takes %d", ErrInvalidParameter, len(params), n)
	}
	if b.Len() == 0 {
		return "/", nil
	}
	return b.String(), nil
}

// Mapping returns the mapping of i whose endpoint is exactly endpoint.
func (i *Interface) Mapping(endpoint string) (*Mapping, bool) {
	for n := range i.Mappings {
		if i.Mappings[n].Endpoint == endpoint {
			return &i.Mappings[n], true
		}
	}
	return nil, false
}

// Clone returns a deep copy of i: changing one never changes the other.
func (i *Interface) Clone() *Interface {
	c := *i
	c.Mappings = slices.Clone(i.Mappings)
	return &c
}
