// Package jsonschema validates JSON documents against the part of JSON
// Schema (draft 2020-12) that schema/interface.schema.json uses: type, enum,
// required, properties, items, local $ref into $defs, minLength, maxLength,
// pattern, minimum, maximum, minItems and maxItems.
//
// It exists so that validating an interface file costs nothing until a
// file is validated: a general JSON Schema library compiles its
// meta-schemas in package init, which every run of the command paid for,
// even --help. Compile refuses a keyword it does not implement, so a schema
// edit can never be silently ignored.
package jsonschema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// ErrUnsupported is wrapped by Compile errors for schemas that use a
// keyword or $ref form this package does not implement.
var ErrUnsupported = errors.New("unsupported JSON Schema feature")

// annotations are keywords that carry no assertion.
var annotations = map[string]bool{
	"$schema": true, "$id": true, "$comment": true, "$defs": true,
	"title": true, "description": true,
}

// Schema is a compiled schema; it is immutable and safe for concurrent use.
type Schema struct {
	root *node
}

// node is one compiled (sub)schema. A nil limit is an absent keyword.
type node struct {
	ref                  *node
	refName              string // "#/$defs/name" until resolved
	types                []string
	enum                 []any
	required             []string
	properties           map[string]*node
	items                *node
	minLength, maxLength *int
	pattern              *regexp.Regexp
	minimum, maximum     *number
	minItems, maxItems   *int
}

// number is a JSON number with the text it was written as, for messages.
type number struct {
	val  *big.Float
	text string
}

// Error is one failed assertion.
type Error struct {
	// Pointer is the JSON pointer of the failing value in the document
	// ("" for the root).
	Pointer string
	// Keyword is the schema keyword that failed, e.g. "pattern".
	Keyword string
	// Message says what is wrong with the value, without naming it.
	Message string
}

func (e Error) Error() string { return e.Pointer + ": " + e.Message }

// Compile compiles a schema document. Its errors name the schema location
// (a JSON pointer into the schema) and the problem.
func Compile(data []byte) (*Schema, error) {
	doc, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	c := compiler{defs: map[string]*node{}}
	root, err := c.compile(doc, "")
	if err != nil {
		return nil, err
	}
	if m, ok := doc.(map[string]any); ok && m["$defs"] != nil {
		defs, ok := m["$defs"].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("schema /$defs: not an object")
		}
		for name, def := range defs {
			if c.defs[name], err = c.compile(def, "/$defs/"+name); err != nil {
				return nil, err
			}
		}
	}
	for _, n := range c.refs {
		def, ok := c.defs[strings.TrimPrefix(n.refName, "#/$defs/")]
		if !ok {
			return nil, fmt.Errorf("schema: $ref %q: no such definition", n.refName)
		}
		n.ref = def
	}
	return &Schema{root: root}, nil
}

// decode reads one JSON value keeping numbers exact (json.Number).
func decode(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("extra data after the value")
	}
	return v, nil
}

type compiler struct {
	defs map[string]*node
	refs []*node // nodes whose $ref is resolved once every def is compiled
}

func (c *compiler) compile(v any, at string) (*node, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("schema %s: a schema must be an object: %w", at, ErrUnsupported)
	}
	n := &node{}
	for _, kw := range sortedKeys(m) {
		if err := c.keyword(n, kw, m[kw], at+"/"+kw); err != nil {
			return nil, fmt.Errorf("schema %s: %w", at+"/"+kw, err)
		}
	}
	return n, nil
}

func (c *compiler) keyword(n *node, kw string, v any, at string) error {
	var err error
	switch kw {
	case "type":
		n.types, err = typeList(v)
	case "enum":
		list, ok := v.([]any)
		if !ok || len(list) == 0 {
			return errors.New("enum must be a non-empty array")
		}
		n.enum = list
	case "required":
		n.required, err = stringList(v)
	case "properties":
		props, ok := v.(map[string]any)
		if !ok {
			return errors.New("properties must be an object")
		}
		n.properties = map[string]*node{}
		for name, sub := range props {
			if n.properties[name], err = c.compile(sub, at+"/"+escape(name)); err != nil {
				return err
			}
		}
	case "items":
		n.items, err = c.compile(v, at)
	case "$ref":
		s, _ := v.(string)
		if !strings.HasPrefix(s, "#/$defs/") || strings.Count(s, "/") != 2 {
			return fmt.Errorf("$ref %q: only #/$defs/NAME is implemented: %w", v, ErrUnsupported)
		}
		n.refName = s
		c.refs = append(c.refs, n)
	case "pattern":
		s, ok := v.(string)
		if !ok {
			return errors.New("pattern must be a string")
		}
		n.pattern, err = regexp.Compile(s)
	case "minLength":
		n.minLength, err = count(v)
	case "maxLength":
		n.maxLength, err = count(v)
	case "minItems":
		n.minItems, err = count(v)
	case "maxItems":
		n.maxItems, err = count(v)
	case "minimum":
		n.minimum, err = parseNumber(v)
	case "maximum":
		n.maximum, err = parseNumber(v)
	default:
		if !annotations[kw] {
			return fmt.Errorf("keyword %q: %w", kw, ErrUnsupported)
		}
	}
	return err
}

var jsonTypes = []string{"null", "boolean", "object", "array", "number", "string", "integer"}

func typeList(v any) ([]string, error) {
	if s, ok := v.(string); ok {
		v = []any{s}
	}
	list, err := stringList(v)
	for _, t := range list {
		if !slices.Contains(jsonTypes, t) {
			return nil, fmt.Errorf("unknown type %q", t)
		}
	}
	return list, err
}

func stringList(v any) ([]string, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, errors.New("must be an array of strings")
	}
	out := make([]string, len(list))
	for i, e := range list {
		if out[i], ok = e.(string); !ok {
			return nil, errors.New("must be an array of strings")
		}
	}
	return out, nil
}

func count(v any) (*int, error) {
	n, ok := v.(json.Number)
	if !ok {
		return nil, errors.New("must be a non-negative integer")
	}
	i, err := strconv.Atoi(string(n))
	if err != nil || i < 0 {
		return nil, errors.New("must be a non-negative integer")
	}
	return &i, nil
}

func parseNumber(v any) (*number, error) {
	n, ok := v.(json.Number)
	if !ok {
		return nil, errors.New("must be a number")
	}
	return toNumber(n)
}

// toNumber parses a JSON number with 256 bits of mantissa: exact for
// every integer an interface file can sensibly hold, and bounded in cost
// whatever the exponent (1e999999999 is +Inf, not a huge allocation).
func toNumber(n json.Number) (*number, error) {
	f, _, err := big.ParseFloat(string(n), 10, 256, big.ToNearestEven)
	if err != nil {
		return nil, err
	}
	return &number{val: f, text: string(n)}, nil
}

func sortedKeys(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

// escape escapes a property name as a JSON pointer token (RFC 6901).
func escape(name string) string {
	return strings.ReplaceAll(strings.ReplaceAll(name, "~", "~0"), "/", "~1")
}
