package jsonschema

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Validate checks a document decoded by encoding/json with UseNumber (so
// numbers are json.Number) and returns every failed assertion, in document
// order for each object's properties sorted by name. An empty result means
// the document is valid.
func (s *Schema) Validate(doc any) []Error {
	var errs []Error
	s.root.validate(doc, "", &errs)
	return errs
}

func (n *node) validate(v any, at string, errs *[]Error) {
	fail := func(kw, format string, args ...any) {
		*errs = append(*errs, Error{Pointer: at, Keyword: kw, Message: fmt.Sprintf(format, args...)})
	}
	if n.ref != nil {
		n.ref.validate(v, at, errs)
	}
	if len(n.types) > 0 && !slices.ContainsFunc(n.types, func(t string) bool { return hasType(v, t) }) {
		fail("type", "expected %s, but got %s", strings.Join(n.types, " or "), typeOf(v))
		return // the other keywords would only restate it
	}
	if n.enum != nil && !slices.ContainsFunc(n.enum, func(e any) bool { return equal(e, v) }) {
		fail("enum", "value must be one of %s", list(n.enum))
	}
	switch v := v.(type) {
	case string:
		n.validateString(v, fail)
	case json.Number:
		n.validateNumber(v, fail)
	case []any:
		n.validateArray(v, at, errs, fail)
	case map[string]any:
		n.validateObject(v, at, errs, fail)
	}
}

type failFunc func(kw, format string, args ...any)

func (n *node) validateString(s string, fail failFunc) {
	length := utf8.RuneCountInString(s) // JSON Schema counts code points
	if n.minLength != nil && length < *n.minLength {
		fail("minLength", "length must be >= %d, but got %d", *n.minLength, length)
	}
	if n.maxLength != nil && length > *n.maxLength {
		fail("maxLength", "length must be <= %d, but got %d", *n.maxLength, length)
	}
	if n.pattern != nil && !n.pattern.MatchString(s) {
		fail("pattern", "does not match pattern %q", n.pattern.String())
	}
}

func (n *node) validateNumber(v json.Number, fail failFunc) {
	if n.minimum == nil && n.maximum == nil {
		return
	}
	num, err := toNumber(v)
	if err != nil {
		fail("type", "not a number: %v", err)
		return
	}
	if n.minimum != nil && num.val.Cmp(n.minimum.val) < 0 {
		fail("minimum", "must be >= %s but found %s", n.minimum.text, num.text)
	}
	if n.maximum != nil && num.val.Cmp(n.maximum.val) > 0 {
		fail("maximum", "must be <= %s but found %s", n.maximum.text, num.text)
	}
}

func (n *node) validateArray(a []any, at string, errs *[]Error, fail failFunc) {
	if n.minItems != nil && len(a) < *n.minItems {
		fail("minItems", "minimum %d items required, but found %d items", *n.minItems, len(a))
	}
	if n.maxItems != nil && len(a) > *n.maxItems {
		fail("maxItems", "maximum %d items allowed, but found %d items", *n.maxItems, len(a))
	}
	if n.items != nil {
		for i, e := range a {
			n.items.validate(e, at+"/"+strconv.Itoa(i), errs)
		}
	}
}

func (n *node) validateObject(m map[string]any, at string, errs *[]Error, fail failFunc) {
	var missing []string
	for _, name := range n.required {
		if _, ok := m[name]; !ok {
			missing = append(missing, "'"+name+"'")
		}
	}
	if missing != nil {
		fail("required", "missing properties: %s", strings.Join(missing, ", "))
	}
	if n.properties == nil {
		return
	}
	for _, name := range sortedKeys(m) {
		if sub := n.properties[name]; sub != nil {
			sub.validate(m[name], at+"/"+escape(name), errs)
		}
	}
}

// hasType reports whether v is of the JSON Schema type t; an integer is a
// number with no fractional part (1.0 is one).
func hasType(v any, t string) bool {
	switch t {
	case "integer":
		n, ok := v.(json.Number)
		if !ok {
			return false
		}
		num, err := toNumber(n)
		return err == nil && num.val.IsInt()
	case "number":
		_, ok := v.(json.Number)
		return ok
	}
	return typeOf(v) == t
}

func typeOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case json.Number:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// equal is JSON equality: numbers by value, everything else structurally.
func equal(a, b any) bool {
	x, aNum := a.(json.Number)
	y, bNum := b.(json.Number)
	if aNum && bNum {
		p, err1 := toNumber(x)
		q, err2 := toNumber(y)
		return err1 == nil && err2 == nil && p.val.Cmp(q.val) == 0
	}
	if aNum != bNum {
		return false
	}
	xs, aArr := a.([]any)
	ys, bArr := b.([]any)
	if aArr && bArr {
		return slices.EqualFunc(xs, ys, equal)
	}
	xm, aObj := a.(map[string]any)
	ym, bObj := b.(map[string]any)
	if aObj && bObj {
		if len(xm) != len(ym) {
			return false
		}
		for k, xv := range xm {
			if yv, ok := ym[k]; !ok || !equal(xv, yv) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

// list writes enum values as JSON, comma-separated.
func list(values []any) string {
	parts := make([]string, len(values))
	for i, v := range values {
		b, _ := json.Marshal(v)
		parts[i] = string(b)
	}
	return strings.Join(parts, ", ")
}
