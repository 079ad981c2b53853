package jsonschema

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mustCompile(t *testing.T, schema string) *Schema {
	t.Helper()
	s, err := Compile([]byte(schema))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// validate returns the failures as "pointer keyword: message".
func validate(t *testing.T, s *Schema, doc string) []string {
	t.Helper()
	v, err := decode([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range s.Validate(v) {
		out = append(out, e.Pointer+" "+e.Keyword+": "+e.Message)
	}
	return out
}

func TestKeywords(t *testing.T) {
	s := mustCompile(t, `{
		"$schema": "https://json-schema.org/draft/2020-12/schema",
		"title": "t", "description": "d", "$comment": "c",
		"type": "object",
		"required": ["a", "b"],
		"properties": {
			"a": {"$ref": "#/$defs/short"},
			"b": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "integer", "minimum": -1, "maximum": 1.5}},
			"c": {"enum": ["x", 2, null, [1], {"k": true}]},
			"d/~": {"type": ["string", "null"]},
			"n": {"type": "number"}
		},
		"$defs": {"short": {"type": "string", "minLength": 2, "maxLength": 3, "pattern": "^[a-zé]+$"}}
	}`)
	tests := []struct {
		doc  string
		want []string
	}{
		{`{"a": "ab", "b": [1]}`, nil},
		{`{"a": "ééé", "b": [1.0, -1], "c": 2.0, "d/~": null, "n": 2.5, "other": {}}`, nil},
		{`{"a": "ab", "b": [0], "c": [1]}`, nil},
		{`{"a": "ab", "b": [0], "c": {"k": true}}`, nil},
		{`[]`, []string{" type: expected object, but got array"}},
		{`{}`, []string{" required: missing properties: 'a', 'b'"}},
		{`{"b": []}`, []string{" required: missing properties: 'a'", "/b minItems: minimum 1 items required, but found 0 items"}},
		{`{"a": "a", "b": [1, 1, 1]}`, []string{"/a minLength: length must be >= 2, but got 1", "/b maxItems: maximum 2 items allowed, but found 3 items"}},
		{`{"a": "abcd", "b": [1]}`, []string{"/a maxLength: length must be <= 3, but got 4"}},
		{`{"a": "AB", "b": [1]}`, []string{`/a pattern: does not match pattern "^[a-zé]+$"`}},
		{`{"a": 12, "b": [1]}`, []string{"/a type: expected string, but got number"}},
		{`{"a": "ab", "b": [2, -2, 0.5, "1", 1e999999999]}`, []string{
			"/b maxItems: maximum 2 items allowed, but found 5 items",
			"/b/0 maximum: must be <= 1.5 but found 2",
			"/b/1 minimum: must be >= -1 but found -2",
			"/b/2 type: expected integer, but got number",
			"/b/3 type: expected integer, but got string",
			"/b/4 type: expected integer, but got number",
		}},
		{`{"a": "ab", "b": [1], "c": "y"}`, []string{`/c enum: value must be one of "x", 2, null, [1], {"k":true}`}},
		{`{"a": "ab", "b": [1], "c": {"k": false}}`, []string{`/c enum: value must be one of "x", 2, null, [1], {"k":true}`}},
		{`{"a": "ab", "b": [1], "d/~": 1, "n": true}`, []string{"/d~1~0 type: expected string or null, but got number", "/n type: expected number, but got boolean"}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, validate(t, s, tt.doc)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.doc, diff)
		}
	}
}

// TestCompileRefuses checks that a schema this package cannot honour is an
// error, not a silently weaker check.
func TestCompileRefuses(t *testing.T) {
	tests := []struct {
		schema, contains string
		unsupported      bool
	}{
		{`{"additionalProperties": false}`, `schema /additionalProperties: keyword "additionalProperties"`, true},
		{`{"properties": {"a": {"oneOf": []}}}`, `schema /properties/a/oneOf`, true},
		{`{"$ref": "other.json#/x"}`, "only #/$defs/NAME", true},
		{`{"$ref": "#/$defs/missing"}`, "no such definition", false},
		{`{"type": "integr"}`, `unknown type "integr"`, false},
		{`{"pattern": "("}`, "missing closing )", false},
		{`{"minLength": -1}`, "non-negative integer", false},
		{`{"maximum": "1"}`, "must be a number", false},
		{`{"enum": []}`, "non-empty array", false},
		{`{"required": [1]}`, "array of strings", false},
		{`true`, "must be an object", true},
		{`{} {}`, "extra data", false},
	}
	for _, tt := range tests {
		_, err := Compile([]byte(tt.schema))
		if err == nil || !strings.Contains(err.Error(), tt.contains) {
			t.Errorf("%s: error %v, want one containing %q", tt.schema, err, tt.contains)
		}
		if got := errors.Is(err, ErrUnsupported); got != tt.unsupported {
			t.Errorf("%s: errors.Is(err, ErrUnsupported) = %v, want %v", tt.schema, got, tt.unsupported)
		}
	}
}
