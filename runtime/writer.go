package runtime

import (
	"context"
	"fmt"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// writeQueue bounds the publishes waiting for a connection's writer.
const writeQueue = 8

// writeReq is one publish for a connection's writer. result, when set,
// receives the paho token (nil when the packet was not published).
type writeReq struct {
	out    outbound
	result chan<- mqtt.Token
}

// write hands req to c's writer, unless c is lost or ctx ends first (the
// record then goes back to the owner). The caller has counted the message
// busy; the writer (or write) ends that.
func (d *Device) write(ctx context.Context, c *conn, req writeReq) bool {
	d.handing.Add(1)
	select {
	case c.reqs <- req:
		return true
	case <-c.lost:
	case <-ctx.Done():
	}
	d.returnWrite(req)
	return false
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
		var discards chan *outbound
		if c.direct.Load() && !d.windowFull() {
			discards = d.discards
		}
		select {
		case req, ok := <-c.reqs:
			if !ok {
				return
			}
			d.publishNow(c, req)
		case out := <-discards:
			d.handing.Add(1)
			d.publishNow(c, writeReq{out: *out})
		case <-c.roomy:
		}
	}
}

// setDirect turns the writer's direct intake of discard messages on or off
// and wakes it to look again (the window may have opened).
func (c *conn) setDirect(on bool) {
	c.direct.Store(on)
	select {
	case c.roomy <- struct{}{}:
	default:
	}
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
