package schema

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSchemaMessages pins the wording of every kind of JSON Schema
// failure, as users read it: pointer and message.
func TestSchemaMessages(t *testing.T) {
	const base = `"interface_name":"org.a.B","version_major":1,"version_minor":0,"type":"datastream","ownership":"device"`
	with := func(key, value string) string {
		return fmt.Sprintf(`{%s,"mappings":[{"endpoint":"/v","type":"double"}],%q:%s}`, base, key, value)
	}
	mapping := func(m string) string { return fmt.Sprintf(`{%s,"mappings":[%s]}`, base, m) }
	// Endpoint errors name the level and the character at fault.
	levelRule := "a level is a literal [A-Za-z_][A-Za-z0-9_]* or a whole-level parameter %{name}"
	tests := []struct {
		name, doc string
		want      []string // "pointer|message"
	}{
		{"array", `[]`, []string{"|expected object, but got array"}},
		{"empty", `{}`, []string{"|missing required field: 'interface_name', 'version_major', 'version_minor', 'type', 'mappings'"}},
		{"name type", `{"interface_name":7,"version_major":1,"version_minor":0,"type":"datastream","ownership":"device","mappings":[{"endpoint":"/v","type":"double"}]}`,
			[]string{"/interface_name|interface_name: expected string, but got number"}},
		{"name length", with("interface_name", `"`+strings.Repeat("a", 129)+`"`), []string{"/interface_name|interface_name: length must be <= 128, but got 129"}},
		{"major fraction", with("version_major", "1.5"), []string{"/version_major|version_major: expected integer, but got number"}},
		{"major huge", with("version_major", "1e999999999"), []string{"/version_major|version_major: expected integer, but got number"}},
		{"major string", with("version_major", `"1"`), []string{"/version_major|version_major: expected integer, but got string"}},
		{"major negative", with("version_major", "-3"), []string{"/version_major|version_major: must be >= 0 but found -3"}},
		{"type", with("type", `"x"`), []string{`/type|type: value must be one of "datastream", "properties"`}},
		{"ownership number", with("ownership", "3"), []string{`/ownership|ownership: value must be one of "device", "server", "producer", "consumer"`}},
		{"quality", with("quality", `"q"`), []string{`/quality|quality: value must be one of "device", "server", "producer", "consumer"`}},
		{"aggregate", with("aggregate", `"yes"`), []string{"/aggregate|aggregate: expected boolean, but got string"}},
		{"description in code points", with("description", `"`+strings.Repeat("é", 1001)+`"`), []string{"/description|description: length must be <= 1000, but got 1001"}},
		{"doc null", with("doc", "null"), []string{"/doc|doc: expected string, but got null"}},
		{"mappings object", with("mappings", "{}"), []string{"/mappings|mappings: expected array, but got object"}},
		{"mappings empty", with("mappings", "[]"), []string{"/mappings|mappings: minimum 1 items required, but found 0 items"}},
		{"mappings 1025", with("mappings", "["+strings.Repeat(`{"endpoint":"/v","type":"double"},`, 1024)+`{"endpoint":"/v","type":"double"}]`),
			[]string{"/mappings|mappings: maximum 1024 items allowed, but found 1025 items"}},
		{"mapping number", mapping("3"), []string{"/mappings/0|expected object, but got number"}},
		{"mapping empty", mapping("{}"), []string{"/mappings/0|missing required field: 'type'"}},
		{"endpoint short", mapping(`{"endpoint":"/","type":"double"}`),
			[]string{"/mappings/0/endpoint|endpoint: length must be >= 2, but got 1", "/mappings/0/endpoint|endpoint \"/\": level 1 \"\": empty level (two '/' in a row, or a trailing '/'); " + levelRule}},
		{"endpoint number", mapping(`{"endpoint":5,"type":"double"}`), []string{"/mappings/0/endpoint|endpoint: expected string, but got number"}},
		{"path", mapping(`{"path":"/a b","type":"double"}`), []string{"/mappings/0/path|endpoint \"/a b\": level 1 \"a b\": character ' ' at position 2 is not allowed; " + levelRule}},
		{"ttl low", mapping(`{"endpoint":"/v","type":"double","database_retention_ttl":5}`),
			[]string{"/mappings/0/database_retention_ttl|database_retention_ttl: must be >= 60 but found 5"}},
		{"every mapping field", mapping(`{"endpoint":"/v","type":"double","reliability":"x","retention":1,"expiry":-1,"database_retention_policy":"x",` +
			`"database_retention_ttl":1e10,"explicit_timestamp":1,"allow_unset":"t","required":null,"encrypted":0,"description":1,"doc":2}`), []string{
			"/mappings/0/allow_unset|allow_unset: expected boolean, but got string",
			`/mappings/0/database_retention_policy|database_retention_policy: value must be one of "no_ttl", "use_ttl"`,
			"/mappings/0/database_retention_ttl|database_retention_ttl: must be <= 630719999 but found 1e10",
			"/mappings/0/description|description: expected string, but got number",
			"/mappings/0/doc|doc: expected string, but got number",
			"/mappings/0/encrypted|encrypted: expected boolean, but got number",
			"/mappings/0/expiry|expiry: must be >= 0 but found -1",
			"/mappings/0/explicit_timestamp|explicit_timestamp: expected boolean, but got number",
			`/mappings/0/reliability|reliability: value must be one of "unreliable", "guaranteed", "unique"`,
			"/mappings/0/required|required: expected boolean, but got null",
			`/mappings/0/retention|retention: value must be one of "discard", "volatile", "stored"`,
		}},
		{"unknown field ignored", with("extra", "1"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.json", []byte(tt.doc))
			var got []string
			if e, ok := err.(*Error); ok {
				for _, d := range e.Diagnostics {
					got = append(got, d.Pointer+"|"+d.Message)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s", diff)
			}
		})
	}
}
