package runtime

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/astarte-gen/astarte-gen/internal/wire"
	"github.com/astarte-gen/astarte-gen/runtime/model"
	"github.com/astarte-gen/astarte-gen/runtime/store"
)

// Incoming is one message received from the server, validated against its
// interface. Handlers get it for their own use; the device keeps no
// reference to it.
type Incoming struct {
	// Interface is the interface's name.
	Interface string
	// Path is the concrete path; Mapping (the index in the interface's
	// mappings) and Params come from matching it.
	Path    string
	Mapping int
	Params  []string
	// Unset is true when the server unset a property (Value and Fields
	// are then empty).
	Unset bool
	// Value is the value of an individual mapping.
	Value Value
	// Fields are the fields of an object value that the server sent, in
	// mapping order; absent fields are not listed.
	Fields []Field
	// Timestamp is the explicit timestamp, or zero when the message has
	// none.
	Timestamp time.Time
}

// newIncoming converts a decoded payload for a handler.
func newIncoming(info *ifaceInfo, path string, m model.Match, dec wire.Decoded) *Incoming {
	in := &Incoming{Interface: info.Name, Path: path, Mapping: m.Index, Params: m.Params, Unset: dec.Unset, Value: Value{dec.Value}, Timestamp: dec.Timestamp}
	for _, f := range dec.Fields {
		in.Fields = append(in.Fields, Field{Mapping: f.Mapping, Value: Value{f.Value}})
	}
	return in
}

// Field returns the object field of mapping index mapping, if the server
// sent it.
func (in *Incoming) Field(mapping int) (Value, bool) {
	for _, f := range in.Fields {
		if f.Mapping == mapping {
			return f.Value, true
		}
	}
	return Value{}, false
}

// HandlerFunc handles messages of one server-owned interface. Handlers of
// a device run one at a time, in arrival order (each returns before the
// next starts), on a goroutine the device runs only while server messages
// wait; ctx is cancelled by Device.Close. An error is reported through Config.OnError
// (as an *Error of kind ErrHandler) and the log; it never disconnects.
//
// A handler that blocks holds up every later server message, and after
// 256 waiting messages (or 4 MiB of waiting payloads) the connection's
// reading too: acknowledgements
// stop, and the keep-alive eventually drops the connection. Hand long work
// to another goroutine.
type HandlerFunc func(ctx context.Context, in *Incoming) error

// incoming is a message handed from paho to the dispatch loop, or a
// request to replay cached server properties to a handler registered late.
type incoming struct {
	topic   string
	payload []byte
	replay  *ifaceInfo
}

// The incoming queue holds at most maxIncoming messages and
// maxIncomingBytes of payloads: a slow handler and a flood of large
// messages would otherwise hold every payload. A single larger message is
// still let through when nothing waits, so that the bound never blocks for
// good.
const (
	maxIncoming      = 256
	maxIncomingBytes = 4 << 20
)

// inbox is the queue from paho's router to the dispatcher. put blocks the
// router (and so the connection's reading: the back-pressure the broker
// sees) while the queue is full. Its storage grows by need and is let go
// when it empties, and the dispatcher goroutine runs only while something
// waits: put starts it, and it ends when it finds the queue empty, so that
// an idle device holds neither. One dispatcher at most runs at a time, so
// messages are handled one at a time in arrival order.
type inbox struct {
	mu    sync.Mutex
	items []incoming
	head  int
	bytes int
	room  chan struct{} // signalled when something was taken; made when a put first waits
	// start launches a dispatcher; it runs with mu held, so that stop
	// (also under mu) either comes after it or prevents it.
	start   func()
	running bool // a dispatcher is draining the queue
	stopped bool // no dispatcher starts any more (Close)
}

func newInbox(start func()) *inbox {
	return &inbox{start: start}
}

// put queues in, waiting for room until a stop channel closes; it reports
// whether in was queued. It starts a dispatcher when none is running.
func (q *inbox) put(in incoming, stop1, stop2 <-chan struct{}) bool {
	for {
		q.mu.Lock()
		n := len(q.items) - q.head
		if n == 0 || n < maxIncoming && q.bytes+len(in.payload) <= maxIncomingBytes {
			q.items = append(q.items, in)
			q.bytes += len(in.payload)
			if !q.running && !q.stopped {
				q.running = true
				q.start()
			}
			q.mu.Unlock()
			return true
		}
		if q.room == nil {
			q.room = make(chan struct{}, 1)
		}
		room := q.room
		q.mu.Unlock()
		select {
		case <-room:
		case <-stop1:
			return false
		case <-stop2:
			return false
		}
	}
}

// take removes the oldest message, if any. Finding none ends the
// dispatcher that called it: the next put starts another.
func (q *inbox) take() (incoming, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.items) {
		q.running = false
		return incoming{}, false
	}
	in := q.items[q.head]
	q.items[q.head] = incoming{}
	q.head++
	q.bytes -= len(in.payload)
	if q.head == len(q.items) {
		q.items, q.head = nil, 0
	}
	if q.room != nil {
		signal(q.room)
	}
	return in, true
}

// stop prevents dispatchers from starting; one that runs drains what
// waits and ends.
func (q *inbox) stop() {
	q.mu.Lock()
	q.stopped = true
	q.mu.Unlock()
}

// len returns how many messages wait.
func (q *inbox) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head
}

// signal wakes whoever waits on ch, if anyone.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// enqueueIncoming runs on paho's router goroutine: it only hands the message
// over, so that handlers may publish without deadlocking paho.
func (d *Device) enqueueIncoming(c *conn, m mqtt.Message) {
	d.incoming.put(incoming{topic: m.Topic(), payload: m.Payload()}, d.closing, c.lost)
}

// dispatchLoop processes server messages in arrival order until the queue
// is empty (the inbox starts it again when the next one arrives).
func (d *Device) dispatchLoop() {
	defer d.wg.Done()
	for {
		in, ok := d.incoming.take()
		if !ok {
			return
		}
		if in.replay != nil {
			d.replay(in.replay)
			continue
		}
		if err := d.dispatch(in); err != nil {
			d.reportIncoming(in.topic, err)
		}
	}
}

// dispatch validates a server message (spec §3.12), updates the property
// cache and calls the interface's handler. Invalid data is an error, never a
// panic or a disconnect.
func (d *Device) dispatch(in incoming) error {
	rest, ok := strings.CutPrefix(in.topic, d.base+"/")
	if !ok {
		return fmt.Errorf("%w: topic %q outside %s", ErrInvalidPath, in.topic, d.base)
	}
	if rest == "control/consumer/properties" {
		return d.purgeServerProperties(in.payload)
	}
	name, path, _ := strings.Cut(rest, "/")
	path = "/" + path
	info, ok := d.ifaces().lookup(name)
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownInterface, name)
	}
	if info.Ownership != model.OwnershipServer {
		return fmt.Errorf("%w: server sent data on device-owned %s", ErrWrongOwnership, name)
	}
	match, err := info.Match(path)
	if err != nil {
		return err
	}
	dec, err := wire.Decode(info.Interface, match, in.payload)
	if err != nil {
		return fmt.Errorf("%s%s: %w", name, path, err)
	}
	if info.Type == model.Properties {
		if err := d.cacheServerProperty(info, path, in.payload, dec.Unset); err != nil {
			return err
		}
	}
	return d.deliver(newIncoming(info, path, match, dec))
}

func (d *Device) cacheServerProperty(info *ifaceInfo, path string, payload []byte, unset bool) error {
	ctx := context.Background()
	key := store.PropertyKey{Interface: info.Name, Major: info.Major, Path: path}
	var err error
	if unset {
		err = d.store.DeleteProperty(ctx, key)
	} else {
		err = d.store.PutProperty(ctx, store.Property{PropertyKey: key, Value: payload})
	}
	if err != nil {
		return fmt.Errorf("caching server property %s%s: %w", info.Name, path, err)
	}
	return nil
}

// deliver calls the handler registered for the interface, if any.
func (d *Device) deliver(in *Incoming) error {
	d.mu.Lock()
	h := d.handlers[in.Interface]
	d.mu.Unlock()
	if h == nil {
		return nil
	}
	if err := h(d.handlerCtx, in); err != nil {
		return &handlerError{err}
	}
	return nil
}

// handlerError marks an application handler's own error.
type handlerError struct{ error }

func (e *handlerError) Unwrap() error { return e.error }

// reportIncoming reports a server message that was not delivered: the
// server's fault, or the handler's.
func (d *Device) reportIncoming(topic string, err error) {
	rest, _ := strings.CutPrefix(topic, d.base+"/")
	name, path, _ := strings.Cut(rest, "/")
	e := &Error{Kind: ErrServerData, Interface: name, Path: "/" + path, Err: err, Op: "dropped invalid data from the server"}
	var h *handlerError
	if errors.As(err, &h) {
		e.Kind, e.Err, e.Op = ErrHandler, h.error, "handler returned an error"
	}
	if d.isClosed() && errors.Is(err, store.ErrClosed) {
		return
	}
	d.report(e)
}

// replay delivers every cached server property of info to its handler, as
// if it had just arrived (Handle after Connect).
func (d *Device) replay(info *ifaceInfo) {
	props, err := d.store.Properties(d.handlerCtx, info.Name)
	if err != nil {
		return
	}
	for _, p := range props {
		if p.Major != info.Major || p.Value == nil {
			continue
		}
		if err := d.dispatch(incoming{topic: d.base + "/" + info.Name + p.Path, payload: p.Value}); err != nil {
			d.reportIncoming(d.base+"/"+info.Name+p.Path, err)
		}
	}
}

// purgeServerProperties applies consumer/properties (spec §3.8): every
// cached server-owned property not listed is removed, and its handler gets
// an unset when the mapping allows unsetting.
func (d *Device) purgeServerProperties(payload []byte) error {
	entries, err := wire.DecodePurge(payload)
	if err != nil {
		return fmt.Errorf("consumer/properties: %w", err)
	}
	keep := make(map[string]bool, len(entries))
	for _, e := range entries {
		keep[e] = true
	}
	ctx := context.Background()
	for _, info := range d.ifaces().sorted {
		if info.Type != model.Properties || info.Ownership != model.OwnershipServer {
			continue
		}
		props, err := d.store.Properties(ctx, info.Name)
		if err != nil {
			return err
		}
		for _, p := range props {
			if p.Major == info.Major && keep[info.Name+p.Path] {
				continue
			}
			if err := d.store.DeleteProperty(ctx, p.PropertyKey); err != nil {
				return err
			}
			if p.Major != info.Major {
				continue
			}
			if err := d.deliverPurged(info, p.Path); err != nil {
				d.reportIncoming(d.base+"/"+info.Name+p.Path, err)
			}
		}
	}
	return nil
}

func (d *Device) deliverPurged(info *ifaceInfo, path string) error {
	match, err := info.Match(path)
	if err != nil || !info.Mappings[match.Index].AllowUnset {
		return err
	}
	return d.deliver(newIncoming(info, path, match, wire.Decoded{Unset: true}))
}
