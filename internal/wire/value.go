package wire

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"

	"github.com/astarte-gen/astarte-gen/runtime/model"
)

// Value is one Astarte value decoded from the wire or the store, already
// checked against its mapping's type. Read it with the accessor of its type;
// the wrong accessor returns ErrTypeMismatch.
type Value struct {
	typ model.ValueType
	raw bsoncore.Value
}

// Type returns the Astarte type of v.
func (v Value) Type() model.ValueType { return v.typ }

func (v Value) want(t model.ValueType) error {
	if v.typ != t {
		return fmt.Errorf("%w: reading a %s value as %s", ErrTypeMismatch, v.typ, t)
	}
	return nil
}

// Double returns a double value.
func (v Value) Double() (float64, error) {
	if err := v.want(model.Double); err != nil {
		return 0, err
	}
	return number(v.raw), nil
}

// Integer returns an integer value.
func (v Value) Integer() (int32, error) {
	if err := v.want(model.Integer); err != nil {
		return 0, err
	}
	return int32(integer(v.raw)), nil
}

// Boolean returns a boolean value.
func (v Value) Boolean() (bool, error) {
	if err := v.want(model.Boolean); err != nil {
		return false, err
	}
	return v.raw.Boolean(), nil
}

// LongInteger returns a longinteger value (int32 on the wire is accepted).
func (v Value) LongInteger() (int64, error) {
	if err := v.want(model.LongInteger); err != nil {
		return 0, err
	}
	return integer(v.raw), nil
}

// String returns a string value.
func (v Value) String() (string, error) {
	if err := v.want(model.String); err != nil {
		return "", err
	}
	return v.raw.StringValue(), nil
}

// BinaryBlob returns a binaryblob value.
func (v Value) BinaryBlob() ([]byte, error) {
	if err := v.want(model.BinaryBlob); err != nil {
		return nil, err
	}
	_, b := v.raw.Binary()
	return b, nil
}

// DateTime returns a datetime value in UTC.
func (v Value) DateTime() (time.Time, error) {
	if err := v.want(model.DateTime); err != nil {
		return time.Time{}, err
	}
	return time.UnixMilli(v.raw.DateTime()).UTC(), nil
}

// DoubleArray returns a doublearray value.
func (v Value) DoubleArray() ([]float64, error) { return readArray(v, model.DoubleArray, number) }

// IntegerArray returns an integerarray value.
func (v Value) IntegerArray() ([]int32, error) {
	return readArray(v, model.IntegerArray, func(e bsoncore.Value) int32 { return int32(integer(e)) })
}

// BooleanArray returns a booleanarray value.
func (v Value) BooleanArray() ([]bool, error) {
	return readArray(v, model.BooleanArray, bsoncore.Value.Boolean)
}

// LongIntegerArray returns a longintegerarray value.
func (v Value) LongIntegerArray() ([]int64, error) {
	return readArray(v, model.LongIntegerArray, integer)
}

// StringArray returns a stringarray value.
func (v Value) StringArray() ([]string, error) {
	return readArray(v, model.StringArray, bsoncore.Value.StringValue)
}

// BinaryBlobArray returns a binaryblobarray value.
func (v Value) BinaryBlobArray() ([][]byte, error) {
	return readArray(v, model.BinaryBlobArray, func(e bsoncore.Value) []byte { _, b := e.Binary(); return b })
}

// DateTimeArray returns a datetimearray value.
func (v Value) DateTimeArray() ([]time.Time, error) {
	return readArray(v, model.DateTimeArray, func(e bsoncore.Value) time.Time { return time.UnixMilli(e.DateTime()).UTC() })
}

// readArray converts the elements of an array already validated by check.
func readArray[T any](v Value, t model.ValueType, conv func(bsoncore.Value) T) ([]T, error) {
	if err := v.want(t); err != nil {
		return nil, err
	}
	elems, _ := v.raw.Array().Values()
	out := make([]T, len(elems))
	for i, e := range elems {
		out[i] = conv(e)
	}
	return out, nil
}

// number reads a validated double (or, from a device, any BSON number).
func number(v bsoncore.Value) float64 {
	switch v.Type {
	case bsoncore.TypeInt32:
		return float64(v.Int32())
	case bsoncore.TypeInt64:
		return float64(v.Int64())
	}
	return v.Double()
}

// integer reads a validated int32 or int64.
func integer(v bsoncore.Value) int64 {
	if v.Type == bsoncore.TypeInt32 {
		return int64(v.Int32())
	}
	return v.Int64()
}

// Any returns the value as the Go type of its Astarte type (see Payload.Any).
func (v Value) Any() any {
	var x any
	switch v.typ {
	case model.Double:
		x, _ = v.Double()
	case model.Integer:
		x, _ = v.Integer()
	case model.Boolean:
		x, _ = v.Boolean()
	case model.LongInteger:
		x, _ = v.LongInteger()
	case model.String:
		x, _ = v.String()
	case model.BinaryBlob:
		x, _ = v.BinaryBlob()
	case model.DateTime:
		x, _ = v.DateTime()
	case model.DoubleArray:
		x, _ = v.DoubleArray()
	case model.IntegerArray:
		x, _ = v.IntegerArray()
	case model.BooleanArray:
		x, _ = v.BooleanArray()
	case model.LongIntegerArray:
		x, _ = v.LongIntegerArray()
	case model.StringArray:
		x, _ = v.StringArray()
	case model.BinaryBlobArray:
		x, _ = v.BinaryBlobArray()
	case model.DateTimeArray:
		x, _ = v.DateTimeArray()
	}
	return x
}

// Field is one field of a decoded object value.
type Field struct {
	// Mapping is the index of the field's mapping in Interface.Mappings.
	Mapping int
	Value   Value
}

// Decoded is the content of one data payload.
type Decoded struct {
	// Unset is true for an empty payload on a property (Value and Fields are
	// then empty).
	Unset bool
	// Value is the value of an individual mapping.
	Value Value
	// Fields are the fields of an object value, in mapping order.
	Fields []Field
	// Timestamp is the "t" element, or zero when absent.
	Timestamp time.Time
}

// Decode decodes a data payload for the mapping m resolved from its
// path (Interface.Match) and checks it against the mapping types (spec
// §3.5, §3.12): exact BSON element types, int32 accepted for longinteger,
// unknown keys ignored, object keys that are not last levels rejected,
// empty payload = unset (properties only), limits of §4.7. It never panics
// on any input; errors wrap ErrInvalidPayload, ErrUnsetNotAllowed or
// ErrInvalidValue. Decoded values reference payload (copy it to keep them).
func Decode(iface *model.Interface, m model.Match, payload []byte) (Decoded, error) {
	return decodePayload(iface, m, payload, false)
}

// DecodeDevice decodes a payload published by a device, as Astarte
// does (spec §3.5): like Decode but also accepting any BSON number
// for a double and int64 within range for an integer (§3.5.1, last
// column), reading a "v" that is null, or a zero-length binary without "t"
// and "m", as an unset (§3.5.4, Astarte's deprecated unset: on a datastream
// that is an ErrUnsetNotAllowed), reading an object document without "v" as the
// object itself (legacy form, §3.5.3), and refusing a NaN whose bits are
// not the canonical quiet NaN as undecodable (Astarte's BSON decoder knows
// only that one). The fake Astarte of package astartetest uses it.
func DecodeDevice(iface *model.Interface, m model.Match, payload []byte) (Decoded, error) {
	return decodePayload(iface, m, payload, true)
}

func decodePayload(iface *model.Interface, m model.Match, payload []byte, fromDevice bool) (Decoded, error) {
	if m.Index < 0 || m.Index >= len(iface.Mappings) {
		return Decoded{}, fmt.Errorf("%w: %s has no mapping %d", ErrInvalidPayload, iface.Name, m.Index)
	}
	if len(payload) == 0 {
		return decodeUnset(iface, m)
	}
	doc := bsoncore.Document(payload)
	if err := doc.Validate(); err != nil {
		return Decoded{}, fmt.Errorf("%w: not a BSON document: %v", ErrInvalidPayload, err)
	}
	var dec Decoded
	t, err := doc.LookupErr("t")
	hasT := err == nil && t.Type == bsoncore.TypeDateTime
	if hasT {
		dec.Timestamp = time.UnixMilli(t.DateTime()).UTC()
	}
	meta, err := doc.LookupErr("m")
	hasM := err == nil && meta.Type == bsoncore.TypeEmbeddedDocument
	v, err := doc.LookupErr("v")
	switch {
	case err != nil && fromDevice && iface.Aggregation == model.Object:
		v = bsoncore.Value{Type: bsoncore.TypeEmbeddedDocument, Data: payload} // legacy bare object
	case err != nil:
		return Decoded{}, fmt.Errorf("%w: no \"v\" element", ErrInvalidPayload)
	case fromDevice && isDeprecatedUnset(v, hasT || hasM):
		return decodeUnset(iface, m)
	}
	if iface.Aggregation == model.Object {
		dec.Fields, err = decodeObject(iface, v, fromDevice)
		return dec, err
	}
	mp := &iface.Mappings[m.Index]
	if err := check(mp.Type, v, fromDevice); err != nil {
		return Decoded{}, fmt.Errorf("%s%s: %w", iface.Name, mp.Endpoint, err)
	}
	dec.Value = Value{typ: mp.Type, raw: v}
	return dec, nil
}

// decodeUnset accepts an unset where the mapping allows it.
func decodeUnset(iface *model.Interface, m model.Match) (Decoded, error) {
	if iface.Type != model.Properties {
		return Decoded{}, fmt.Errorf("%w: unset (empty payload) on a datastream", ErrUnsetNotAllowed)
	}
	if !iface.Mappings[m.Index].AllowUnset {
		return Decoded{}, fmt.Errorf("%w: %s%s", ErrUnsetNotAllowed, iface.Name, iface.Mappings[m.Index].Endpoint)
	}
	return Decoded{Unset: true}, nil
}

// isDeprecatedUnset reports a "v" that Astarte reads as an unset: BSON null,
// or a zero-length binary in a document with neither a datetime "t" nor an
// "m" document (Astarte's decoder tries those forms first, and there an
// empty binary is an empty value).
func isDeprecatedUnset(v bsoncore.Value, withTOrM bool) bool {
	if v.Type == bsoncore.TypeNull {
		return true
	}
	_, data, ok := v.BinaryOK()
	return ok && len(data) == 0 && !withTOrM
}

func decodeObject(iface *model.Interface, v bsoncore.Value, fromDevice bool) ([]Field, error) {
	obj, ok := v.DocumentOK()
	if !ok {
		return nil, fmt.Errorf("%w: object value is a %s, not a document", ErrInvalidPayload, v.Type)
	}
	elems, err := obj.Elements()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidPayload, err)
	}
	fields := make([]Field, 0, len(elems))
	for _, e := range elems {
		idx := slices.IndexFunc(iface.Mappings, func(m model.Mapping) bool { return m.LastLevel() == e.Key() })
		if idx < 0 {
			return nil, fmt.Errorf("%w: unexpected object key %q", ErrInvalidPayload, e.Key())
		}
		if slices.ContainsFunc(fields, func(f Field) bool { return f.Mapping == idx }) {
			return nil, fmt.Errorf("%w: object key %q twice", ErrInvalidPayload, e.Key())
		}
		if err := check(iface.Mappings[idx].Type, e.Value(), fromDevice); err != nil {
			return nil, fmt.Errorf("object key %q: %w", e.Key(), err)
		}
		fields = append(fields, Field{Mapping: idx, Value: Value{typ: iface.Mappings[idx].Type, raw: e.Value()}})
	}
	if len(fields) == 0 {
		return nil, fmt.Errorf("%w: empty object", ErrInvalidPayload)
	}
	slices.SortFunc(fields, func(a, b Field) int { return a.Mapping - b.Mapping })
	return fields, nil
}

var errWrongBSONType = errors.New("wrong BSON type")

// canonicalNaN is the one NaN bit pattern Astarte's BSON decoder maps to a
// (refused) value; it cannot decode any other NaN.
const canonicalNaN = 0x7ff8000000000000

// check validates a BSON value against an Astarte type and its limits.
func check(t model.ValueType, v bsoncore.Value, fromDevice bool) error {
	if !t.IsArray() {
		return checkScalar(t, v, fromDevice)
	}
	arr, ok := v.ArrayOK()
	if !ok {
		return fmt.Errorf("%w: %w: %s is a %s", ErrInvalidPayload, errWrongBSONType, t, v.Type)
	}
	elems, err := arr.Values()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidPayload, err)
	}
	if len(elems) > maxLength {
		return fmt.Errorf("%w: %s of %d elements exceeds %d", ErrInvalidValue, t, len(elems), maxLength)
	}
	for i, e := range elems {
		if err := checkScalar(t.Scalar(), e, fromDevice); err != nil {
			return fmt.Errorf("element %d: %w", i, err)
		}
	}
	return nil
}

func checkScalar(t model.ValueType, v bsoncore.Value, fromDevice bool) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidValue}, args...)...)
	}
	switch {
	case t == model.Double && (v.Type == bsoncore.TypeDouble || fromDevice && isInteger(v)):
		f := number(v)
		if fromDevice && math.IsNaN(f) && math.Float64bits(f) != canonicalNaN {
			return fmt.Errorf("%w: not a BSON document Astarte decodes: NaN bits %#x", ErrInvalidPayload, math.Float64bits(f))
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return bad("double is not finite")
		}
	case t == model.Integer && (v.Type == bsoncore.TypeInt32 || fromDevice && v.Type == bsoncore.TypeInt64):
		if n := integer(v); n <= math.MinInt32 || n > math.MaxInt32 {
			return bad("integer %d out of range", n)
		}
	case t == model.LongInteger && isInteger(v):
		if integer(v) == math.MinInt64 {
			return bad("longinteger out of range")
		}
	case t == model.Boolean && v.Type == bsoncore.TypeBoolean:
	case t == model.String && v.Type == bsoncore.TypeString:
		if err := checkString(v.StringValue()); err != nil {
			return err
		}
	case t == model.BinaryBlob && v.Type == bsoncore.TypeBinary:
		if _, b := v.Binary(); len(b) > maxBytes {
			return bad("binaryblob of %d bytes exceeds %d", len(b), maxBytes)
		}
	case t == model.DateTime && v.Type == bsoncore.TypeDateTime:
	default:
		return fmt.Errorf("%w: %w: %s is a %s", ErrInvalidPayload, errWrongBSONType, t, v.Type)
	}
	return nil
}

func isInteger(v bsoncore.Value) bool {
	return v.Type == bsoncore.TypeInt32 || v.Type == bsoncore.TypeInt64
}
