package schema

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/astarte-gen/astarte-gen/runtime/model"
)

// rawInterface is an interface file as written, keeping which fields are
// present (defaults written explicitly, legacy spellings).
type rawInterface struct {
	Name        string       `json:"interface_name"`
	Major       int          `json:"version_major"`
	Minor       int          `json:"version_minor"`
	Type        string       `json:"type"`
	Ownership   *string      `json:"ownership"`
	Quality     *string      `json:"quality"`
	Aggregation *string      `json:"aggregation"`
	Aggregate   *bool        `json:"aggregate"`
	Description string       `json:"description"`
	Doc         string       `json:"doc"`
	Mappings    []rawMapping `json:"mappings"`
}

type rawMapping struct {
	Endpoint          *string `json:"endpoint"`
	Path              *string `json:"path"`
	Type              string  `json:"type"`
	Reliability       *string `json:"reliability"`
	Retention         *string `json:"retention"`
	Expiry            *int64  `json:"expiry"`
	DBPolicy          *string `json:"database_retention_policy"`
	DBTTL             *int64  `json:"database_retention_ttl"`
	ExplicitTimestamp *bool   `json:"explicit_timestamp"`
	AllowUnset        *bool   `json:"allow_unset"`
	Required          *bool   `json:"required"`
	Encrypted         *bool   `json:"encrypted"`
	Description       string  `json:"description"`
	Doc               string  `json:"doc"`
}

var (
	interfaceKeys = []string{"interface_name", "version_major", "version_minor", "type", "ownership", "quality",
		"aggregation", "aggregate", "description", "doc", "mappings"}
	mappingKeys = []string{"endpoint", "path", "type", "reliability", "retention", "expiry",
		"database_retention_policy", "database_retention_ttl", "explicit_timestamp", "allow_unset",
		"required", "encrypted", "description", "doc"}
	reservedNames = []string{"astarte", "control", "device"}
)

// check applies the semantic rules to a schema-valid file and builds the
// descriptor.
func check(r *report, raw *rawInterface) *model.Interface {
	iface := &model.Interface{Name: raw.Name, Major: raw.Major, Minor: raw.Minor, Description: raw.Description, Doc: raw.Doc}
	iface.Type, _ = model.ParseInterfaceType(raw.Type)
	checkName(r, raw.Name)
	if raw.Major == 0 && raw.Minor == 0 {
		r.errorf("/version_minor", "version_minor must be greater than 0 when version_major is 0 (version 0.0 is invalid)")
	}
	iface.Ownership = checkOwnership(r, raw)
	iface.Aggregation = checkAggregation(r, raw)
	if iface.Type == model.Properties && iface.Aggregation == model.Object {
		r.errorf("/aggregation", "properties interfaces cannot be object-aggregated: object aggregation is for datastreams only")
	}
	for n := range raw.Mappings {
		iface.Mappings = append(iface.Mappings, checkMapping(r, iface, &raw.Mappings[n], fmt.Sprintf("/mappings/%d", n)))
	}
	if !hasErrors(r) {
		checkEndpoints(r, iface)
	}
	if iface.Aggregation == model.Object && !hasErrors(r) {
		checkObject(r, iface)
	}
	return iface
}

func hasErrors(r *report) bool {
	return slices.ContainsFunc(r.diags, func(d Diagnostic) bool { return d.Severity == SeverityError })
}

// escape encodes a key for a JSON pointer (RFC 6901).
func escape(k string) string {
	return strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
}

func checkName(r *report, name string) {
	if slices.Contains(reservedNames, name) {
		r.errorf("/interface_name", "interface name %q is reserved by Astarte", name)
	}
	if !strings.Contains(name, ".") {
		r.warnf("/interface_name", "interface name %q is a single component; Astarte's guidelines ask for a reverse-domain name such as org.example.%s", name, name)
	}
}

func checkOwnership(r *report, raw *rawInterface) model.Ownership {
	value, pointer := raw.Ownership, "/ownership"
	if value == nil {
		if raw.Quality == nil {
			r.errorf("", "missing required field 'ownership' (device or server)")
			return 0
		}
		value, pointer = raw.Quality, "/quality"
		r.warnf(pointer, "quality is the legacy name of ownership; write \"ownership\"")
	} else if raw.Quality != nil {
		r.warnf("/quality", "quality is ignored because ownership is present")
	}
	if *value == "producer" || *value == "consumer" {
		modern := map[string]string{"producer": "device", "consumer": "server"}[*value]
		r.warnf(pointer, "%q is the legacy spelling of %q", *value, modern)
	}
	o, _ := model.ParseOwnership(*value)
	return o
}

func checkAggregation(r *report, raw *rawInterface) model.Aggregation {
	if raw.Aggregation != nil {
		if raw.Aggregate != nil {
			r.warnf("/aggregate", "aggregate is ignored because aggregation is present")
		}
		a, _ := model.ParseAggregation(*raw.Aggregation)
		return a
	}
	if raw.Aggregate != nil {
		r.warnf("/aggregate", "aggregate is the legacy form of aggregation; write \"aggregation\": \"object\" or leave it out")
		if *raw.Aggregate {
			return model.Object
		}
	}
	return model.Individual
}

// checkMapping checks field applicability (spec §4.2) and builds the
// mapping with defaults.
func checkMapping(r *report, iface *model.Interface, raw *rawMapping, ptr string) model.Mapping {
	var m model.Mapping
	switch {
	case raw.Endpoint != nil:
		m.Endpoint = *raw.Endpoint
		if raw.Path != nil {
			r.warnf(ptr+"/path", "path is ignored because endpoint is present")
		}
	case raw.Path != nil:
		m.Endpoint = *raw.Path
		r.warnf(ptr+"/path", "path is the legacy name of endpoint; write \"endpoint\"")
	default:
		r.errorf(ptr, "missing required field 'endpoint'")
	}
	m.Type, _ = model.ParseValueType(raw.Type)
	m.Description, m.Doc = raw.Description, raw.Doc
	datastream := iface.Type == model.Datastream
	kind := "properties"
	if datastream {
		kind = "datastream"
	}
	// only reports a field set on the wrong kind of interface: an error for
	// a non-default value, a warning for an explicit default.
	only := func(field string, present, isDefault, allowed bool, where string) bool {
		switch {
		case !present || allowed:
			return allowed && present
		case isDefault:
			r.warnf(ptr+"/"+field, "%s only applies to %s; the default value written here is ignored", field, where)
		default:
			r.errorf(ptr+"/"+field, "%s only applies to %s, not to %s interfaces: remove it", field, where, kind)
		}
		return false
	}
	if only("reliability", raw.Reliability != nil, raw.Reliability != nil && *raw.Reliability == "unreliable", datastream, "datastreams") {
		m.Reliability, _ = model.ParseReliability(*raw.Reliability)
	}
	if only("retention", raw.Retention != nil, raw.Retention != nil && *raw.Retention == "discard", datastream, "datastreams") {
		m.Retention, _ = model.ParseRetention(*raw.Retention)
	}
	if only("expiry", raw.Expiry != nil, raw.Expiry != nil && *raw.Expiry == 0, datastream, "datastreams") {
		m.Expiry = time.Duration(*raw.Expiry) * time.Second
	}
	if only("explicit_timestamp", raw.ExplicitTimestamp != nil, raw.ExplicitTimestamp != nil && !*raw.ExplicitTimestamp, datastream, "datastreams") {
		m.ExplicitTimestamp = *raw.ExplicitTimestamp
	}
	if only("database_retention_policy", raw.DBPolicy != nil, raw.DBPolicy != nil && *raw.DBPolicy == "no_ttl", datastream, "datastreams") {
		m.DatabaseRetentionPolicy, _ = model.ParseDatabaseRetentionPolicy(*raw.DBPolicy)
	}
	if only("database_retention_ttl", raw.DBTTL != nil, false, datastream, "datastreams") {
		m.DatabaseRetentionTTL = time.Duration(*raw.DBTTL) * time.Second
	}
	if only("allow_unset", raw.AllowUnset != nil, raw.AllowUnset != nil && !*raw.AllowUnset, !datastream, "properties") {
		m.AllowUnset = *raw.AllowUnset
	}
	object := iface.Aggregation == model.Object
	if only("required", raw.Required != nil, raw.Required != nil && !*raw.Required, object, "object-aggregated datastreams") {
		m.Required = *raw.Required
	}
	checkRetentionTTL(r, raw, ptr, datastream)
	if raw.Encrypted != nil && *raw.Encrypted {
		r.errorf(ptr+"/encrypted", "encrypted mappings need Astarte 1.4 key agreement, which astarte-gen does not implement")
	}
	if raw.Retention != nil && *raw.Retention == "discard" && raw.Expiry != nil && *raw.Expiry > 0 && datastream {
		r.warnf(ptr+"/expiry", "expiry has no effect with retention \"discard\": nothing is kept to expire")
	}
	if levels, err := model.ParseEndpoint(m.Endpoint); err == nil {
		for _, l := range levels {
			if strings.HasPrefix(l.Name, "_") {
				r.warnf(ptr+"/endpoint", "level %q starts with '_': Astarte accepts it but some SDKs (Rust) reject it", l)
				break
			}
		}
	}
	return m
}

// checkRetentionTTL: database_retention_ttl is required with use_ttl and
// forbidden otherwise (spec §4.2).
func checkRetentionTTL(r *report, raw *rawMapping, ptr string, datastream bool) {
	if !datastream {
		return
	}
	useTTL := raw.DBPolicy != nil && *raw.DBPolicy == "use_ttl"
	switch {
	case useTTL && raw.DBTTL == nil:
		r.errorf(ptr+"/database_retention_ttl", "database_retention_ttl is required when database_retention_policy is \"use_ttl\"")
	case !useTTL && raw.DBTTL != nil:
		r.errorf(ptr+"/database_retention_ttl", "database_retention_ttl needs database_retention_policy \"use_ttl\"")
	}
}

// warnUnknownKeys warns about every field Astarte ignores, a misspelled
// "reliablity" above all (it silently leaves the default), whether or not
// the file has errors too.
func warnUnknownKeys(r *report, doc any) {
	top, ok := doc.(map[string]any)
	if !ok {
		return
	}
	for _, k := range sortedKeys(top) {
		switch {
		case k == "explicit_timestamp" || k == "has_metadata":
			r.warnf("/"+k, "%s is not an interface-level field in Astarte; it is ignored (set explicit_timestamp on mappings)", k)
		case !slices.Contains(interfaceKeys, k):
			r.warnf("/"+escape(k), "unknown field %q is ignored%s", k, didYouMean(k, interfaceKeys))
		}
	}
	mappings, _ := top["mappings"].([]any)
	for n, m := range mappings {
		fields, ok := m.(map[string]any)
		if !ok {
			continue
		}
		for _, k := range sortedKeys(fields) {
			if !slices.Contains(mappingKeys, k) {
				r.warnf(fmt.Sprintf("/mappings/%d/%s", n, escape(k)), "unknown field %q is ignored%s", k, didYouMean(k, mappingKeys))
			}
		}
	}
}

// Integer fields of an interface and of a mapping.
var (
	interfaceIntegers = []string{"version_major", "version_minor"}
	mappingIntegers   = []string{"expiry", "database_retention_ttl"}
)

// checkIntegerLiterals reports integer fields written with a fraction or an
// exponent (1.0, 6e1). JSON Schema counts such a number as an integer, so
// the schema lets it through, but Astarte's interface parser casts these
// fields as integers and refuses a float. It reports whether all are
// plain integers.
func checkIntegerLiterals(r *report, doc any) bool {
	ok := true
	check := func(fields map[string]any, names []string, at string) {
		for _, name := range names {
			if n, isNum := fields[name].(json.Number); isNum && strings.ContainsAny(string(n), ".eE") {
				r.errorf(at+"/"+name, "%s must be written as an integer, not %s: Astarte reads it as a float and refuses the interface", name, n)
				ok = false
			}
		}
	}
	top, _ := doc.(map[string]any)
	check(top, interfaceIntegers, "")
	mappings, _ := top["mappings"].([]any)
	for n, m := range mappings {
		if fields, isObj := m.(map[string]any); isObj {
			check(fields, mappingIntegers, fmt.Sprintf("/mappings/%d", n))
		}
	}
	return ok
}

func sortedKeys(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

// didYouMean suggests the known field k is a misspelling of: one at edit
// distance 2 or less.
func didYouMean(k string, known []string) string {
	for _, c := range known {
		if editDistance(k, c) <= 2 {
			return fmt.Sprintf(" (did you mean %q? as written, the default applies)", c)
		}
	}
	return ""
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
