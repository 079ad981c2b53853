package runtime

// SKELETON: the wire work replaces the bodies; the exported API is the contract.

import (
	"time"

	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// Value is one Astarte value decoded from the wire or the store, already
// checked against its mapping's type. Read it with the accessor of its type;
// the wrong accessor returns ErrTypeMismatch.
type Value struct {
	typ ValueType
	raw bsoncore.Value
}

// Type returns the Astarte type of v.
func (v Value) Type() ValueType { return v.typ }

// Double returns a double value.
func (v Value) Double() (float64, error) { return 0, ErrTypeMismatch }

// Integer returns an integer value.
func (v Value) Integer() (int32, error) { return 0, ErrTypeMismatch }

// Boolean returns a boolean value.
func (v Value) Boolean() (bool, error) { return false, ErrTypeMismatch }

// LongInteger returns a longinteger value (int32 on the wire is accepted).
func (v Value) LongInteger() (int64, error) { return 0, ErrTypeMismatch }

// String returns a string value.
func (v Value) String() (string, error) { return "", ErrTypeMismatch }

// BinaryBlob returns a binaryblob value.
func (v Value) BinaryBlob() ([]byte, error) { return nil, ErrTypeMismatch }

// DateTime returns a datetime value in UTC.
func (v Value) DateTime() (time.Time, error) { return time.Time{}, ErrTypeMismatch }

// DoubleArray returns a doublearray value.
func (v Value) DoubleArray() ([]float64, error) { return nil, ErrTypeMismatch }

// IntegerArray returns an integerarray value.
func (v Value) IntegerArray() ([]int32, error) { return nil, ErrTypeMismatch }

// BooleanArray returns a booleanarray value.
func (v Value) BooleanArray() ([]bool, error) { return nil, ErrTypeMismatch }

// LongIntegerArray returns a longintegerarray value.
func (v Value) LongIntegerArray() ([]int64, error) { return nil, ErrTypeMismatch }

// StringArray returns a stringarray value.
func (v Value) StringArray() ([]string, error) { return nil, ErrTypeMismatch }

// BinaryBlobArray returns a binaryblobarray value.
func (v Value) BinaryBlobArray() ([][]byte, error) { return nil, ErrTypeMismatch }

// DateTimeArray returns a datetimearray value.
func (v Value) DateTimeArray() ([]time.Time, error) { return nil, ErrTypeMismatch }

// Any returns the value as the Go type of its Astarte type (see Payload.Any).
func (v Value) Any() any { return v.raw.Data }

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

// DecodePayload decodes a data payload for the mapping m resolved from its
// path (Interface.Match) and checks it against the mapping types (spec
// §3.5, §3.12): exact BSON element types, int32 accepted for longinteger,
// unknown keys ignored, object keys that are not last levels rejected,
// empty payload = unset (properties only), limits of §4.7. It never panics
// on any input; errors wrap ErrInvalidPayload, ErrUnsetNotAllowed or
// ErrInvalidValue. Decoded values reference payload (copy it to keep them).
func DecodePayload(iface *Interface, m Match, payload []byte) (Decoded, error) {
	return Decoded{}, ErrInvalidPayload
}
