package runtime

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/astarte-gen/astarte-gen/internal/wire"
	"github.com/astarte-gen/astarte-gen/runtime/model"
	"github.com/astarte-gen/astarte-gen/runtime/store"
)

// errConnLost ends waits on a connection that went away.
var errConnLost = errors.New("connection lost")

// metaIntrospection is the store key of the last introspection fully synced.
const metaIntrospection = "introspection"

// conn is one MQTT connection: a paho client that lives as long as the
// connection, over a TLS connection the device dialled itself. The session
// state it uses (packet identifiers, unacknowledged packets) belongs to the
// device and carries over to the next conn.
type conn struct {
	client         mqtt.Client
	view           *sessionView
	sessionPresent bool
	lost           chan struct{} // closed once the connection is gone
	once           sync.Once
	// reqs feeds the connection's writer goroutine; the owner loop is its
	// only producer and closes it when it is done with the connection.
	reqs       writeQueue
	writerDone chan struct{}
	// direct lets the writer take discard messages straight from the
	// senders (Device.discards), saving the hop through the owner loop;
	// the owner turns it off while it probes and before it ends c.
	direct atomic.Bool
	// wake wakes the writer: a request was queued, the queue closed, or
	// acknowledgements opened the window.
	wake chan struct{}
	// ended says the device itself ended the connection (renewal, a stuck
	// write, Close) rather than the broker or the network.
	ended atomic.Bool
	// cause is why the connection ended, for Status.
	causeMu sync.Mutex
	cause   error
}

// setCause records why the connection ended, unless it is known already.
func (c *conn) setCause(err error) {
	c.causeMu.Lock()
	if c.cause == nil {
		c.cause = err
	}
	c.causeMu.Unlock()
}

// lostCause returns why the connection ended (nil: the device ended it,
// or it is still up).
func (c *conn) lostCause() error {
	c.causeMu.Lock()
	defer c.causeMu.Unlock()
	return c.cause
}

// markLost closes lost once.
func (c *conn) markLost() { c.once.Do(func() { close(c.lost) }) }

// isLost reports whether the connection is gone.
func (c *conn) isLost() bool {
	select {
	case <-c.lost:
		return true
	default:
		return false
	}
}

// close disconnects (waiting for paho's goroutines to stop) and marks the
// connection lost.
func (c *conn) close() {
	c.client.Disconnect(50)
	c.markLost()
}

// end closes the connection on the device's own initiative.
func (c *conn) end() {
	c.ended.Store(true)
	c.close()
}

// dial opens a TLS connection to the broker and an MQTT session on it
// (clean session false), bounded by ctx. The CONNACK's session-present
// flag is read as it arrives: when the broker lost the session, the
// device's session state is cleared before paho would replay it.
func (d *Device) dial(ctx context.Context, cert tls.Certificate, broker string) (*conn, error) {
	u, err := url.Parse(broker)
	if err != nil {
		return nil, permanentError{fmt.Errorf("%w: broker URL %q: %w", ErrConfig, broker, err)}
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "8883")
	}
	dialer := &tls.Dialer{NetDialer: &net.Dialer{}, Config: &tls.Config{
		MinVersion:         tls.VersionTLS12,
		RootCAs:            d.cfg.RootCAs,
		InsecureSkipVerify: d.cfg.InsecureSkipVerify, //nolint:gosec // explicit opt-in for test instances
		ServerName:         u.Hostname(),
		Certificates:       []tls.Certificate{cert},
	}}
	raw, err := dialer.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", broker, err)
	}
	view := d.session.view()
	c := &conn{lost: make(chan struct{}), view: view, writerDone: make(chan struct{}), wake: make(chan struct{}, 1)}
	watched := &watchConn{Conn: raw, onConnack: func(present bool) {
		c.sessionPresent = present
		if !present {
			d.session.lost()
		}
	}, onPubrec: view.received}
	handed := false
	opts := mqtt.NewClientOptions().
		AddBroker(broker).
		SetClientID(d.base).
		SetProtocolVersion(4).
		SetCleanSession(false).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetResumeSubs(false).
		SetKeepAlive(d.cfg.KeepAlive).
		SetConnectTimeout(connectTimeout(ctx)).
		SetWriteTimeout(d.cfg.WriteTimeout).
		SetOrderMatters(true).
		SetStore(view).
		SetCustomOpenConnectionFn(func(*url.URL, mqtt.ClientOptions) (net.Conn, error) {
			if handed { // paho must not dial again on its own
				return nil, errors.New("astarte: connection already used")
			}
			handed = true
			return watched, nil
		}).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { d.enqueueIncoming(c, m) }).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			d.log.Info("connection lost", "err", err)
			c.setCause(err)
			c.markLost()
		})
	c.client = mqtt.NewClient(opts)
	tok := c.client.Connect()
	if err := waitToken(ctx, tok, nil); err != nil {
		c.client.Disconnect(0)
		_ = raw.Close()
		return nil, fmt.Errorf("connect to %s: %w", broker, err)
	}
	d.log.Info("connected", "broker", broker, "session_present", c.sessionPresent)
	return c, nil
}

// connectTimeout bounds the MQTT handshake by ctx (paho has no context).
func connectTimeout(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return max(time.Until(dl), time.Millisecond)
	}
	return 30 * time.Second
}

// watchConn reads the MQTT packets the broker sends as paho reads them,
// for two facts paho does not keep: the CONNACK's session-present flag
// (when the broker lost the session, the device's session state is
// cleared before paho would replay it), and each PUBREC (paho v1.5 does not
// record that a QoS 2 flow reached PUBREL, so after a reconnection it would
// send the PUBLISH again, which a broker that completed the flow delivers
// twice). Read runs on paho's reading goroutine only.
type watchConn struct {
	net.Conn
	onConnack func(sessionPresent bool)
	onPubrec  func(id uint16)

	stage  int // 0 fixed header, 1 remaining length, 2 body
	kind   byte
	length int
	shift  int
	got    int
	head   [2]byte // the first body bytes: flags and code, or packet ID
}

// Read implements net.Conn.
func (w *watchConn) Read(p []byte) (int, error) {
	n, err := w.Conn.Read(p)
	for b := p[:n]; len(b) > 0; {
		b = w.feed(b)
	}
	return n, err
}

// feed advances the packet parser over b and returns what it did not use.
func (w *watchConn) feed(b []byte) []byte {
	switch w.stage {
	case 0:
		w.kind, w.length, w.shift, w.got, w.stage = b[0]>>4, 0, 0, 0, 1
		return b[1:]
	case 1:
		w.length |= int(b[0]&0x7f) << w.shift
		w.shift += 7
		if b[0]&0x80 == 0 {
			w.stage = 2
			if w.length == 0 {
				w.packet()
			}
		}
		return b[1:]
	}
	take := min(len(b), w.length-w.got)
	for i := 0; i < take && w.got+i < len(w.head); i++ {
		w.head[w.got+i] = b[i]
	}
	w.got += take
	if w.got == w.length {
		w.packet()
	}
	return b[take:]
}

// packet acts on a complete packet.
func (w *watchConn) packet() {
	w.stage = 0
	if w.length < 2 {
		return
	}
	switch w.kind {
	case packets.Connack:
		if w.head[1] == packets.Accepted {
			w.onConnack(w.head[0]&1 == 1)
		}
	case packets.Pubrec:
		w.onPubrec(uint16(w.head[0])<<8 | uint16(w.head[1]))
	}
}

// waitToken waits for a paho token, the context, or the loss of c (if any).
func waitToken(ctx context.Context, tok mqtt.Token, c *conn) error {
	var lost chan struct{}
	if c != nil {
		lost = c.lost
	}
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-lost:
		return errConnLost
	}
}

// isRejection reports whether a connection error means the broker refused
// our identity (as opposed to being unreachable).
func isRejection(err error) bool {
	var alert tls.AlertError
	if errors.As(err, &alert) {
		return true // a TLS alert from the broker: it refused our certificate
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		return true
	}
	return errors.Is(err, packets.ErrorRefusedNotAuthorised) || errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword)
}

// sync runs the connect sequence of spec §3.11. Without a session (or with
// a changed introspection): subscribe and wait for the SUBACK, publish the
// introspection, emptyCache, the producer/properties purge list, and mark
// every device property to be resent. With a session: mark only the
// properties changed while offline. The owner loop sends marked properties
// right after.
func (d *Device) sync(ctx context.Context, c *conn) error {
	last, _, err := d.store.Meta(ctx, metaIntrospection)
	if err != nil {
		return err
	}
	reg := d.ifaces()
	full := !c.sessionPresent || string(last) != reg.introspection
	if full {
		if err := d.subscribe(ctx, c, reg.serverFilters(d.base)); err != nil {
			return err
		}
		if err := d.publishWait(ctx, c, d.base, []byte(reg.introspection)); err != nil {
			return fmt.Errorf("introspection: %w", err)
		}
		if err := d.publishWait(ctx, c, d.base+"/control/emptyCache", []byte("1")); err != nil {
			return fmt.Errorf("emptyCache: %w", err)
		}
	}
	set, err := d.markProperties(ctx, reg, full)
	if err != nil {
		return fmt.Errorf("device properties: %w", err)
	}
	if !full {
		return nil
	}
	if err := d.publishWait(ctx, c, d.base+"/control/producer/properties", wire.EncodePurge(set)); err != nil {
		return fmt.Errorf("producer/properties: %w", err)
	}
	return d.store.PutMeta(ctx, metaIntrospection, []byte(reg.introspection))
}

// subscribe subscribes to the given filters (at QoS 2) and checks that the
// broker granted each one.
func (d *Device) subscribe(ctx context.Context, c *conn, topics []string) error {
	if len(topics) == 0 {
		return nil
	}
	filters := make(map[string]byte, len(topics))
	for _, f := range topics {
		filters[f] = 2
	}
	tok := c.client.SubscribeMultiple(filters, nil)
	if err := waitToken(ctx, tok, c); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	for f, q := range tok.(*mqtt.SubscribeToken).Result() {
		if q == 0x80 {
			return fmt.Errorf("subscribe: broker refused %s", f)
		}
	}
	return nil
}

// publishWait publishes a control message at QoS 2 through the writer and
// waits for its completion.
func (d *Device) publishWait(ctx context.Context, c *conn, topic string, payload []byte) error {
	result := make(chan mqtt.Token, 1)
	d.busy.Add(1)
	if !d.write(ctx, c, writeReq{out: outbound{topic: topic, qos: 2, payload: payload}, result: result}) {
		return errConnLost
	}
	select {
	case tok := <-result:
		if tok == nil {
			return errConnLost
		}
		return waitToken(ctx, tok, c)
	case <-ctx.Done():
		return ctx.Err()
	case <-c.lost:
		return errConnLost
	}
}

// markProperties marks device-owned properties for the owner loop to send:
// after a full sync every set one (pending unsets are dropped: the purge
// list removes them), otherwise the ones changed while offline. It returns
// the paths of every set property, for the purge list.
func (d *Device) markProperties(ctx context.Context, reg *registry, full bool) ([]string, error) {
	var set []string
	for _, i := range reg.sorted {
		if i.Type != model.Properties || i.Ownership != model.OwnershipDevice {
			continue
		}
		props, err := d.store.Properties(ctx, i.Name)
		if err != nil {
			return nil, err
		}
		for _, p := range props {
			if p.Major != i.Major {
				continue
			}
			if p.Value != nil {
				set = append(set, i.Name+p.Path)
			}
			switch {
			case p.Value == nil && full:
				if err := d.dropTombstone(ctx, p.PropertyKey); err != nil {
					return nil, err
				}
			case full || p.Unsent:
				d.markDirty(p.PropertyKey, full)
			}
		}
	}
	return set, nil
}

// dropTombstone deletes a pending unset that a full sync's purge list
// makes unnecessary, unless the property was set again meanwhile.
func (d *Device) dropTombstone(ctx context.Context, k store.PropertyKey) error {
	d.propMu.Lock()
	defer d.propMu.Unlock()
	cur, ok, err := d.store.Property(ctx, k)
	if err != nil || !ok || cur.Value != nil {
		return err
	}
	return d.store.DeleteProperty(ctx, k)
}
