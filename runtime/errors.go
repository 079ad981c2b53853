package runtime

import "errors"

// Sentinel errors of sending and receiving. Returned errors wrap them with
// the details (interface, path, value); test with errors.Is.
var (
	// ErrUnknownInterface: the interface is not among the device's.
	ErrUnknownInterface = errors.New("interface not in the device's introspection")
	// ErrWrongOwnership: sending on a server-owned interface, or handling a
	// device-owned one.
	ErrWrongOwnership = errors.New("wrong interface ownership")
	// ErrTypeMismatch: a value of one Astarte type given for a mapping of
	// another.
	ErrTypeMismatch = errors.New("value type does not match mapping")
	// ErrInvalidValue: a value outside its type's limits (NaN, −2³¹ for an
	// integer, a string over 65,536 bytes, invalid UTF-8, an array over 1024
	// elements, an empty top-level binaryblob).
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
	// ErrPacketTooLarge: the MQTT packet would exceed the 65,535 bytes
	// Astarte's broker accepts.
	ErrPacketTooLarge = errors.New("message exceeds the MQTT packet limit")
	// ErrInvalidPayload: a payload from the server that is not valid BSON of
	// the mapping's type.
	ErrInvalidPayload = errors.New("invalid payload")
	// ErrNotConnected: a discard-retention message could not be delivered
	// because the device is offline.
	ErrNotConnected = errors.New("not connected")
	// ErrQueueFull: the stored-retention queue is at capacity; the message
	// was not accepted (nothing queued is ever dropped to make room).
	ErrQueueFull = errors.New("retention queue full")
	// ErrClosed: the device was closed.
	ErrClosed = errors.New("device closed")
)
