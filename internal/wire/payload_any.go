package wire

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/astarte-gen/astarte-gen/runtime/model"
)

// Any writes a dynamically typed value: the Go type of the mapping's
// Astarte type (float64, int32, bool, int64, string, []byte, time.Time and
// slices of those); other Go integer and float kinds, and []any, are
// accepted when every value fits. For an object aggregation, v is a
// map[string]any keyed by the endpoints' last levels, and Any writes every
// field in mapping order.
func (p *Payload) Any(v any) *Payload {
	if p.err != nil {
		return p
	}
	if p.iface.Aggregation == model.Object {
		return p.anyObject(v)
	}
	return p.anyValue(p.iface.Mappings[p.mapping].Type, v)
}

func (p *Payload) anyObject(v any) *Payload {
	fields, ok := v.(map[string]any)
	if !ok {
		p.fail(fmt.Errorf("%w: object value must be map[string]any, not %T", ErrTypeMismatch, v))
		return p
	}
	used := 0
	for i := range p.iface.Mappings {
		x, ok := fields[p.iface.Mappings[i].LastLevel()]
		if !ok {
			continue
		}
		used++
		p.Field(i).anyValue(p.iface.Mappings[i].Type, x)
	}
	if used != len(fields) && p.err == nil {
		for k := range fields {
			if !p.hasField(k) {
				p.fail(fmt.Errorf("%w: %s has no object field %q", model.ErrMappingNotFound, p.iface.Name, k))
				break
			}
		}
	}
	return p
}

func (p *Payload) hasField(key string) bool {
	return slices.ContainsFunc(p.iface.Mappings, func(m model.Mapping) bool { return m.LastLevel() == key })
}

// anyValue writes v, converted to Astarte type t.
func (p *Payload) anyValue(t model.ValueType, v any) *Payload {
	if t.IsArray() {
		return p.anyArray(t, v)
	}
	switch t {
	case model.Double:
		if f, ok := toFloat(v); ok {
			return p.Double(f)
		}
	case model.Integer:
		if n, ok := toInt(v); ok && n >= math.MinInt32 && n <= math.MaxInt32 {
			return p.Integer(int32(n))
		}
	case model.LongInteger:
		if n, ok := toInt(v); ok {
			return p.LongInteger(n)
		}
	case model.Boolean:
		if b, ok := v.(bool); ok {
			return p.Boolean(b)
		}
	case model.String:
		if s, ok := v.(string); ok {
			return p.String(s)
		}
	case model.BinaryBlob:
		if b, ok := v.([]byte); ok {
			return p.BinaryBlob(b)
		}
	case model.DateTime:
		if d, ok := v.(time.Time); ok {
			return p.DateTime(d)
		}
	}
	p.fail(fmt.Errorf("%w: %T (%v) does not fit %s", ErrTypeMismatch, v, v, t))
	return p
}

func (p *Payload) anyArray(t model.ValueType, v any) *Payload {
	switch x := v.(type) {
	case []float64:
		return p.DoubleArray(x)
	case []int32:
		return p.IntegerArray(x)
	case []bool:
		return p.BooleanArray(x)
	case []int64:
		return p.LongIntegerArray(x)
	case []string:
		return p.StringArray(x)
	case [][]byte:
		return p.BinaryBlobArray(x)
	case []time.Time:
		return p.DateTimeArray(x)
	}
	elems, ok := toSlice(v)
	if !ok {
		p.fail(fmt.Errorf("%w: %T does not fit %s", ErrTypeMismatch, v, t))
		return p
	}
	switch t {
	case model.DoubleArray:
		return p.DoubleArray(convertAll(p, elems, toFloat))
	case model.IntegerArray:
		return p.IntegerArray(convertAll(p, elems, toInt32))
	case model.LongIntegerArray:
		return p.LongIntegerArray(convertAll(p, elems, toInt))
	case model.BooleanArray:
		return p.BooleanArray(convertAll(p, elems, assert[bool]))
	case model.StringArray:
		return p.StringArray(convertAll(p, elems, assert[string]))
	case model.BinaryBlobArray:
		return p.BinaryBlobArray(convertAll(p, elems, assert[[]byte]))
	default:
		return p.DateTimeArray(convertAll(p, elems, assert[time.Time]))
	}
}

// convertAll converts each element or records a type mismatch.
func convertAll[T any](p *Payload, elems []any, conv func(any) (T, bool)) []T {
	out := make([]T, len(elems))
	for i, e := range elems {
		x, ok := conv(e)
		if !ok {
			p.fail(fmt.Errorf("%w: element %d (%T) does not fit", ErrTypeMismatch, i, e))
			return nil
		}
		out[i] = x
	}
	return out
}

func assert[T any](v any) (T, bool) {
	x, ok := v.(T)
	return x, ok
}

// toSlice accepts []any and slices of Go numeric kinds for the array
// conversions.
func toSlice(v any) ([]any, bool) {
	switch x := v.(type) {
	case []any:
		return x, true
	case []int:
		return anySlice(x), true
	case []float32:
		return anySlice(x), true
	}
	return nil, false
}

func anySlice[T any](xs []T) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	}
	if n, ok := toInt(v); ok && n >= -(1<<53) && n <= 1<<53 {
		return float64(n), true // exactly representable
	}
	return 0, false
}

func toInt32(v any) (int32, bool) {
	n, ok := toInt(v)
	if !ok || n < math.MinInt32 || n > math.MaxInt32 {
		return 0, false
	}
	return int32(n), true
}

func toInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint:
		return int64(x), uint64(x) <= math.MaxInt64 // uint is 32 bits on 32-bit targets
	case uint64:
		return int64(x), x <= math.MaxInt64
	}
	return 0, false
}
