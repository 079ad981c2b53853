package runtime

import (
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// MaxPacketSize is the largest MQTT packet remaining length Astarte's broker
// accepts from a device (spec §5.1).
const MaxPacketSize = 65535

// Value limits of spec §4.7.
const (
	maxBytes  = 65536 // string and binaryblob
	maxLength = 1024  // array elements
)

// Payload encodes the BSON payload of one data message for one mapping of an
// individual interface, or for the object of an object-aggregated one,
// checking each value against its mapping's type and limits. Errors are
// sticky: the first one is kept and returned by Finish, so generated code can
// call the value methods without checking each. Reuse a Payload with Reset;
// encoding into a reused Payload does not allocate.
type Payload struct {
	iface   *Interface
	mapping int
	buf     []byte
	err     error
	doc     int32 // start of the top-level document
	obj     int32 // start of the "v" document of an object
	field   int   // object field selected by Field; -1 when none
	seen    []bool
	written int
}

// Reset prepares p for a new message on mapping index mapping of iface. For
// object aggregations mapping is ignored; select fields with Field.
func (p *Payload) Reset(iface *Interface, mapping int) {
	p.iface, p.mapping, p.err, p.field, p.written = iface, mapping, nil, -1, 0
	p.doc, p.buf = bsoncore.AppendDocumentStart(p.buf[:0])
	if iface.Aggregation == Object {
		p.mapping = 0
		p.obj, p.buf = bsoncore.AppendDocumentElementStart(p.buf, "v")
		p.seen = p.seen[:0]
		for range iface.Mappings {
			p.seen = append(p.seen, false)
		}
	}
}

// Field selects the object field (by mapping index) that the next value
// method writes. Only for object aggregations.
func (p *Payload) Field(mapping int) *Payload {
	switch {
	case p.err != nil:
	case p.iface.Aggregation != Object:
		p.fail(fmt.Errorf("%w: Field on individual interface %s", ErrTypeMismatch, p.iface.Name))
	case mapping < 0 || mapping >= len(p.iface.Mappings):
		p.fail(fmt.Errorf("%w: %s has no mapping %d", ErrMappingNotFound, p.iface.Name, mapping))
	case p.seen[mapping]:
		p.fail(fmt.Errorf("%w: field %s written twice", ErrInvalidValue, p.iface.Mappings[mapping].LastLevel()))
	default:
		p.field = mapping
	}
	return p
}

// Err returns the first error recorded so far.
func (p *Payload) Err() error { return p.err }

func (p *Payload) fail(err error) {
	if p.err == nil {
		p.err = err
	}
}

// key checks that a value of type t may be written now and returns its
// BSON key: "v" for an individual mapping, the last endpoint level for an
// object field.
func (p *Payload) key(t ValueType) (string, bool) {
	if p.err != nil {
		return "", false
	}
	idx := p.mapping
	if p.iface.Aggregation == Object {
		if p.field < 0 {
			p.fail(fmt.Errorf("%w: object value without Field", ErrTypeMismatch))
			return "", false
		}
		idx = p.field
	} else if p.written > 0 {
		p.fail(fmt.Errorf("%w: two values for one individual mapping", ErrInvalidValue))
		return "", false
	}
	m := &p.iface.Mappings[idx]
	if m.Type != t {
		p.fail(fmt.Errorf("%w: %s given for %s%s of type %s", ErrTypeMismatch, t, p.iface.Name, m.Endpoint, m.Type))
		return "", false
	}
	p.written++
	if p.iface.Aggregation == Object {
		p.seen[idx] = true
		p.field = -1
		return m.LastLevel(), true
	}
	return "v", true
}

func (p *Payload) invalid(format string, args ...any) {
	p.fail(fmt.Errorf("%w: "+format, append([]any{ErrInvalidValue}, args...)...))
}

// Finish closes the document, appending "t" when ts is not zero, and
// returns the encoded bytes (valid until the next Reset) or the first
// error. It checks: a value was written (individual) or at least one field
// and every required one (object); ts present iff the mapping has
// explicit_timestamp (ErrMissingTimestamp, ErrUnexpectedTimestamp).
func (p *Payload) Finish(ts time.Time) ([]byte, error) {
	if p.err != nil {
		return nil, p.err
	}
	if p.iface.Aggregation == Object {
		if err := p.checkObject(); err != nil {
			return nil, err
		}
		p.buf, _ = bsoncore.AppendDocumentEnd(p.buf, p.obj)
	} else if p.written == 0 {
		return nil, fmt.Errorf("%w: no value written", ErrInvalidValue)
	}
	explicit := p.iface.Mappings[p.mapping].ExplicitTimestamp
	switch {
	case explicit && ts.IsZero():
		return nil, ErrMissingTimestamp
	case !explicit && !ts.IsZero():
		return nil, ErrUnexpectedTimestamp
	case explicit:
		if err := checkTime(ts); err != nil {
			return nil, fmt.Errorf("timestamp: %w", err)
		}
		p.buf = bsoncore.AppendDateTimeElement(p.buf, "t", ts.UnixMilli())
	}
	p.buf, _ = bsoncore.AppendDocumentEnd(p.buf, p.doc)
	return p.buf, nil
}

func (p *Payload) checkObject() error {
	if p.written == 0 {
		return fmt.Errorf("%w: object without fields", ErrIncompleteObject)
	}
	for i, seen := range p.seen {
		if !seen && p.iface.Mappings[i].Required {
			return fmt.Errorf("%w: required field %s missing", ErrIncompleteObject, p.iface.Mappings[i].LastLevel())
		}
	}
	return nil
}

// ok records err, if any, and reports whether there was none.
func (p *Payload) ok(err error) bool {
	if err != nil {
		p.fail(err)
		return false
	}
	return true
}

// The value checks of spec §4.7, shared by scalars and array elements.

func checkDouble(v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("%w: double %v is not finite", ErrInvalidValue, v)
	}
	return nil
}

func checkInteger(v int32) error {
	if v == math.MinInt32 {
		return fmt.Errorf("%w: integer %d: Astarte accepts ±2147483647", ErrInvalidValue, v)
	}
	return nil
}

func checkLong(v int64) error {
	if v == math.MinInt64 {
		return fmt.Errorf("%w: longinteger %d: Astarte accepts ±(2^63-1)", ErrInvalidValue, v)
	}
	return nil
}

func checkString(v string) error {
	switch {
	case len(v) > maxBytes:
		return fmt.Errorf("%w: string of %d bytes exceeds %d", ErrInvalidValue, len(v), maxBytes)
	case !utf8.ValidString(v):
		return fmt.Errorf("%w: string is not valid UTF-8", ErrInvalidValue)
	}
	return nil
}

// BSON datetimes are int64 milliseconds since the epoch: about ±292
// million years. Beyond, UnixMilli overflows and the server would read
// another date.
var (
	minTime = time.UnixMilli(math.MinInt64)
	maxTime = time.UnixMilli(math.MaxInt64)
)

func checkTime(v time.Time) error {
	if v.Before(minTime) || v.After(maxTime) {
		return fmt.Errorf("%w: time %s is outside what BSON milliseconds can carry (%s to %s)",
			ErrInvalidValue, v.UTC().Format(time.RFC3339), minTime.UTC().Format(time.RFC3339), maxTime.UTC().Format(time.RFC3339))
	}
	return nil
}

func checkBlob(v []byte) error {
	if len(v) > maxBytes {
		return fmt.Errorf("%w: binaryblob of %d bytes exceeds %d", ErrInvalidValue, len(v), maxBytes)
	}
	return nil
}

// Double writes a double value.
func (p *Payload) Double(v float64) *Payload {
	if k, ok := p.key(Double); ok && p.ok(checkDouble(v)) {
		p.buf = bsoncore.AppendDoubleElement(p.buf, k, v)
	}
	return p
}

// Integer writes an integer value.
func (p *Payload) Integer(v int32) *Payload {
	if k, ok := p.key(Integer); ok && p.ok(checkInteger(v)) {
		p.buf = bsoncore.AppendInt32Element(p.buf, k, v)
	}
	return p
}

// Boolean writes a boolean value.
func (p *Payload) Boolean(v bool) *Payload {
	if k, ok := p.key(Boolean); ok {
		p.buf = bsoncore.AppendBooleanElement(p.buf, k, v)
	}
	return p
}

// LongInteger writes a longinteger value.
func (p *Payload) LongInteger(v int64) *Payload {
	if k, ok := p.key(LongInteger); ok && p.ok(checkLong(v)) {
		p.buf = bsoncore.AppendInt64Element(p.buf, k, v)
	}
	return p
}

// String writes a string value.
func (p *Payload) String(v string) *Payload {
	if k, ok := p.key(String); ok && p.ok(checkString(v)) {
		p.buf = bsoncore.AppendStringElement(p.buf, k, v)
	}
	return p
}

// BinaryBlob writes a binaryblob value. Astarte reads a payload whose "v"
// is an empty binary and that has no "t" as an unset, so an empty blob is
// refused as an individual value except on a datastream mapping with
// explicit_timestamp (its payload always carries "t", and Astarte stores
// the empty value); in object aggregations it is a value like any other.
// A property is unset with Unset, never with an empty blob.
func (p *Payload) BinaryBlob(v []byte) *Payload {
	if k, ok := p.key(BinaryBlob); ok && p.ok(checkBlob(v)) {
		if len(v) == 0 && p.iface.Aggregation == Individual {
			switch {
			case p.iface.Type == Properties:
				p.invalid("an empty binaryblob would unset the property in Astarte; use Unset to unset it")
				return p
			case !p.iface.Mappings[p.mapping].ExplicitTimestamp:
				p.invalid("an empty binaryblob without a timestamp reads as an unset in Astarte (the mapping has no explicit_timestamp)")
				return p
			}
		}
		p.buf = bsoncore.AppendBinaryElement(p.buf, k, 0, v)
	}
	return p
}

// DateTime writes a datetime value (millisecond precision).
func (p *Payload) DateTime(v time.Time) *Payload {
	if k, ok := p.key(DateTime); ok && p.ok(checkTime(v)) {
		p.buf = bsoncore.AppendDateTimeElement(p.buf, k, v.UnixMilli())
	}
	return p
}

// array writes an array value of Astarte type t: the length limit, then
// each element checked (check may be nil) and appended as BSON type elem,
// under the keys "0", "1", … written without allocating.
func array[T any](p *Payload, t ValueType, v []T, elem bsoncore.Type, check func(T) error, appendValue func([]byte, T) []byte) *Payload {
	k, ok := p.key(t)
	if !ok {
		return p
	}
	if len(v) > maxLength {
		p.invalid("%s of %d elements exceeds %d", t, len(v), maxLength)
		return p
	}
	idx, buf := bsoncore.AppendArrayElementStart(p.buf, k)
	for i, x := range v {
		if check != nil && !p.ok(check(x)) {
			return p
		}
		buf = append(buf, byte(elem))
		buf = strconv.AppendInt(buf, int64(i), 10)
		buf = appendValue(append(buf, 0), x)
	}
	p.buf, _ = bsoncore.AppendArrayEnd(buf, idx)
	return p
}

func appendBlob(dst, b []byte) []byte           { return bsoncore.AppendBinary(dst, 0, b) }
func appendTime(dst []byte, t time.Time) []byte { return bsoncore.AppendDateTime(dst, t.UnixMilli()) }

// DoubleArray writes a doublearray value.
func (p *Payload) DoubleArray(v []float64) *Payload {
	return array(p, DoubleArray, v, bsoncore.TypeDouble, checkDouble, bsoncore.AppendDouble)
}

// IntegerArray writes an integerarray value.
func (p *Payload) IntegerArray(v []int32) *Payload {
	return array(p, IntegerArray, v, bsoncore.TypeInt32, checkInteger, bsoncore.AppendInt32)
}

// BooleanArray writes a booleanarray value.
func (p *Payload) BooleanArray(v []bool) *Payload {
	return array(p, BooleanArray, v, bsoncore.TypeBoolean, nil, bsoncore.AppendBoolean)
}

// LongIntegerArray writes a longintegerarray value.
func (p *Payload) LongIntegerArray(v []int64) *Payload {
	return array(p, LongIntegerArray, v, bsoncore.TypeInt64, checkLong, bsoncore.AppendInt64)
}

// StringArray writes a stringarray value.
func (p *Payload) StringArray(v []string) *Payload {
	return array(p, StringArray, v, bsoncore.TypeString, checkString, bsoncore.AppendString)
}

// BinaryBlobArray writes a binaryblobarray value.
func (p *Payload) BinaryBlobArray(v [][]byte) *Payload {
	return array(p, BinaryBlobArray, v, bsoncore.TypeBinary, checkBlob, appendBlob)
}

// DateTimeArray writes a datetimearray value.
func (p *Payload) DateTimeArray(v []time.Time) *Payload {
	return array(p, DateTimeArray, v, bsoncore.TypeDateTime, checkTime, appendTime)
}
