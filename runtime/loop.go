package runtime

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/astarte-gen/astarte-gen/runtime/store"
)

// ErrAlreadyConnecting is returned by Connect when the device is already
// connected or connecting.
var ErrAlreadyConnecting = errors.New("astarte: Connect called twice")

// owner is the state of the owner loop: the one goroutine that connects,
// publishes and settles acknowledgements. Only run and what it calls touch
// it.
type owner struct {
	// cursor: every stored message with an ID up to it is in the session
	// (or acknowledged); the next to publish comes after it.
	cursor uint64
	stored []store.Message // read ahead from the store, after cursor
	// Refused messages (see judge). Astarte answers data it refuses by
	// dropping the connection and discarding the session. After such a
	// loss with stored messages in flight, the owner probes: it publishes
	// the head of the stored queue alone and waits for its
	// acknowledgement. A probe followed by the same loss again is a
	// refusal; MaxRefusals in a row move it to the dead letters.
	flowsAtLoss bool    // the broker ended the last connection with stored messages in flight
	probing     bool    // publish the stored head alone
	probe       *record // the probe in flight
	refusedID   uint64
	refusals    int
	// more says the queues may hold something: senders woke the loop, or
	// a cursor moved back, since the queues were last found empty.
	more bool
	// Renewal refused (credentials inhibited, Pairing API down): the
	// device keeps its certificate and retries at renewRetry, backing off.
	renewFailures int
	renewRetry    time.Time
}

// Connect pairs if needed, connects, and returns once the device is
// connected and synchronised (spec §3.11), or with the error. Transient
// failures (network, broker or Pairing API unavailable) are retried with
// jittered exponential backoff until ctx ends; the error then wraps both
// ctx's error and the last attempt's cause. Permanent failures (wrong
// secret, device unknown, credentials inhibited) are returned at once.
// After a successful Connect the device reconnects by itself until Close.
func (d *Device) Connect(ctx context.Context) error {
	d.mu.Lock()
	switch {
	case d.state == Closed:
		d.mu.Unlock()
		return ErrClosed
	case d.started:
		d.mu.Unlock()
		return ErrAlreadyConnecting
	}
	d.started, d.lastErr = true, nil
	// Set under d.mu with the state check, so that Close, which takes the
	// cancel func under d.mu too, cancels every run it did not prevent.
	runCtx, cancel := context.WithCancel(context.Background())
	d.stopRun = cancel
	d.wg.Add(1)
	d.mu.Unlock()
	ready := make(chan error, 1)
	go func() {
		defer d.wg.Done()
		d.run(runCtx, ready)
	}()
	select {
	case err := <-ready:
		if err == nil {
			return nil
		}
		cancel()
		d.notStarted()
		return err
	case <-ctx.Done():
		cancel()
		d.notStarted()
		d.mu.Lock()
		last := d.lastErr
		d.mu.Unlock()
		if last != nil {
			return fmt.Errorf("astarte: connect: %w; last attempt: %w", ctx.Err(), last)
		}
		return fmt.Errorf("astarte: connect: %w", ctx.Err())
	case <-d.closing:
		cancel()
		return ErrClosed
	}
}

// notStarted lets a later Connect try again.
func (d *Device) notStarted() {
	d.mu.Lock()
	d.started = false
	d.mu.Unlock()
}

// run keeps the device connected until ctx ends. The first outcome
// (synced, or a permanent error) goes to ready.
func (d *Device) run(ctx context.Context, ready chan<- error) {
	var o owner
	first := true
	for attempt := 0; ; attempt++ {
		c, err := d.connectOnce(ctx, &o)
		if err == nil {
			attempt = -1
			if first {
				ready <- nil
				first = false
			}
			d.serve(ctx, c, &o)
			d.teardown(c, &o)
			if cause := c.lostCause(); cause != nil {
				d.mu.Lock()
				d.lastErr = fmt.Errorf("connection lost: %w", cause)
				d.mu.Unlock()
			}
		} else if ctx.Err() == nil {
			d.mu.Lock()
			d.lastErr = err
			d.mu.Unlock()
			if first && isPermanent(err) {
				ready <- err
				return
			}
			d.report(&Error{Kind: ErrConnection, Err: err, Op: "connection attempt failed"})
		}
		if ctx.Err() != nil {
			d.settleLast(&o)
			d.setState(Disconnected)
			return
		}
		d.setState(Disconnected)
		d.waitOffline(ctx, d.backoff(attempt))
	}
}

// waitOffline waits out the delay before the next attempt, applying
// interface changes meanwhile.
func (d *Device) waitOffline(ctx context.Context, delay time.Duration) {
	t := time.NewTimer(delay)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return
		case <-ctx.Done():
			return
		case ch := <-d.changes:
			ch.done <- d.applyOffline(ctx, ch)
		}
	}
}

// connectOnce makes one connection attempt and synchronises it.
func (d *Device) connectOnce(ctx context.Context, o *owner) (*conn, error) {
	d.setState(Connecting)
	cert, broker, err := d.creds.credentials(ctx)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	c, err := d.dial(ctx, cert, broker)
	if err != nil {
		if isRejection(err) {
			if rerr := d.creds.rejected(ctx, err); rerr != nil {
				return nil, fmt.Errorf("broker refused the certificate (%v); renewing: %w", err, rerr)
			}
		}
		return nil, err
	}
	d.judge(ctx, o, c.sessionPresent)
	d.settle(ctx, o)
	if err := d.awaitReleases(ctx, c); err != nil {
		c.close()
		return nil, err
	}
	// Before anything is published: paho issues identifiers from here on.
	if err := d.setFloor(ctx, addID(d.session.nextID(), floorStep)); err != nil {
		c.close()
		return nil, err
	}
	d.wg.Add(1)
	go d.writer(c)
	if err := d.sync(ctx, c); err != nil {
		d.teardown(c, o)
		return nil, fmt.Errorf("sync: %w", err)
	}
	d.setState(Connected)
	return c, nil
}

// awaitReleases waits until the broker completed the PUBRELs the new
// connection replayed (one round trip), so that no new publish can reuse
// their identifiers.
func (d *Device) awaitReleases(ctx context.Context, c *conn) error {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for d.session.releasing() {
		select {
		case <-tick.C:
		case <-c.lost:
			return errConnLost
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// serve publishes queued data on c and settles acknowledgements until c is
// lost, ctx ends, or the certificate is due for renewal.
func (d *Device) serve(ctx context.Context, c *conn, o *owner) {
	renew := d.renewTimer(o)
	defer renew.Stop()
	o.more = true
	for {
		d.settle(ctx, o)
		if c.isLost() || ctx.Err() != nil {
			return
		}
		d.pump(ctx, c, o)
		// The writer takes discard messages itself, except while a probe
		// must be alone in flight.
		c.setDirect(!o.probing)
		select {
		case <-c.lost:
		case <-ctx.Done():
		case <-d.wake:
			o.more = true
		case <-d.session.signal:
		case ch := <-d.changes:
			ch.done <- d.applyConnected(ctx, c, ch)
			o.more = true
		case <-renew.C:
			if d.renew(ctx, c, o) {
				return
			}
			renew = d.renewTimer(o)
		}
	}
}

// windowFull reports whether Config.MaxInFlight messages are in the
// session or on their way to it.
func (d *Device) windowFull() bool {
	return d.session.inFlight()+int(d.handing.Load()) >= d.cfg.MaxInFlight
}

// renewTimer fires when the certificate is due for renewal, or when a
// refused renewal is to be tried again (never when the credentials say
// there is nothing to renew).
func (d *Device) renewTimer(o *owner) *time.Timer {
	t := time.NewTimer(0)
	t.Stop()
	if at := d.creds.renewAt(); !at.IsZero() {
		if o.renewRetry.After(at) {
			at = o.renewRetry
		}
		t.Reset(max(time.Until(at), 0))
	}
	return t
}

// Retries of a refused renewal back off from renewRetryMin to
// renewRetryMax: the certificate in use stays valid meanwhile, and an
// inhibited device may wait days for an operator.
const (
	renewRetryMin = 10 * time.Second
	renewRetryMax = time.Hour
)

// renew obtains a new certificate; the connection is then replaced so that
// it uses it. It reports whether it ended the connection. A refusal is
// reported, and retried later with a growing delay.
func (d *Device) renew(ctx context.Context, c *conn, o *owner) bool {
	wasInhibited := d.creds.status().inhibited
	defer func() {
		if d.creds.status().inhibited != wasInhibited {
			d.notifyStatus()
		}
	}()
	if err := d.creds.renew(ctx); err != nil {
		delay := jitteredBackoff(renewRetryMin, renewRetryMax, o.renewFailures)
		o.renewFailures++
		o.renewRetry = time.Now().Add(delay)
		d.report(&Error{Kind: ErrConnection, Err: fmt.Errorf("renewing the client certificate (next try in %v): %w", delay.Round(time.Second), err), Op: "certificate renewal failed"})
		return false
	}
	o.renewFailures, o.renewRetry = 0, time.Time{}
	d.log.Info("client certificate renewed; reconnecting with it")
	c.ended.Store(true) // teardown closes it
	return true
}

// teardown ends c: paho's goroutines are stopped before the next
// connection starts, so nothing of c can touch its state; c's writer gives
// back what it still holds and exits. When the broker or the network ended
// c, the oldest stored message it had not received becomes a suspect.
func (d *Device) teardown(c *conn, o *owner) {
	ended := c.ended.Load()
	live := !c.isLost()
	c.direct.Store(false)
	c.closeWrites()
	if live {
		// The device ends a live connection (Close, renewal): let the
		// writer finish the publish it is in, which a live socket
		// completes at once, so that paho's Publish cannot race the
		// Disconnect and wait out its WriteTimeout.
		d.takeBackWrites(c)
		select {
		case <-c.writerDone:
		case <-time.After(d.cfg.WriteTimeout):
		}
	}
	c.close()
	o.flowsAtLoss = !ended && !live && d.session.hasStored()
	if ended {
		o.probe = nil // not a refusal: the device ended it
	}
	// Take back what still waits for the writer, so that it is requeued
	// before the next connection publishes what follows it. On a dead
	// socket the writer may be stuck in paho's Publish (up to
	// WriteTimeout); that packet is in the session already, and the next
	// connection replays it, unless it is QoS 0.
	d.takeBackWrites(c)
}

// takeBackWrites gives back the requests still queued for c's writer (whose
// queue is closed).
func (d *Device) takeBackWrites(c *conn) {
	for {
		req, ok, _ := c.reqs.take()
		if !ok {
			return
		}
		d.returnWrite(req)
	}
}

// judge runs after each CONNACK. A session the broker kept means nothing
// was refused. A discarded one after a probe was sent and not acknowledged
// is a refusal of the probe; after a loss with stored messages in flight,
// the owner starts probing.
func (d *Device) judge(ctx context.Context, o *owner, sessionPresent bool) {
	probe, flows := o.probe, o.flowsAtLoss
	o.probe, o.flowsAtLoss = nil, false
	if sessionPresent {
		o.probing, o.refusals = false, 0
		return
	}
	if probe == nil {
		o.probing = o.probing || flows
		return
	}
	if probe.storedID != o.refusedID {
		o.refusedID, o.refusals = probe.storedID, 0
	}
	o.refusals++
	if o.refusals < d.cfg.MaxRefusals {
		return
	}
	o.refusals = 0
	reason := fmt.Sprintf("the server dropped the connection right after it, %d times in a row", d.cfg.MaxRefusals)
	moved, err := d.store.MoveToDeadLetters(ctx, probe.storedID, reason)
	switch {
	case err != nil:
		d.report(&Error{Kind: ErrStore, Interface: probe.iface, Path: probe.path, Err: err, Op: "moving a refused message to the dead letters"})
	case moved:
		d.report(&Error{Kind: ErrDeadLetter, Interface: probe.iface, Path: probe.path, Err: errors.New(reason), Op: "moved a refused stored message to the dead letters"})
	}
}

// settleLast applies the acknowledgements the last connection received
// after the owner's last turn, so that Close leaves no acknowledged
// message in the store for the next process to publish again.
func (d *Device) settleLast(o *owner) {
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.WriteTimeout)
	defer cancel()
	d.settle(ctx, o)
}

// settle applies acknowledgements (removing stored messages, clearing
// property marks) and requeues what a lost session orphaned.
func (d *Device) settle(ctx context.Context, o *owner) {
	acked, orphans := d.session.take()
	if len(acked)+len(orphans) == 0 {
		return
	}
	var ids []uint64
	for _, r := range acked {
		if r == o.probe { // accepted: back to normal
			o.probe, o.probing, o.refusals, o.more = nil, false, 0, true
		}
		switch r.kind {
		case recStored:
			ids = append(ids, r.storedID)
		case recProperty:
			d.propertyAcked(r.prop)
		}
	}
	if len(ids) > 0 {
		if err := d.store.Ack(ctx, ids...); err != nil && !d.isClosed() {
			d.report(&Error{Kind: ErrStore, Err: err, Op: "removing acknowledged messages from the store"})
		}
		d.session.forget(ids)
	}
	for _, r := range orphans {
		d.requeue(o, r)
	}
	d.mu.Lock()
	d.progressed()
	d.mu.Unlock()
}

// requeue takes back a record that did not reach the broker: stored
// messages are read again from the store, volatile ones go back to their
// queue, properties are resent from the store by the next sync or mark,
// discard ones are dropped.
func (d *Device) requeue(o *owner, r *record) {
	if r == o.probe {
		o.probe = nil // it never reached the broker: send it again
	}
	switch r.kind {
	case recStored:
		if r.storedID <= o.cursor {
			o.cursor, o.stored = r.storedID-1, nil
		}
		o.more = true
	case recVolatile:
		d.mu.Lock()
		d.volatile.push(r.volatile)
		d.mu.Unlock()
		o.more = true
	case recProperty:
		d.markDirty(r.prop.PropertyKey, false)
		o.more = true
	}
}

// pump publishes queued data while the in-flight window has room:
// property changes first, then volatile data, then stored data in order.
// It reports whether the connection got stuck (and was ended).
func (d *Device) pump(ctx context.Context, c *conn, o *owner) {
	if o.probing {
		if o.probe != nil {
			return // wait for its acknowledgement
		}
		out, ok := d.nextStored(ctx, o)
		if !ok {
			o.probing = false // nothing stored left to suspect
		} else {
			o.probe = out.rec
			d.write(ctx, c, writeReq{out: out})
			return
		}
	}
	for o.more && !d.windowFull() && !c.isLost() {
		out, ok := d.nextProperty(ctx)
		if !ok {
			out, ok = d.nextVolatile()
		}
		if !ok {
			out, ok = d.nextStored(ctx, o)
		}
		if !ok {
			o.more = false
			return
		}
		if !d.write(ctx, c, writeReq{out: out}) {
			return
		}
	}
}

// outbound is a message the owner loop is about to publish.
type outbound struct {
	topic   string
	qos     byte
	payload []byte
	rec     *record
}

// raiseFloor raises the packet-identifier floor before identifiers reach
// it (the writer calls it after each QoS 1/2 publish). The raise is written
// in the background, floorMargin identifiers ahead, so that the writer does
// not wait for an fsync; it waits only if identifiers come within
// floorUrgent of a floor whose raise is not durable yet.
func (d *Device) raiseFloor(tok mqtt.Token) {
	pt, ok := tok.(*mqtt.PublishToken)
	if !ok || pt.MessageID() == 0 {
		return
	}
	d.floorMu.Lock()
	floor, pending := d.floor, d.floorRaise
	dist := idDistance(pt.MessageID(), floor)
	if dist >= floorMargin {
		d.floorMu.Unlock()
		return
	}
	if pending == nil {
		pending = make(chan struct{})
		d.floorRaise = pending
		d.wg.Add(1)
		go d.persistRaise(floor, pending)
	}
	d.floorMu.Unlock()
	if dist < floorUrgent {
		<-pending
	}
}

// floorUrgent is how close identifiers may come to the floor while its
// raise is being written.
const floorUrgent = 64

// persistRaise writes the floor one step above from, unless it moved
// meanwhile (a new connection set it), and then ends the raise.
func (d *Device) persistRaise(from uint16, done chan struct{}) {
	defer d.wg.Done()
	defer func() {
		d.floorMu.Lock()
		d.floorRaise = nil
		d.floorMu.Unlock()
		close(done)
	}()
	d.floorWrite.Lock()
	defer d.floorWrite.Unlock()
	d.floorMu.Lock()
	moved := d.floor != from
	d.floorMu.Unlock()
	if moved {
		return
	}
	if err := d.writeFloor(context.Background(), addID(from, floorStep)); err != nil && !d.isClosed() {
		d.report(&Error{Kind: ErrStore, Err: err, Op: "raising the packet identifier floor"})
	}
}

// unbusy ends the hand-over of one message taken from a queue.
func (d *Device) unbusy() {
	d.busy.Add(-1)
	if d.flushers.Load() > 0 {
		d.mu.Lock()
		d.progressed()
		d.mu.Unlock()
	}
}

// nextProperty takes a marked device property that still needs sending.
func (d *Device) nextProperty(ctx context.Context) (outbound, bool) {
	for {
		d.mu.Lock()
		var key store.PropertyKey
		found, force := false, false
		for k, f := range d.dirty {
			key, found, force = k, true, f
			delete(d.dirty, k)
			break
		}
		if found {
			d.busy.Add(1)
		}
		d.mu.Unlock()
		if !found {
			return outbound{}, false
		}
		p, ok, err := d.store.Property(ctx, key)
		if err != nil || !ok || !(p.Unsent || force) || (p.Value == nil && !p.Unsent) {
			d.unbusy()
			continue
		}
		payload := p.Value
		if payload == nil {
			payload = []byte{} // an unset
		}
		return outbound{topic: d.base + "/" + p.Interface + p.Path, qos: 2, payload: payload, rec: &record{kind: recProperty, prop: p}}, true
	}
}

// nextVolatile takes the oldest unexpired volatile message.
func (d *Device) nextVolatile() (outbound, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		v, ok := d.volatile.pop()
		if !ok {
			return outbound{}, false
		}
		if expiredAt(v.deadline, time.Now()) {
			d.counters.volatileExpired.Add(1)
			continue
		}
		if !d.ifaces().hasTopic(d.base, v.topic) {
			continue // its interface was removed
		}
		d.busy.Add(1)
		return outbound{topic: v.topic, qos: v.qos, payload: v.payload, rec: &record{kind: recVolatile, volatile: v}}, true
	}
}

// drainBatch is how many stored messages the owner reads ahead at once.
const drainBatch = 256

// nextStored takes the next stored message after the cursor, dropping
// expired ones.
func (d *Device) nextStored(ctx context.Context, o *owner) (outbound, bool) {
	for {
		if len(o.stored) == 0 {
			msgs, err := d.store.Pending(ctx, o.cursor, drainBatch)
			if err != nil {
				if !d.isClosed() {
					d.report(&Error{Kind: ErrStore, Err: err, Op: "reading the stored queue"})
				}
				return outbound{}, false
			}
			if len(msgs) == 0 {
				return outbound{}, false
			}
			o.stored = msgs
		}
		m := o.stored[0]
		o.stored = o.stored[1:]
		o.cursor = m.ID
		if d.session.holds(m.ID) {
			continue // on its way, or its flow is in the session
		}
		if info, ok := d.ifaces().lookup(m.Interface); !ok || info.Major != m.Major {
			continue // read ahead before its interface was removed (and pruned)
		}
		if expiredAt(m.Deadline, time.Now()) {
			d.counters.storedExpired.Add(1)
			d.log.Debug("dropping expired stored message", "interface", m.Interface, "path", m.Path)
			if err := d.store.Ack(ctx, m.ID); err != nil && !d.isClosed() {
				d.report(&Error{Kind: ErrStore, Interface: m.Interface, Path: m.Path, Err: err, Op: "dropping an expired message"})
			}
			continue
		}
		d.busy.Add(1)
		d.session.takeStored(m.ID)
		rec := &record{kind: recStored, storedID: m.ID, iface: m.Interface, path: m.Path}
		return outbound{topic: d.base + "/" + m.Interface + m.Path, qos: m.QoS, payload: m.Payload, rec: rec}, true
	}
}

// backoff is the delay before attempt n+1: exponential from ReconnectMin,
// capped at ReconnectMax, with 50 % jitter so that a fleet disconnected at
// once does not come back at once.
func (d *Device) backoff(attempt int) time.Duration {
	return jitteredBackoff(d.cfg.ReconnectMin, d.cfg.ReconnectMax, attempt)
}

// jitteredBackoff doubles from lo per attempt, capped at hi, and picks a
// delay in the upper half of that.
func jitteredBackoff(lo, hi time.Duration, attempt int) time.Duration {
	delay := lo
	for i := 0; i < attempt && delay < hi; i++ {
		delay *= 2
	}
	delay = min(delay, hi)
	return delay/2 + rand.N(delay/2+1)
}

// permanentError marks errors that retrying cannot fix.
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

func isPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p) || errors.Is(err, ErrConfig)
}
