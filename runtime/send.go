package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/astarte-gen/astarte-gen/runtime/store"
)

// Message is a data message being built; see Device.Message. Its value
// methods come from the embedded Payload.
type Message struct {
	Payload
	d     *Device
	info  *ifaceInfo
	buf   []byte // topic being built
	topic string
	err   error
}

// Message starts a message on mapping index mapping of a device-owned
// interface, with the path parameters in endpoint order. For an object
// aggregation, pass any mapping index (generated code passes 0) and select
// fields with Field. Send returns the Message to a pool: do not use it after.
func (d *Device) Message(iface *Interface, mapping int, params ...string) *Message {
	m := d.messages.Get().(*Message)
	m.err, m.topic = nil, ""
	info, err := d.lookup(iface)
	if err != nil {
		m.err = err
		return m
	}
	m.info = info
	if mapping < 0 || mapping >= len(info.Mappings) {
		m.err = fmt.Errorf("%w: %s has no mapping %d", ErrMappingNotFound, info.Name, mapping)
		mapping = 0 // keep the Payload usable; Send reports m.err
	}
	m.Reset(info.Interface, mapping)
	if m.err != nil {
		return m
	}
	if info.Ownership != OwnershipDevice {
		m.err = fmt.Errorf("%w: %s is server-owned", ErrWrongOwnership, info.Name)
		return m
	}
	key := mapping
	if info.Aggregation == Object {
		key = 0
	}
	if len(params) == 0 && info.topics[key] != "" {
		m.topic = info.topics[key]
		return m
	}
	m.buf, m.err = appendTopic(m.buf[:0], d.base, info.Name, info.levels[key], params)
	m.topic = string(m.buf)
	return m
}

// appendTopic appends "<base>/<iface><path>" with params substituted.
func appendTopic(dst []byte, base, iface string, levels []Level, params []string) ([]byte, error) {
	dst = append(append(append(dst, base...), '/'), iface...)
	n := 0
	for _, l := range levels {
		dst = append(dst, '/')
		if !l.Param {
			dst = append(dst, l.Name...)
			continue
		}
		if n >= len(params) {
			return dst, fmt.Errorf("%w: too few parameters (%d)", ErrInvalidParameter, len(params))
		}
		if err := CheckParameter(params[n]); err != nil {
			return dst, fmt.Errorf("%%{%s}: %w", l.Name, err)
		}
		dst = append(dst, params[n]...)
		n++
	}
	if n != len(params) {
		return dst, fmt.Errorf("%w: %d parameters given, endpoint takes %d", ErrInvalidParameter, len(params), n)
	}
	if len(levels) == 0 {
		dst = append(dst, '/')
	}
	return dst, nil
}

// release returns m to the pool.
func (m *Message) release() {
	m.info = nil
	m.d.messages.Put(m)
}

// Send publishes the message (a datastream value or a property set) with the
// QoS, retention and expiry of its mapping. ts is the explicit timestamp;
// pass the zero time for mappings without explicit_timestamp. It returns
// once the message has the durability its retention requires: discard —
// handed to the connection (ErrNotConnected when offline); volatile — handed
// over or queued in memory; stored — committed to the store; properties —
// committed to the store, sent when connected.
func (m *Message) Send(ctx context.Context, ts time.Time) error {
	defer m.release()
	if m.err != nil {
		return m.err
	}
	payload, err := m.Finish(ts)
	if err != nil {
		return fmt.Errorf("%s%s: %w", m.info.Name, m.path(), err)
	}
	// Remaining length: topic length prefix, topic, packet id, payload.
	if size := 2 + len(m.topic) + 2 + len(payload); size > MaxPacketSize {
		return fmt.Errorf("%w: %s%s would be %d bytes", ErrPacketTooLarge, m.info.Name, m.path(), size)
	}
	mapping := &m.info.Mappings[m.mapping]
	if m.info.Aggregation == Object {
		mapping = &m.info.Mappings[0]
	}
	out := outgoing{info: m.info, mapping: mapping, topic: m.topic, payload: payload}
	return m.d.send(ctx, out)
}

// path returns the path part of the topic being built.
func (m *Message) path() string { return m.d.pathOf(m.topic, m.info.Name) }

// pathOf returns the path of a data topic "<base>/<iface><path>".
func (d *Device) pathOf(topic, iface string) string {
	return topic[min(len(topic), len(d.base)+1+len(iface)):]
}

// outgoing is a validated message ready for its retention path. payload is
// only valid during send (it belongs to the pooled Message).
type outgoing struct {
	info    *ifaceInfo
	mapping *Mapping
	topic   string
	payload []byte
}

func (d *Device) send(ctx context.Context, o outgoing) error {
	if d.isClosed() {
		return ErrClosed
	}
	if o.info.Type == Properties {
		return d.setProperty(ctx, o)
	}
	switch o.mapping.Retention {
	case Stored:
		return d.sendStored(ctx, o)
	case Volatile:
		return d.sendVolatile(ctx, o)
	default:
		return d.sendDiscard(ctx, o)
	}
}

// sendDiscard hands a discard-retention message to the owner loop when the
// device is connected (ErrNotConnected otherwise). It does not wait for the
// publish: discard keeps nothing, and a QoS 0 publish is fire and forget.
func (d *Device) sendDiscard(ctx context.Context, o outgoing) error {
	if !d.online.Load() {
		return fmt.Errorf("%w: %s (retention discard)", ErrNotConnected, o.topic)
	}
	d.busy.Add(1)
	qos := o.info.QoS(o.mapping)
	out := outbound{topic: o.topic, qos: qos, payload: bytes.Clone(o.payload)}
	if qos > 0 {
		out.rec = &record{kind: recDiscard}
	}
	select {
	case d.discards <- out:
		return nil
	case <-ctx.Done():
		d.unbusy()
		return ctx.Err()
	case <-d.closing:
		d.unbusy()
		return ErrClosed
	}
}

// deadline turns the mapping's expiry into an absolute time (zero: never).
func deadline(m *Mapping) time.Time {
	if m.Expiry <= 0 {
		return time.Time{}
	}
	return time.Now().Add(m.Expiry)
}

// sendVolatile queues a volatile message in memory for the owner loop; when
// the queue is full the oldest entry is dropped and counted.
func (d *Device) sendVolatile(_ context.Context, o outgoing) error {
	v := volatileMsg{topic: o.topic, qos: o.info.QoS(o.mapping), payload: bytes.Clone(o.payload), deadline: deadline(o.mapping)}
	d.mu.Lock()
	if d.volatile.full() {
		// Expired messages go first; only then the oldest.
		now := time.Now()
		before := d.volatile.n
		d.volatile.filter(func(v volatileMsg) bool { return v.deadline.IsZero() || now.Before(v.deadline) })
		d.counters.volatileExpired.Add(uint64(before - d.volatile.n))
	}
	dropped := d.volatile.push(v)
	total := d.volatile.dropped
	d.mu.Unlock()
	if dropped {
		d.log.Warn("volatile queue full: dropped the oldest message", "dropped_total", total)
	}
	d.poke()
	return nil
}

// poke wakes the owner loop.
func (d *Device) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// sendStored commits a stored message to the store; the owner loop
// publishes it in order and removes it once acknowledged. Once Enqueue
// returned nil the message is queued, whatever happens to ctx afterwards,
// so Send returns nil: a retry would only duplicate it.
func (d *Device) sendStored(ctx context.Context, o outgoing) error {
	msg := &store.Message{
		Interface: o.info.Name,
		Major:     o.info.Major,
		Path:      d.pathOf(o.topic, o.info.Name),
		QoS:       o.info.QoS(o.mapping),
		Payload:   bytes.Clone(o.payload),
		Deadline:  deadline(o.mapping),
	}
	if err := d.enqueueStored(ctx, msg); err != nil {
		if errors.Is(err, store.ErrFull) {
			return fmt.Errorf("%w: %s", ErrQueueFull, o.topic)
		}
		return fmt.Errorf("store %s: %w", o.topic, d.storeErr(err))
	}
	d.poke()
	return nil
}

// storeErr turns the store's "closed" into the device's.
func (d *Device) storeErr(err error) error {
	if errors.Is(err, store.ErrClosed) || d.isClosed() {
		return ErrClosed
	}
	return err
}
