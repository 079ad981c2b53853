package runtime

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/astarte-gen/astarte-gen/runtime/store"
)

// QueueFullPolicy says what a stored Send does when the stored queue is at
// Config.StoredCapacity and none of it has expired.
type QueueFullPolicy int

const (
	// RefuseWhenFull fails the Send with ErrQueueFull (the default): what
	// is queued is kept, the newest data is the caller's to handle.
	RefuseWhenFull QueueFullPolicy = iota
	// DropOldestWhenFull drops the oldest queued message that is not in
	// flight to make room, and counts it: for devices that prefer fresh
	// data after a long time offline.
	DropOldestWhenFull
)

// QueueStats counts what the device's queues hold and what they dropped
// since New.
type QueueStats struct {
	// Stored and Volatile are the messages queued now.
	Stored, Volatile int
	// StoredExpired and VolatileExpired were dropped because their
	// mapping's expiry passed before they could be sent.
	StoredExpired, VolatileExpired uint64
	// StoredEvicted (DropOldestWhenFull) and VolatileEvicted (always, the
	// volatile queue drops its oldest when full) made room for newer data.
	StoredEvicted, VolatileEvicted uint64
}

// queueCounters are the device's drop counters.
type queueCounters struct {
	storedExpired, storedEvicted, volatileExpired atomic.Uint64
	// evictMu serialises the full-queue handling. A scan for expired
	// messages is needed when none was made yet, when the earliest
	// deadline it found (nextExpiry) has passed, or when a message with a
	// deadline was queued since (newDeadline).
	evictMu     sync.Mutex
	scanned     bool
	nextExpiry  time.Time
	newDeadline atomic.Bool
}

// QueueStats returns the queue counters. After Close it returns ErrClosed.
func (d *Device) QueueStats(ctx context.Context) (QueueStats, error) {
	if d.isClosed() {
		return QueueStats{}, ErrClosed
	}
	stored, err := d.store.Len(ctx)
	if err != nil {
		return QueueStats{}, d.storeErr(err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return QueueStats{
		Stored: stored, Volatile: d.volatile.n,
		StoredExpired: d.counters.storedExpired.Load(), StoredEvicted: d.counters.storedEvicted.Load(),
		VolatileExpired: d.counters.volatileExpired.Load(), VolatileEvicted: d.volatile.dropped,
	}, nil
}

// enqueueStored enqueues msg; when the queue is full it first evicts the
// messages that expired, then applies Config.StoredQueueFull.
func (d *Device) enqueueStored(ctx context.Context, msg *store.Message) error {
	if !msg.Deadline.IsZero() {
		d.counters.newDeadline.Store(true)
	}
	err := d.store.Enqueue(ctx, msg)
	if !errors.Is(err, store.ErrFull) {
		return err
	}
	c := &d.counters
	c.evictMu.Lock()
	defer c.evictMu.Unlock()
	for {
		freed, err := d.makeRoom(ctx)
		if err != nil {
			return err
		}
		if !freed {
			return store.ErrFull
		}
		if err := d.store.Enqueue(ctx, msg); !errors.Is(err, store.ErrFull) {
			return err
		}
	}
}

// makeRoom evicts what the queue may lose: expired messages (scanning
// only once the earliest deadline seen has passed), else, with
// DropOldestWhenFull, the oldest message not in flight. It reports whether
// it freed anything.
func (d *Device) makeRoom(ctx context.Context) (bool, error) {
	c := &d.counters
	now := time.Now()
	if !c.scanned || c.newDeadline.Swap(false) || !c.nextExpiry.IsZero() && !now.Before(c.nextExpiry) {
		n, next, err := d.evictExpired(ctx, now)
		if err != nil {
			return false, err
		}
		c.scanned, c.nextExpiry = true, next
		if n > 0 {
			c.storedExpired.Add(uint64(n))
			d.log.Info("stored queue full: dropped expired messages", "messages", n)
			return true, nil
		}
	}
	if d.cfg.StoredQueueFull != DropOldestWhenFull {
		return false, nil
	}
	return d.evictOldest(ctx)
}

// evictExpired removes every queued message whose deadline passed (not
// those in flight) and returns how many, and the earliest deadline still
// ahead.
func (d *Device) evictExpired(ctx context.Context, now time.Time) (int, time.Time, error) {
	var expired []uint64
	var next time.Time
	err := d.eachQueued(ctx, func(m store.Message) bool {
		switch {
		case expiredAt(m.Deadline, now):
			expired = append(expired, m.ID)
		case m.Deadline.IsZero():
		case next.IsZero() || m.Deadline.Before(next):
			next = m.Deadline
		}
		return true
	})
	if err == nil && len(expired) > 0 {
		err = d.store.Ack(ctx, expired...)
	}
	return len(expired), next, err
}

// evictOldest removes the oldest queued message not in flight.
func (d *Device) evictOldest(ctx context.Context) (bool, error) {
	var oldest *store.Message
	err := d.eachQueued(ctx, func(m store.Message) bool {
		oldest = &m
		return false
	})
	if err != nil || oldest == nil {
		return false, err
	}
	if err := d.store.Ack(ctx, oldest.ID); err != nil {
		return false, err
	}
	d.counters.storedEvicted.Add(1)
	d.log.Warn("stored queue full: dropped the oldest message", "interface", oldest.Interface, "path", oldest.Path,
		"dropped_total", d.counters.storedEvicted.Load())
	return true, nil
}

// eachQueued calls fn with the stored messages not in flight, oldest
// first, until fn returns false.
func (d *Device) eachQueued(ctx context.Context, fn func(store.Message) bool) error {
	for after := uint64(0); ; {
		msgs, err := d.store.Pending(ctx, after, drainBatch)
		if err != nil || len(msgs) == 0 {
			return err
		}
		for _, m := range msgs {
			after = m.ID
			if !d.session.holds(m.ID) && !fn(m) {
				return nil
			}
		}
	}
}
