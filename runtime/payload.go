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

// Double writes a double value.
func (p *Payload) Double(v float64) *Payload {
	if k, ok := p.key(Double); ok && p.checkDouble(v) {
		p.buf = bsoncore.AppendDoubleElement(p.buf, k, v)
	}
	return p
}

func (p *Payload) checkDouble(v float64) bool {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		p.invalid("double %v is not finite", v)
		return false
	}
	return true
}

// Integer writes an integer value.
func (p *Payload) Integer(v int32) *Payload {
	if k, ok := p.key(Integer); ok && p.checkInteger(v) {
		p.buf = bsoncore.AppendInt32Element(p.buf, k, v)
	}
	return p
}

func (p *Payload) checkInteger(v int32) bool {
	if v == math.MinInt32 {
		p.invalid("integer %d: Astarte accepts ±2147483647", v)
		return false
	}
	return true
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
	if k, ok := p.key(LongInteger); ok && p.checkLong(v) {
		p.buf = bsoncore.AppendInt64Element(p.buf, k, v)
	}
	return p
}

func (p *Payload) checkLong(v int64) bool {
	if v == math.MinInt64 {
		p.invalid("longinteger %d: Astarte accepts ±(2^63-1)", v)
		return false
	}
	return true
}

// String writes a string value.
func (p *Payload) String(v string) *Payload {
	if k, ok := p.key(String); ok && p.checkString(v) {
		p.buf = bsoncore.AppendStringElement(p.buf, k, v)
	}
	return p
}

func (p *Payload) checkString(v string) bool {
	switch {
	case len(v) > maxBytes:
		p.invalid("string of %d bytes exceeds %d", len(v), maxBytes)
	case !utf8.ValidString(v):
		p.invalid("string is not valid UTF-8")
	default:
		return true
	}
	return false
}

// BinaryBlob writes a binaryblob value. An empty blob is refused as an
// individual value: Astarte reads an empty binary "v" as an unset.
func (p *Payload) BinaryBlob(v []byte) *Payload {
	individual := p.iface != nil && p.iface.Aggregation == Individual
	if k, ok := p.key(BinaryBlob); ok && p.checkBlob(v) {
		if individual && len(v) == 0 {
			p.invalid("empty binaryblob would read as an unset")
			return p
		}
		p.buf = bsoncore.AppendBinaryElement(p.buf, k, 0, v)
	}
	return p
}

func (p *Payload) checkBlob(v []byte) bool {
	if len(v) > maxBytes {
		p.invalid("binaryblob of %d bytes exceeds %d", len(v), maxBytes)
		return false
	}
	return true
}

// DateTime writes a datetime value (millisecond precision).
func (p *Payload) DateTime(v time.Time) *Payload {
	if k, ok := p.key(DateTime); ok {
		p.buf = bsoncore.AppendDateTimeElement(p.buf, k, v.UnixMilli())
	}
	return p
}

// arrayStart opens an array element after checking its length.
func (p *Payload) arrayStart(t ValueType, n int) (int32, bool) {
	k, ok := p.key(t)
	if !ok {
		return 0, false
	}
	if n > maxLength {
		p.invalid("%s of %d elements exceeds %d", t, n, maxLength)
		return 0, false
	}
	var idx int32
	idx, p.buf = bsoncore.AppendArrayElementStart(p.buf, k)
	return idx, true
}

// elem appends the header of array element i of BSON type t (keys "0",
// "1", … written without allocating).
func (p *Payload) elem(t bsoncore.Type, i int) {
	p.buf = append(p.buf, byte(t))
	p.buf = strconv.AppendInt(p.buf, int64(i), 10)
	p.buf = append(p.buf, 0)
}

func (p *Payload) arrayEnd(idx int32) {
	if p.err == nil {
		p.buf, _ = bsoncore.AppendArrayEnd(p.buf, idx)
	}
}

// DoubleArray writes a doublearray value.
func (p *Payload) DoubleArray(v []float64) *Payload {
	if idx, ok := p.arrayStart(DoubleArray, len(v)); ok {
		for i, x := range v {
			if !p.checkDouble(x) {
				return p
			}
			p.elem(bsoncore.TypeDouble, i)
			p.buf = bsoncore.AppendDouble(p.buf, x)
		}
		p.arrayEnd(idx)
	}
	return p
}

// IntegerArray writes an integerarray value.
func (p *Payload) IntegerArray(v []int32) *Payload {
	if idx, ok := p.arrayStart(IntegerArray, len(v)); ok {
		for i, x := range v {
			if !p.checkInteger(x) {
				return p
			}
			p.elem(bsoncore.TypeInt32, i)
			p.buf = bsoncore.AppendInt32(p.buf, x)
		}
		p.arrayEnd(idx)
	}
	return p
}

// BooleanArray writes a booleanarray value.
func (p *Payload) BooleanArray(v []bool) *Payload {
	if idx, ok := p.arrayStart(BooleanArray, len(v)); ok {
		for i, x := range v {
			p.elem(bsoncore.TypeBoolean, i)
			p.buf = bsoncore.AppendBoolean(p.buf, x)
		}
		p.arrayEnd(idx)
	}
	return p
}

// LongIntegerArray writes a longintegerarray value.
func (p *Payload) LongIntegerArray(v []int64) *Payload {
	if idx, ok := p.arrayStart(LongIntegerArray, len(v)); ok {
		for i, x := range v {
			if !p.checkLong(x) {
				return p
			}
			p.elem(bsoncore.TypeInt64, i)
			p.buf = bsoncore.AppendInt64(p.buf, x)
		}
		p.arrayEnd(idx)
	}
	return p
}

// StringArray writes a stringarray value.
func (p *Payload) StringArray(v []string) *Payload {
	if idx, ok := p.arrayStart(StringArray, len(v)); ok {
		for i, x := range v {
			if !p.checkString(x) {
				return p
			}
			p.elem(bsoncore.TypeString, i)
			p.buf = bsoncore.AppendString(p.buf, x)
		}
		p.arrayEnd(idx)
	}
	return p
}

// BinaryBlobArray writes a binaryblobarray value.
func (p *Payload) BinaryBlobArray(v [][]byte) *Payload {
	if idx, ok := p.arrayStart(BinaryBlobArray, len(v)); ok {
		for i, x := range v {
			if !p.checkBlob(x) {
				return p
			}
			p.elem(bsoncore.TypeBinary, i)
			p.buf = bsoncore.AppendBinary(p.buf, 0, x)
		}
		p.arrayEnd(idx)
	}
	return p
}

// DateTimeArray writes a datetimearray value.
func (p *Payload) DateTimeArray(v []time.Time) *Payload {
	if idx, ok := p.arrayStart(DateTimeArray, len(v)); ok {
		for i, x := range v {
			p.elem(bsoncore.TypeDateTime, i)
			p.buf = bsoncore.AppendDateTime(p.buf, x.UnixMilli())
		}
		p.arrayEnd(idx)
	}
	return p
}
