package runtime

import (
	"context"
	"time"

	"github.com/astarte-gen/astarte-gen/runtime/store"
)

// backlog tracks, per connection, whether queued data has been drained so
// that new sends may publish directly without overtaking older ones.
type backlog struct {
	volatileLive bool
	storedLive   bool
	// drainedUpTo is the highest stored ID the drain published; a send
	// publishes directly only a newer one.
	drainedUpTo uint64
}

// volatileMsg is an entry of the volatile-retention queue.
type volatileMsg struct {
	topic    string
	qos      byte
	payload  []byte
	deadline time.Time
}

// ring is the bounded volatile queue: when full, the oldest entry is
// dropped and counted (spec §3.14).
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
	if r.items == nil {
		r.items = make([]volatileMsg, r.limit)
	}
	if r.n == r.limit {
		r.items[r.head] = volatileMsg{}
		r.head = (r.head + 1) % r.limit
		r.n--
		r.dropped++
		r.items[(r.head+r.n)%r.limit] = v
		r.n++
		return true
	}
	r.items[(r.head+r.n)%r.limit] = v
	r.n++
	return false
}

// pop removes the oldest entry.
func (r *ring) pop() (volatileMsg, bool) {
	if r.n == 0 {
		return volatileMsg{}, false
	}
	v := r.items[r.head]
	r.items[r.head] = volatileMsg{}
	r.head = (r.head + 1) % r.limit
	r.n--
	return v, true
}

// drainVolatile resends the volatile queue, dropping expired entries; when
// it is empty, new volatile sends publish directly.
func (d *Device) drainVolatile(ctx context.Context, c *conn) error {
	for {
		d.mu.Lock()
		if d.conn != c {
			d.mu.Unlock()
			return errConnLost
		}
		v, ok := d.volatile.pop()
		if !ok {
			d.backlog.volatileLive = true
			d.mu.Unlock()
			return nil
		}
		d.mu.Unlock()
		if !v.deadline.IsZero() && time.Now().After(v.deadline) {
			continue
		}
		err := d.publishTracked(ctx, c, v.topic, v.qos, v.payload, func(err error) {
			if err != nil {
				d.requeueVolatile(v)
			}
		})
		if err != nil {
			d.requeueVolatile(v)
			return err
		}
	}
}

// drainBatch is how many stored messages a drain reads at once.
const drainBatch = 256

// drainStored resends the stored queue in ID order, dropping expired
// entries. When the queue holds nothing newer than what it published, it
// switches new stored sends to direct publishing; the check is repeated
// under the lock so that no message enqueued meanwhile is left behind.
func (d *Device) drainStored(ctx context.Context, c *conn) error {
	var after uint64
	for {
		msgs, err := d.store.Pending(ctx, after, drainBatch)
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			d.mu.Lock()
			if d.conn != c {
				d.mu.Unlock()
				return errConnLost
			}
			more, err := d.store.Pending(ctx, after, 1)
			if err == nil && len(more) == 0 {
				d.backlog.storedLive = true
				d.backlog.drainedUpTo = after
			}
			d.mu.Unlock()
			if err != nil {
				return err
			}
			if len(more) == 0 {
				return nil
			}
			continue
		}
		for _, m := range msgs {
			after = m.ID
			if err := d.resendStored(ctx, c, m); err != nil {
				return err
			}
		}
	}
}

func (d *Device) resendStored(ctx context.Context, c *conn, m store.Message) error {
	if !m.Deadline.IsZero() && time.Now().After(m.Deadline) {
		d.log.Debug("dropping expired stored message", "interface", m.Interface, "path", m.Path)
		return d.store.Ack(ctx, m.ID)
	}
	if c.isLost() {
		return errConnLost
	}
	return d.publishStored(ctx, c, m)
}

// Flush waits until every queued message (stored, volatile, properties
// being sent) has been acknowledged by the broker, or ctx ends.
func (d *Device) Flush(ctx context.Context) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		n, err := d.store.Len(ctx)
		if err != nil {
			return err
		}
		d.mu.Lock()
		n += d.volatile.n
		d.mu.Unlock()
		if n == 0 && d.inFlight() == 0 {
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		case <-d.closing:
			return ErrClosed
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
