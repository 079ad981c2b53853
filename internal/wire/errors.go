// Package wire encodes and decodes the BSON payloads of Astarte data
// messages and the purge list of control/consumer/properties (spec §3.5,
// §3.8). It is shared by the device runtime and the fake Astarte of
// runtime/astartetest and is not part of the public API: applications send
// through generated code or runtime.Device.
package wire

import "errors"

// Sentinel errors of encoding and decoding; package runtime exports the
// same values.
var (
	// ErrTypeMismatch: a value of one Astarte type given for a mapping of
	// another.
	ErrTypeMismatch = errors.New("value type does not match mapping")
	// ErrInvalidValue: a value outside its type's limits (NaN, −2³¹ for an
	// integer, a string over 65,536 bytes, invalid UTF-8, an array over 1024
	// elements, an empty top-level binaryblob, a datetime or timestamp beyond
	// the ±292 million years BSON milliseconds can carry).
	ErrInvalidValue = errors.New("invalid value")
	// ErrMissingTimestamp: the mapping has explicit_timestamp but no
	// timestamp was given.
	ErrMissingTimestamp = errors.New("explicit timestamp required")
	// ErrUnexpectedTimestamp: a timestamp was given for a mapping without
	// explicit_timestamp (the server would silently ignore it).
	ErrUnexpectedTimestamp = errors.New("mapping does not take an explicit timestamp")
	// ErrIncompleteObject: an object value without fields, or without a
	// field its mapping marks required.
	ErrIncompleteObject = errors.New("incomplete object value")
	// ErrUnsetNotAllowed: unsetting a property whose mapping lacks
	// allow_unset, or anything on a datastream.
	ErrUnsetNotAllowed = errors.New("unset not allowed")
	// ErrInvalidPayload: a payload from the server that is not valid BSON of
	// the mapping's type.
	ErrInvalidPayload = errors.New("invalid payload")
)
