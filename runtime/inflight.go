package runtime

import "context"

// inflight is a publish awaiting its acknowledgement.
type inflight struct {
	c   *conn
	tok interface {
		Done() <-chan struct{}
		Error() error
	}
	done func(error)
}

// publishTracked publishes within the in-flight window (Config.MaxInFlight;
// paho does not bound it) and calls done, if not nil, with the outcome. The
// ack loop calls done in publish order.
func (d *Device) publishTracked(ctx context.Context, c *conn, topic string, qos byte, payload []byte, done func(error)) error {
	select {
	case d.window <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.lost:
		if done != nil {
			done(errConnLost)
		}
		return nil
	case <-d.closing:
		return ErrClosed
	}
	tok := c.client.Publish(topic, qos, false, payload)
	d.tracked <- inflight{c: c, tok: tok, done: done} // never blocks: capacity = window
	return nil
}

// ackLoop settles in-flight publishes in order: a success removes stored
// data, a failure (connection lost, device closed) leaves it to be resent.
func (d *Device) ackLoop() {
	defer d.wg.Done()
	for {
		select {
		case f := <-d.tracked:
			var err error
			select {
			case <-f.tok.Done():
				err = f.tok.Error()
			case <-f.c.lost:
				err = errConnLost
			case <-d.closing:
				err = ErrClosed
			}
			if f.done != nil {
				f.done(err)
			}
			<-d.window
		case <-d.closing:
			return
		}
	}
}

// inFlight returns the number of publishes awaiting acknowledgement.
func (d *Device) inFlight() int { return len(d.window) }
