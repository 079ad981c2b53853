package runtime

import (
	"context"
	"fmt"
	"sync"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// writeQueueCap bounds the publishes waiting for a connection's writer.
const writeQueueCap = 8

// writeReq is one publish for a connection's writer. result, when set,
// receives the paho token (nil when the packet was not published).
type writeReq struct {
	out    outbound
	result chan<- mqtt.Token
}

// writeQueue holds the publishes the owner loop hands a connection's
// writer, in order. Its storage grows by need and is let go when it
// empties, so that an idle connection holds none.
type writeQueue struct {
	mu     sync.Mutex
	items  []writeReq
	head   int
	closed bool
	// room is signalled when the writer took something; made when the
	// owner first waits for room.
	room chan struct{}
}

// put queues req unless writeQueueCap requests wait; otherwise it returns
// the channel signalled when one is taken.
func (q *writeQueue) put(req writeReq) (bool, <-chan struct{}) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items)-q.head >= writeQueueCap {
		if q.room == nil {
			q.room = make(chan struct{}, 1)
		}
		return false, q.room
	}
	q.items = append(q.items, req)
	return true, nil
}

// take removes the oldest request; with none, it reports whether the
// queue is closed.
func (q *writeQueue) take() (req writeReq, ok, closed bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.items) {
		return writeReq{}, false, q.closed
	}
	req = q.items[q.head]
	q.items[q.head] = writeReq{}
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = nil, 0
	}
	if q.room != nil {
		signal(q.room)
	}
	return req, true, false
}

// close ends the queue: the writer exits once it is empty.
func (q *writeQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
}

// write hands req to c's writer, unless c is lost or ctx ends first (the
// record then goes back to the owner). The caller has counted the message
// busy; the writer (or write) ends that. Only the owner loop calls it.
func (d *Device) write(ctx context.Context, c *conn, req writeReq) bool {
	d.handing.Add(1)
	for {
		queued, room := c.reqs.put(req)
		if queued {
			signal(c.wake)
			return true
		}
		select {
		case <-room:
			continue
		case <-c.lost:
		case <-ctx.Done():
		}
		d.returnWrite(req)
		return false
	}
}

// returnWrite undoes the hand-over of a request the writer never
// published: the message is no longer on its way, a waiting publishWait
// learns it was not sent (result is buffered), and its record goes back to
// the owner.
func (d *Device) returnWrite(req writeReq) {
	d.handing.Add(-1)
	d.unbusy()
	if req.result != nil {
		req.result <- nil
	}
	if req.out.rec != nil {
		d.session.giveBack(req.out.rec)
	}
}

// writer publishes what the owner loop hands it, in order, until the owner
// closes c.reqs; while c.direct allows and the in-flight window has room,
// it also takes discard messages from the senders. paho's Publish may
// block (a full socket, or a connection dying under it, up to
// Config.WriteTimeout): it blocks this goroutine, never the owner loop or
// a caller.
func (d *Device) writer(c *conn) {
	defer d.wg.Done()
	defer close(c.writerDone)
	for {
		req, ok, closed := c.reqs.take()
		if ok {
			d.publishNow(c, req)
			continue
		}
		if closed {
			return
		}
		var discards chan *outbound
		if c.direct.Load() && !d.windowFull() {
			discards = d.discards
		}
		select {
		case <-c.wake:
		case out := <-discards:
			d.handing.Add(1)
			d.publishNow(c, writeReq{out: *out})
		}
	}
}

// setDirect turns the writer's direct intake of discard messages on or off
// and wakes it to look again (the window may have opened).
func (c *conn) setDirect(on bool) {
	c.direct.Store(on)
	signal(c.wake)
}

// closeWrites ends c's write queue and wakes the writer to see it.
func (c *conn) closeWrites() {
	c.reqs.close()
	signal(c.wake)
}

// publishNow publishes one request. A QoS 1/2 packet enters the session
// with its record; one refused before that goes back to the owner. When
// paho reports an error at once, a connection that is not known to be lost
// is stuck (paho could not hand the packet to its socket writer): it is
// ended, and the next connection replays the session.
func (d *Device) publishNow(c *conn, req writeReq) {
	defer d.unbusy()
	defer d.handing.Add(-1)
	out := req.out
	var tok mqtt.Token
	send := func() { tok = c.client.Publish(out.topic, out.qos, false, out.payload) }
	switch {
	case c.isLost():
	case out.qos == 0 || out.rec == nil:
		send()
	case !c.view.hand(out.rec, send):
		tok = nil
	}
	if req.result != nil {
		req.result <- tok
	}
	if tok == nil {
		if out.rec != nil {
			d.session.giveBack(out.rec)
		}
		return
	}
	if out.qos > 0 {
		d.raiseFloor(tok)
	}
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			if out.qos == 0 && out.rec != nil {
				d.session.giveBack(out.rec)
			}
			if !c.isLost() {
				d.log.Warn("connection stuck; replacing it", "err", err)
				c.setCause(fmt.Errorf("connection stuck: %w", err))
				c.end()
			}
			return
		}
	default:
	}
	if out.qos == 0 && out.rec != nil && out.rec.kind == recStored {
		// QoS 0 has no acknowledgement: a stored message is done once paho
		// has it (unreliable delivery is what its mapping asks for).
		d.session.settled(out.rec)
	}
}
