// Package store keeps what a device must not forget: property values (its
// own and the server's), the stored-retention message queue, and small
// metadata such as the last introspection sent. Two implementations share the
// Store interface: Memory, and Bolt (a single bbolt file, the default when
// a store directory is configured).
//
// The package knows nothing of Astarte types: values and payloads are opaque
// bytes, interfaces are names and majors.
package store

import (
	"context"
	"errors"
	"time"
)

// ErrFull is returned by Enqueue when the queue holds its capacity.
var ErrFull = errors.New("store: queue full")

// ErrClosed is returned by every method after Close.
var ErrClosed = errors.New("store: closed")

// DefaultCapacity is the default bound of the message queue.
const DefaultCapacity = 1_000_000

// Option configures a store.
type Option func(*options)

type options struct {
	capacity     int
	syncInterval time.Duration
	onCorrupt    func(DeadLetter)
}

func newOptions(opts []Option) options {
	o := options{capacity: DefaultCapacity}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithCapacity bounds the message queue; Enqueue beyond it fails with
// ErrFull. The policy is to refuse new data rather than drop queued data:
// the caller learns of the loss, the store never hides one.
func WithCapacity(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.capacity = n
		}
	}
}

// WithCorruptionHandler sets a function told of every entry (queue
// message or property value) that failed its checksum and was moved to the
// dead letters, at open or later. It must not block or call the store.
func WithCorruptionHandler(f func(DeadLetter)) Option {
	return func(o *options) { o.onCorrupt = f }
}

// WithSyncInterval trades durability against power loss for throughput
// (Bolt only): commits are written to the file at once but flushed to the
// disk (fsync) at most every d, instead of before each Enqueue returns. A
// crash of the process loses nothing, since the operating system holds
// what was written; a power loss or kernel crash loses up to d of
// writes and may leave the file damaged (bbolt writes its pages without
// ordering guarantees then). Zero or less keeps one fsync per commit.
func WithSyncInterval(d time.Duration) Option {
	return func(o *options) { o.syncInterval = max(d, 0) }
}

// PropertyKey identifies a property value.
type PropertyKey struct {
	Interface string
	Major     int
	Path      string
}

// Property is a stored property value.
type Property struct {
	PropertyKey
	// Value is the BSON payload as published or received. Nil marks a
	// pending unset (a tombstone) that has not been sent yet.
	Value []byte
	// Unsent marks a device-owned change not yet acknowledged by the broker.
	Unsent bool
}

// Message is an entry of the stored-retention queue.
type Message struct {
	// ID is assigned by Enqueue; IDs increase in enqueue order.
	ID        uint64
	Interface string
	Major     int
	Path      string
	QoS       byte
	Payload   []byte
	// Deadline is when the message expires; zero means never.
	Deadline time.Time
}

// DeadLetter is a queued message moved aside because the server kept
// refusing it (or because it could not be read back): it is kept for the
// application to inspect and delete, and never sent again.
type DeadLetter struct {
	Message
	// Reason says why the message was moved aside.
	Reason string
	// At is when it was moved.
	At time.Time
}

// Store is safe for concurrent use.
type Store interface {
	// Property returns the stored property at k.
	Property(ctx context.Context, k PropertyKey) (Property, bool, error)
	// Properties returns every property of the interface (any major), in
	// path order.
	Properties(ctx context.Context, iface string) ([]Property, error)
	// PutProperty creates or replaces a property.
	PutProperty(ctx context.Context, p Property) error
	// DeleteProperty removes a property; removing a missing one is not an
	// error.
	DeleteProperty(ctx context.Context, k PropertyKey) error

	// Enqueue durably appends messages (their IDs are set on return). When
	// it returns nil the messages survive a crash. Concurrent calls share
	// disk flushes (group commit). It fails with ErrFull, accepting none,
	// when the queue would exceed its capacity.
	Enqueue(ctx context.Context, msgs ...*Message) error
	// Pending returns up to limit queued messages with ID > after, in ID
	// order.
	Pending(ctx context.Context, after uint64, limit int) ([]Message, error)
	// Ack removes acknowledged messages; missing IDs are ignored. It need
	// not flush to disk before returning: a crash may resend an acked
	// message, never lose an unacked one.
	Ack(ctx context.Context, ids ...uint64) error
	// Len returns the number of queued messages.
	Len(ctx context.Context) (int, error)

	// Prune removes the properties and queued messages of every interface
	// that keep does not list with that major: interfaces removed from the
	// device, or whose major changed. It returns how many it removed.
	Prune(ctx context.Context, keep map[string]int) (props, msgs int, err error)

	// MoveToDeadLetters removes a queued message from the queue and keeps it
	// as a dead letter with reason, durably. It reports whether id was
	// queued.
	MoveToDeadLetters(ctx context.Context, id uint64, reason string) (bool, error)
	// DeadLetters returns the dead letters in ID order.
	DeadLetters(ctx context.Context) ([]DeadLetter, error)
	// DeleteDeadLetter removes a dead letter; a missing one is not an error.
	DeleteDeadLetter(ctx context.Context, id uint64) error

	// Meta and PutMeta keep small named values (e.g. the last introspection).
	Meta(ctx context.Context, key string) ([]byte, bool, error)
	PutMeta(ctx context.Context, key string, value []byte) error

	// Close flushes and releases the store.
	Close() error
}
