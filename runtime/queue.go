package runtime

import (
	"context"
	"time"
)

// volatileMsg is an entry of the volatile-retention queue.
type volatileMsg struct {
	topic    string
	qos      byte
	payload  []byte
	deadline time.Time
}

// expiredAt reports whether a message with deadline (zero: none) has
// expired at now.
func expiredAt(deadline, now time.Time) bool { return !deadline.IsZero() && !now.Before(deadline) }

// ring is the bounded volatile queue: when full, the oldest entry is
// dropped and counted (spec §3.14). Its storage grows by need, up to
// limit entries, so that an idle device holds none.
type ring struct {
	items   []volatileMsg
	head    int
	n       int
	limit   int
	dropped uint64
}

// push appends v, dropping the oldest entry when full; it reports whether
// it dropped one.
func (r *ring) push(v volatileMsg) bool {
	if r.n == len(r.items) && r.n < r.limit {
		r.grow()
	}
	dropped := false
	if r.n == len(r.items) {
		r.pop()
		r.dropped++
		dropped = true
	}
	r.items[(r.head+r.n)%len(r.items)] = v
	r.n++
	return dropped
}

// full reports whether a push would drop the oldest entry.
func (r *ring) full() bool { return r.n == r.limit }

// grow doubles the storage (at least 16 entries, at most limit), keeping
// the order.
func (r *ring) grow() {
	items := make([]volatileMsg, min(max(2*len(r.items), 16), r.limit))
	for i := range r.n {
		items[i] = r.items[(r.head+i)%len(r.items)]
	}
	r.items, r.head = items, 0
}

// filter keeps the entries for which keep says true, in order.
func (r *ring) filter(keep func(volatileMsg) bool) {
	n := r.n
	for range n {
		v, _ := r.pop()
		if keep(v) {
			r.items[(r.head+r.n)%len(r.items)] = v
			r.n++
		}
	}
}

// pop removes the oldest entry.
func (r *ring) pop() (volatileMsg, bool) {
	if r.n == 0 {
		return volatileMsg{}, false
	}
	v := r.items[r.head]
	r.items[r.head] = volatileMsg{}
	r.head = (r.head + 1) % len(r.items)
	r.n--
	return v, true
}

// Flush waits until every queued message (stored, volatile, property
// changes, discard messages handed over) has been acknowledged by the
// broker, or ctx ends. It is woken by acknowledgements, not by polling.
// While the device is offline it waits for the reconnection.
func (d *Device) Flush(ctx context.Context) error {
	for {
		d.mu.Lock()
		if d.state == Closed {
			d.mu.Unlock()
			return ErrClosed
		}
		d.flushers.Add(1)
		waiting := d.volatile.n + len(d.dirty) + int(d.busy.Load())
		progress := d.progress
		d.mu.Unlock()
		stored, err := d.store.Len(ctx)
		if err != nil {
			return d.storeErr(err)
		}
		idle := waiting+stored+d.session.inFlight() == 0
		if !idle {
			select {
			case <-progress:
			case <-ctx.Done():
			}
		}
		d.flushers.Add(-1)
		if idle {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// VolatileDropped returns how many volatile messages were dropped because
// the queue was full.
func (d *Device) VolatileDropped() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.volatile.dropped
}
