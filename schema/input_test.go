package schema_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/astarte-gen/astarte-gen/schema"
)

// TestInvalidUTF8HasPointer: invalid UTF-8 anywhere (a doc string, a
// mapping field, a member name, an array element) is an error with the JSON
// pointer of what holds it, where encoding/json alone would accept it.
func TestInvalidUTF8HasPointer(t *testing.T) {
	head := `{"interface_name": "org.x.A", "version_major": 1, "version_minor": 0, "type": "datastream", "ownership": "device", `
	for _, tc := range []struct{ doc, pointer string }{
		{head + `"doc": "caf@", "mappings": [{"endpoint": "/v", "type": "double"}]}`, "/doc"},
		{head + `"mappings": [{"endpoint": "/v", "type": "double"}, {"endpoint": "/w", "type": "double", "description": "@"}]}`, "/mappings/1/description"},
		{head + `"mappings": [{"endpoint": "/v", "type": "double", "x@": 1}]}`, "/mappings/0/x\ufffd\ufffd"},
		{head + `"mappings": [{"endpoint": "/v", "type": "double"}], "aliases": ["ok", "b@"]}`, "/aliases/1"},
	} {
		// "@" stands for the invalid bytes: raw strings cannot hold them.
		data := strings.ReplaceAll(tc.doc, "@", "\xe9\xff")
		_, err := schema.Parse("a.json", []byte(data))
		var e *schema.Error
		if !errors.As(err, &e) || len(e.Diagnostics) != 1 {
			t.Errorf("Parse accepted invalid UTF-8 at %s: %v", tc.pointer, err)
			continue
		}
		if d := e.Diagnostics[0]; d.Pointer != tc.pointer || !strings.Contains(d.Message, "invalid UTF-8") {
			t.Errorf("diagnostic %q, want pointer %s and the rule", d, tc.pointer)
		}
	}
}
