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

// Sentinels an *Error reported through Config.OnError matches with
// errors.Is, one per kind of problem.
var (
	// ErrServerData: the server sent data the device refuses (unknown
	// interface or path, wrong type, malformed payload). Nothing was
	// delivered; the connection stays up.
	ErrServerData = errors.New("invalid data from the server")
	// ErrHandler: an application handler returned an error.
	ErrHandler = errors.New("handler failed")
	// ErrDeadLetter: a stored message was moved to the dead letters because
	// the server kept dropping the connection right after it, or an entry
	// of the store (message or property value) failed its checksum (the
	// cause then wraps store.ErrDamaged).
	ErrDeadLetter = errors.New("stored message moved to the dead letters")
	// ErrConnection: a connection attempt failed (the device retries).
	ErrConnection = errors.New("connection attempt failed")
	// ErrStore: the store failed while settling queued data, or its file
	// was damaged and moved aside (the cause wraps *store.DamagedError).
	ErrStore = errors.New("store failure")
)

// Error is what Config.OnError receives: what went wrong (Kind, one of the
// sentinels above), on which interface and path when there is one, and the
// cause.
type Error struct {
	Kind      error
	Interface string // empty when not about one interface
	Path      string
	Err       error
	// Op is a short description for logs.
	Op string
}

// Error implements error: "<kind>: <interface><path>: <cause>".
func (e *Error) Error() string {
	msg := e.Kind.Error()
	if e.Interface != "" {
		msg += ": " + e.Interface + e.Path
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the kind and the cause, so that errors.Is matches both.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}
