package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/astarte-gen/astarte-gen/internal/wire"
	"github.com/astarte-gen/astarte-gen/runtime/model"
	"github.com/astarte-gen/astarte-gen/runtime/store"
)

// Message is one data message being built by generated code (see
// GeneratedMessage): a value, or the fields of an object, for the one
// mapping and path it was created for. It exposes only the typed value
// setters and Send, so it cannot be re-targeted; once sent it is spent, and
// using it again returns ErrMessageSent. Each setter checks the value
// against the mapping's type and Astarte's limits; the first error is kept
// and returned by Send.
type Message struct {
	d       *Device
	info    *ifaceInfo
	mapping int
	topic   string
	err     error
	buf     *msgBuf // nil once sent
}

// msgBuf holds the reusable encoding buffers of a Message.
type msgBuf struct {
	p     wire.Payload
	topic []byte
}

// message starts a message on mapping index mapping of a device-owned
// interface, with the path parameters in endpoint order. For an object
// aggregation, pass any mapping index (generated code passes 0) and select
// fields with Field.
func (d *Device) message(iface *model.Interface, mapping int, params ...string) *Message {
	b := d.buffers.Get().(*msgBuf)
	m := &Message{d: d, buf: b, mapping: mapping}
	info, err := d.lookup(iface)
	if err != nil {
		m.err = err
		return m
	}
	m.info = info
	if mapping < 0 || mapping >= len(info.Mappings) {
		m.err = fmt.Errorf("%w: %s has no mapping %d", model.ErrMappingNotFound, info.Name, mapping)
		return m
	}
	if info.Aggregation == model.Object {
		m.mapping = 0
	}
	b.p.Reset(info.Interface, m.mapping)
	if info.Ownership != model.OwnershipDevice {
		m.err = fmt.Errorf("%w: %s is server-owned", ErrWrongOwnership, info.Name)
		return m
	}
	if len(params) == 0 && info.topics[m.mapping] != "" {
		m.topic = info.topics[m.mapping]
		return m
	}
	b.topic, m.err = appendTopic(b.topic[:0], d.base, info.Name, info.levels[m.mapping], params)
	m.topic = string(b.topic)
	return m
}

// payload returns the encoder, or nil when the message cannot take values
// (already sent, or created with an error).
func (m *Message) payload() *wire.Payload {
	switch {
	case m.buf == nil:
		if m.err == nil {
			m.err = ErrMessageSent
		}
		return nil
	case m.err != nil:
		return nil
	}
	return &m.buf.p
}

// Field selects the object field, by mapping index, that the next setter
// writes (object aggregations only). Fields not selected are absent from
// the object.
func (m *Message) Field(mapping int) *Message {
	if p := m.payload(); p != nil {
		p.Field(mapping)
	}
	return m
}

// Double sets a double value.
func (m *Message) Double(v float64) *Message { return set(m, (*wire.Payload).Double, v) }

// Integer sets an integer value.
func (m *Message) Integer(v int32) *Message { return set(m, (*wire.Payload).Integer, v) }

// Boolean sets a boolean value.
func (m *Message) Boolean(v bool) *Message { return set(m, (*wire.Payload).Boolean, v) }

// LongInteger sets a longinteger value.
func (m *Message) LongInteger(v int64) *Message { return set(m, (*wire.Payload).LongInteger, v) }

// String sets a string value.
func (m *Message) String(v string) *Message { return set(m, (*wire.Payload).String, v) }

// BinaryBlob sets a binaryblob value.
func (m *Message) BinaryBlob(v []byte) *Message { return set(m, (*wire.Payload).BinaryBlob, v) }

// DateTime sets a datetime value (millisecond precision).
func (m *Message) DateTime(v time.Time) *Message { return set(m, (*wire.Payload).DateTime, v) }

// DoubleArray sets a doublearray value.
func (m *Message) DoubleArray(v []float64) *Message { return set(m, (*wire.Payload).DoubleArray, v) }

// IntegerArray sets an integerarray value.
func (m *Message) IntegerArray(v []int32) *Message { return set(m, (*wire.Payload).IntegerArray, v) }

// BooleanArray sets a booleanarray value.
func (m *Message) BooleanArray(v []bool) *Message { return set(m, (*wire.Payload).BooleanArray, v) }

// LongIntegerArray sets a longintegerarray value.
func (m *Message) LongIntegerArray(v []int64) *Message {
	return set(m, (*wire.Payload).LongIntegerArray, v)
}

// StringArray sets a stringarray value.
func (m *Message) StringArray(v []string) *Message { return set(m, (*wire.Payload).StringArray, v) }

// BinaryBlobArray sets a binaryblobarray value.
func (m *Message) BinaryBlobArray(v [][]byte) *Message {
	return set(m, (*wire.Payload).BinaryBlobArray, v)
}

// DateTimeArray sets a datetimearray value.
func (m *Message) DateTimeArray(v []time.Time) *Message {
	return set(m, (*wire.Payload).DateTimeArray, v)
}

// set writes v with the encoder's method for its type, unless the message
// is spent or already failed.
func set[T any](m *Message, write func(*wire.Payload, T) *wire.Payload, v T) *Message {
	if p := m.payload(); p != nil {
		write(p, v)
	}
	return m
}

// setAny sets a dynamically typed value (see wire.Payload.Any).
func (m *Message) setAny(v any) *Message {
	if p := m.payload(); p != nil {
		p.Any(v)
	}
	return m
}

// appendTopic appends "<base>/<iface><path>" with params substituted.
func appendTopic(dst []byte, base, iface string, levels []model.Level, params []string) ([]byte, error) {
	dst = append(append(append(dst, base...), '/'), iface...)
	n := 0
	for _, l := range levels {
		dst = append(dst, '/')
		if !l.Param {
			dst = append(dst, l.Name...)
			continue
		}
		if n >= len(params) {
			return dst, fmt.Errorf("%w: too few parameters (%d)", model.ErrInvalidParameter, len(params))
		}
		if err := model.CheckParameter(params[n]); err != nil {
			return dst, fmt.Errorf("%%{%s}: %w", l.Name, err)
		}
		dst = append(dst, params[n]...)
		n++
	}
	if n != len(params) {
		return dst, fmt.Errorf("%w: %d parameters given, endpoint takes %d", model.ErrInvalidParameter, len(params), n)
	}
	if len(levels) == 0 {
		dst = append(dst, '/')
	}
	return dst, nil
}

// release returns m's buffers to the pool; m is spent.
func (m *Message) release() {
	if m.buf != nil {
		m.d.buffers.Put(m.buf)
		m.buf = nil
	}
}

// MaxPacketSize is the largest MQTT packet remaining length Astarte's broker
// accepts from a device (spec §5.1); larger messages are refused with
// ErrPacketTooLarge.
const MaxPacketSize = 65535

// Send publishes the message (a datastream value or a property set) with the
// QoS, retention and expiry of its mapping. ts is the explicit timestamp;
// pass the zero time for mappings without explicit_timestamp. It returns
// once the message has the durability its retention requires: discard —
// handed to the connection (ErrNotConnected when offline); volatile — handed
// over or queued in memory; stored — committed to the store; properties —
// committed to the store, sent when connected.
func (m *Message) Send(ctx context.Context, ts time.Time) error {
	p := m.payload()
	defer m.release()
	if p == nil {
		return m.err
	}
	payload, err := p.Finish(ts)
	if err != nil {
		return fmt.Errorf("%s%s: %w", m.info.Name, m.path(), err)
	}
	// Remaining length: topic length prefix, topic, packet id, payload.
	if size := 2 + len(m.topic) + 2 + len(payload); size > MaxPacketSize {
		return fmt.Errorf("%w: %s%s would be %d bytes", ErrPacketTooLarge, m.info.Name, m.path(), size)
	}
	out := outgoing{info: m.info, mapping: &m.info.Mappings[m.mapping], topic: m.topic, payload: payload}
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
	mapping *model.Mapping
	topic   string
	payload []byte
}

func (d *Device) send(ctx context.Context, o outgoing) error {
	if d.isClosed() {
		return ErrClosed
	}
	if o.info.Type == model.Properties {
		return d.setProperty(ctx, o)
	}
	switch o.mapping.Retention {
	case model.Stored:
		return d.sendStored(ctx, o)
	case model.Volatile:
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
	out := &outbound{topic: o.topic, qos: qos, payload: bytes.Clone(o.payload)}
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
func deadline(m *model.Mapping) time.Time {
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
		d.volatile.filter(func(v volatileMsg) bool { return !expiredAt(v.deadline, now) })
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
