package runtime

import (
	"time"

	"github.com/astarte-gen/astarte-gen/internal/wire"
	"github.com/astarte-gen/astarte-gen/runtime/model"
)

// Value is one Astarte value received from the server or read from the
// store, already checked against its mapping's type. Read it with the
// accessor of its type; the wrong accessor returns ErrTypeMismatch.
type Value struct{ w wire.Value }

// Type returns the Astarte type of v.
func (v Value) Type() model.ValueType { return v.w.Type() }

// Any returns the value as the Go type of its Astarte type (float64, int32,
// bool, int64, string, []byte, time.Time, or a slice of those).
func (v Value) Any() any { return v.w.Any() }

// Double returns a double value.
func (v Value) Double() (float64, error) { return v.w.Double() }

// Integer returns an integer value.
func (v Value) Integer() (int32, error) { return v.w.Integer() }

// Boolean returns a boolean value.
func (v Value) Boolean() (bool, error) { return v.w.Boolean() }

// LongInteger returns a longinteger value.
func (v Value) LongInteger() (int64, error) { return v.w.LongInteger() }

// String returns a string value.
func (v Value) String() (string, error) { return v.w.String() }

// BinaryBlob returns a binaryblob value.
func (v Value) BinaryBlob() ([]byte, error) { return v.w.BinaryBlob() }

// DateTime returns a datetime value in UTC.
func (v Value) DateTime() (time.Time, error) { return v.w.DateTime() }

// DoubleArray returns a doublearray value.
func (v Value) DoubleArray() ([]float64, error) { return v.w.DoubleArray() }

// IntegerArray returns an integerarray value.
func (v Value) IntegerArray() ([]int32, error) { return v.w.IntegerArray() }

// BooleanArray returns a booleanarray value.
func (v Value) BooleanArray() ([]bool, error) { return v.w.BooleanArray() }

// LongIntegerArray returns a longintegerarray value.
func (v Value) LongIntegerArray() ([]int64, error) { return v.w.LongIntegerArray() }

// StringArray returns a stringarray value.
func (v Value) StringArray() ([]string, error) { return v.w.StringArray() }

// BinaryBlobArray returns a binaryblobarray value.
func (v Value) BinaryBlobArray() ([][]byte, error) { return v.w.BinaryBlobArray() }

// DateTimeArray returns a datetimearray value.
func (v Value) DateTimeArray() ([]time.Time, error) { return v.w.DateTimeArray() }

// Field is one field of a received object value.
type Field struct {
	// Mapping is the index of the field's mapping in the interface.
	Mapping int
	Value   Value
}

// decodedValue is a decoded payload as Go values: the value of an
// individual mapping, or a map keyed by last level for an object.
func decodedValue(iface *model.Interface, dec wire.Decoded) any {
	if iface.Aggregation != model.Object {
		return dec.Value.Any()
	}
	obj := make(map[string]any, len(dec.Fields))
	for _, f := range dec.Fields {
		obj[iface.Mappings[f.Mapping].LastLevel()] = f.Value.Any()
	}
	return obj
}
