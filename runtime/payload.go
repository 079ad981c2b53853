package runtime

// SKELETON: the wire work replaces the bodies; the exported API is the contract.

import "time"

// MaxPacketSize is the largest MQTT packet remaining length Astarte's broker
// accepts from a device (spec §5.1).
const MaxPacketSize = 65535

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
}

// Reset prepares p for a new message on mapping index mapping of iface. For
// object aggregations mapping is ignored; select fields with Field.
func (p *Payload) Reset(iface *Interface, mapping int) {
	p.iface, p.mapping, p.buf, p.err = iface, mapping, p.buf[:0], nil
}

// Field selects the object field (by mapping index) that the next value
// method writes. Only for object aggregations.
func (p *Payload) Field(mapping int) *Payload { return p }

// Err returns the first error recorded so far.
func (p *Payload) Err() error { return p.err }

// Finish closes the document, appending "t" when ts is not zero, and
// returns the encoded bytes (valid until the next Reset) or the first
// error. It checks: a value was written (individual) or at least one field
// and every required one (object); ts present iff the mapping has
// explicit_timestamp (ErrMissingTimestamp, ErrUnexpectedTimestamp).
func (p *Payload) Finish(ts time.Time) ([]byte, error) { return p.buf, p.err }

// Double writes a double value.
func (p *Payload) Double(v float64) *Payload { return p }

// Integer writes an integer value.
func (p *Payload) Integer(v int32) *Payload { return p }

// Boolean writes a boolean value.
func (p *Payload) Boolean(v bool) *Payload { return p }

// LongInteger writes a longinteger value.
func (p *Payload) LongInteger(v int64) *Payload { return p }

// String writes a string value.
func (p *Payload) String(v string) *Payload { return p }

// BinaryBlob writes a binaryblob value.
func (p *Payload) BinaryBlob(v []byte) *Payload { return p }

// DateTime writes a datetime value (millisecond precision).
func (p *Payload) DateTime(v time.Time) *Payload { return p }

// DoubleArray writes a doublearray value.
func (p *Payload) DoubleArray(v []float64) *Payload { return p }

// IntegerArray writes an integerarray value.
func (p *Payload) IntegerArray(v []int32) *Payload { return p }

// BooleanArray writes a booleanarray value.
func (p *Payload) BooleanArray(v []bool) *Payload { return p }

// LongIntegerArray writes a longintegerarray value.
func (p *Payload) LongIntegerArray(v []int64) *Payload { return p }

// StringArray writes a stringarray value.
func (p *Payload) StringArray(v []string) *Payload { return p }

// BinaryBlobArray writes a binaryblobarray value.
func (p *Payload) BinaryBlobArray(v [][]byte) *Payload { return p }

// DateTimeArray writes a datetimearray value.
func (p *Payload) DateTimeArray(v []time.Time) *Payload { return p }

// Any writes a dynamically typed value: the Go type of the mapping's
// Astarte type (float64, int32, bool, int64, string, []byte, time.Time and
// slices of those); int, int8…, uint… and float32 are accepted when the
// value fits. For an object aggregation, v is a map[string]any keyed by the
// endpoints' last levels, and Any writes every field.
func (p *Payload) Any(v any) *Payload { return p }
