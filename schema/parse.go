// Package schema validates Astarte interface files the way an Astarte
// server does: first against our JSON Schema (interface.schema.json,
// embedded), then against the rules JSON Schema cannot express (spec §4):
// versions, field applicability, object aggregation, case-insensitive
// uniqueness and endpoint clashes, legacy spellings. Every problem is
// reported with the file, a JSON pointer and the rule in plain words.
package schema

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/astarte-gen/astarte-gen/internal/jsonschema"
	"github.com/astarte-gen/astarte-gen/runtime/model"
)

//go:embed interface.schema.json
var schemaJSON []byte

// compiled is the compiled schema, made on the first validation (never in
// package init: `astarte-gen --help` does not pay for it); compiling is
// deterministic, so the result is immutable and shared.
var compiled = sync.OnceValues(func() (*jsonschema.Schema, error) {
	return jsonschema.Compile(schemaJSON)
})

// Schema returns the embedded JSON Schema of interface files.
func Schema() []byte { return bytes.Clone(schemaJSON) }

// Parse validates an interface file and returns its descriptor with defaults
// applied. name is the file name used in diagnostics. The error, an *Error,
// lists every problem found; warnings are not errors (see
// ParseWithWarnings).
func Parse(name string, data []byte) (*model.Interface, error) {
	iface, _, err := ParseWithWarnings(name, data)
	return iface, err
}

// ParseWithWarnings is Parse that also returns the warnings: deprecated or
// meaningless forms that Astarte accepts.
func ParseWithWarnings(name string, data []byte) (*model.Interface, []Diagnostic, error) {
	r := &report{file: name}
	iface := parse(r, data)
	errs, warns := split(r.diags)
	if len(errs) > 0 {
		return nil, warns, &Error{Diagnostics: errs}
	}
	return iface, warns, nil
}

func parse(r *report, data []byte) *model.Interface {
	if !checkUTF8(r, data) {
		return nil
	}
	var doc any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		r.errorf("", "not valid JSON: %s", jsonErrorPosition(data, err))
		return nil
	}
	if dec.More() {
		r.errorf("", "not valid JSON: extra data after the interface object")
		return nil
	}
	s, err := compiled()
	if err != nil {
		r.errorf("", "internal error: schema does not compile: %v", err)
		return nil
	}
	if errs := s.Validate(doc); len(errs) > 0 {
		schemaDiagnostics(r, errs, doc)
		warnUnknownKeys(r, doc)
		return nil
	}
	warnUnknownKeys(r, doc)
	if !checkIntegerLiterals(r, doc) {
		return nil
	}
	var raw rawInterface
	if err := json.Unmarshal(data, &raw); err != nil {
		r.errorf("", "%v", err)
		return nil
	}
	return check(r, &raw)
}

// jsonErrorPosition turns a decoding error into "line L, column C: …".
func jsonErrorPosition(data []byte, err error) string {
	var offset int64 = -1
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		offset = syn.Offset
	case errors.As(err, &typ):
		offset = typ.Offset
	case errors.Is(err, io.ErrUnexpectedEOF):
		offset = int64(len(bytes.TrimRight(data, " \t\r\n")))
	}
	if offset < 0 || offset > int64(len(data)) {
		return err.Error()
	}
	line := bytes.Count(data[:offset], []byte("\n")) + 1
	col := offset - int64(bytes.LastIndexByte(data[:offset], '\n'))
	return fmt.Sprintf("line %d, column %d: %v", line, col, err)
}

// schemaDiagnostics reports schema errors in plain words, sorted by
// pointer.
func schemaDiagnostics(r *report, errs []jsonschema.Error, doc any) {
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Pointer < errs[j].Pointer })
	seen := map[string]bool{}
	for _, e := range errs {
		msg := plainSchemaMessage(e, lookup(doc, e.Pointer))
		if key := e.Pointer + msg; !seen[key] {
			seen[key] = true
			r.errorf(e.Pointer, "%s", msg)
		}
	}
}

// plainSchemaMessage explains the rules whose schema wording would be a
// regular expression, and names the field.
func plainSchemaMessage(e jsonschema.Error, value any) string {
	field := e.Pointer[strings.LastIndexByte(e.Pointer, '/')+1:]
	switch {
	case e.Keyword == "pattern" && field == "interface_name":
		return "interface name must be dot-separated components (e.g. org.example.Sensors): the first and last start with a letter and hold letters and digits; middle ones may also hold '-' and start with a digit"
	case e.Keyword == "pattern" && endpointProblem(value) != "":
		return endpointProblem(value)
	case e.Keyword == "pattern":
		return "endpoint must be 1 to 64 levels, each '/' then a literal ([A-Za-z_][A-Za-z0-9_]*) or a whole-level parameter %{name}"
	case e.Keyword == "required":
		return strings.Replace(e.Message, "missing properties", "missing required field", 1)
	}
	if field != "" {
		if _, err := strconv.Atoi(field); err != nil {
			return field + ": " + e.Message
		}
	}
	return e.Message
}

// lookup returns the value at a JSON pointer in a decoded document, or nil.
func lookup(doc any, pointer string) any {
	if pointer == "" {
		return doc
	}
	for _, tok := range strings.Split(pointer[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch v := doc.(type) {
		case map[string]any:
			doc = v[tok]
		case []any:
			n, err := strconv.Atoi(tok)
			if err != nil || n < 0 || n >= len(v) {
				return nil
			}
			doc = v[n]
		default:
			return nil
		}
	}
	return doc
}

// endpointProblem names the offending level and character of an endpoint
// the schema's pattern refused, or returns "" when the levels are fine
// (the pattern then failed on the depth).
func endpointProblem(value any) string {
	endpoint, ok := value.(string)
	if !ok {
		return ""
	}
	if !strings.HasPrefix(endpoint, "/") {
		return fmt.Sprintf("endpoint %q must start with '/'", endpoint)
	}
	if _, err := model.ParseEndpoint(endpoint); err != nil {
		return "endpoint " + strings.TrimPrefix(err.Error(), model.ErrInvalidEndpoint.Error()+" ")
	}
	return ""
}
