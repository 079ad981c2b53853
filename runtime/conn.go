package runtime

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/astarte-gen/astarte-gen/runtime/store"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// errConnLost completes the in-flight messages of a lost connection.
var errConnLost = errors.New("connection lost before acknowledgement")

// metaIntrospection is the store key of the last introspection fully synced.
const metaIntrospection = "introspection"

// conn is one MQTT connection. Each connection gets a fresh paho client:
// paho never completes the tokens of a lost persistent-session connection,
// and its own resend of in-flight packets would publish data before the
// introspection; the runtime's queues resend instead.
type conn struct {
	client         mqtt.Client
	sessionPresent bool
	lost           chan struct{}
	once           sync.Once
}

// markLost closes lost once.
func (c *conn) markLost() { c.once.Do(func() { close(c.lost) }) }

// close disconnects and marks the connection lost.
func (c *conn) close() {
	c.markLost()
	c.client.Disconnect(100)
}

// isLost reports whether the connection is gone.
func (c *conn) isLost() bool {
	select {
	case <-c.lost:
		return true
	default:
		return false
	}
}

// Connect pairs if needed, connects, and returns once the device is
// connected and synchronised (spec §3.11), or with the error. Transient
// failures (network, broker or Pairing API unavailable) are retried with
// jittered exponential backoff until ctx ends; permanent ones (wrong secret,
// device unknown, credentials inhibited) are returned at once. After a
// successful Connect the device reconnects by itself until Close.
func (d *Device) Connect(ctx context.Context) error {
	d.mu.Lock()
	switch {
	case d.state == Closed:
		d.mu.Unlock()
		return ErrClosed
	case d.started:
		d.mu.Unlock()
		return errors.New("astarte: Connect called twice")
	}
	d.started = true
	d.mu.Unlock()
	d.loops.Do(func() {
		d.wg.Add(2)
		go d.ackLoop()
		go d.dispatchLoop()
	})
	runCtx, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, cancel) // the first attempt obeys ctx
	go func() {
		select {
		case <-d.closing:
		case <-runCtx.Done():
		}
		cancel()
	}()
	ready := make(chan error, 1)
	d.wg.Add(1)
	go d.supervise(runCtx, ready)
	err := <-ready
	stop()
	if err != nil {
		cancel()
		d.mu.Lock()
		d.started = false // a later Connect may try again
		d.mu.Unlock()
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return err
}

// supervise keeps the device connected until ctx ends. The first outcome
// (synced, or a permanent error) goes to ready.
func (d *Device) supervise(ctx context.Context, ready chan<- error) {
	defer d.wg.Done()
	first := true
	for attempt := 0; ; attempt++ {
		c, err := d.connectOnce(ctx)
		if err == nil {
			attempt = -1
			if first {
				ready <- nil
				first = false
			}
			d.holdConnection(ctx, c)
			d.dropConn(c)
		} else if ctx.Err() == nil {
			if first && isPermanent(err) {
				ready <- err
				return
			}
			d.report("connection attempt failed", err, "attempt", attempt+1)
		}
		if ctx.Err() != nil {
			if first {
				ready <- ctx.Err()
			}
			return
		}
		d.setState(Disconnected)
		select {
		case <-time.After(d.backoff(attempt)):
		case <-ctx.Done():
		}
	}
}

// holdConnection waits until c is lost or ctx ends, renewing the
// certificate when it reaches the renewal point: the new certificate is
// used by the next connection, so c is closed once it is in hand. Queued
// data stays in the store and is resent on the new connection.
func (d *Device) holdConnection(ctx context.Context, c *conn) {
	for {
		var renew <-chan time.Time
		timer := time.NewTimer(0)
		timer.Stop()
		if at := d.creds.renewAt(); !at.IsZero() {
			timer.Reset(max(time.Until(at), 0))
			renew = timer.C
		}
		select {
		case <-c.lost:
			timer.Stop()
			return
		case <-ctx.Done():
			timer.Stop()
			return
		case <-renew:
			if err := d.creds.renew(ctx); err != nil {
				d.report("renewing the client certificate", err)
				select { // try again later, or when the connection drops
				case <-c.lost:
				case <-ctx.Done():
				case <-time.After(d.cfg.ReconnectMax):
				}
				if c.isLost() || ctx.Err() != nil {
					return
				}
				continue
			}
			d.log.Info("client certificate renewed; reconnecting with it")
			c.close()
			return
		}
	}
}

// backoff is the delay before attempt n+1: exponential from ReconnectMin,
// capped at ReconnectMax, with 50 % jitter so that a fleet disconnected at
// once does not come back at once.
func (d *Device) backoff(attempt int) time.Duration {
	delay := d.cfg.ReconnectMin
	for i := 0; i < attempt && delay < d.cfg.ReconnectMax; i++ {
		delay *= 2
	}
	delay = min(delay, d.cfg.ReconnectMax)
	return delay/2 + rand.N(delay/2+1)
}

// permanentError marks errors that retrying cannot fix.
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

func isPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p) || errors.Is(err, ErrConfig)
}

// connectOnce makes one connection attempt and synchronises it.
func (d *Device) connectOnce(ctx context.Context) (*conn, error) {
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
	d.mu.Lock()
	if d.state == Closed {
		d.mu.Unlock()
		c.close()
		return nil, ErrClosed
	}
	d.conn, d.synced = c, false
	d.backlog = backlog{}
	d.mu.Unlock()
	if err := d.sync(ctx, c); err != nil {
		c.close()
		d.dropConn(c)
		return nil, fmt.Errorf("sync: %w", err)
	}
	d.setState(Connected)
	d.wg.Add(1)
	go d.release(ctx, c)
	return c, nil
}

// dropConn forgets c if it is still the current connection.
func (d *Device) dropConn(c *conn) {
	c.markLost()
	d.mu.Lock()
	if d.conn == c {
		d.conn, d.synced = nil, false
		d.backlog = backlog{}
	}
	d.mu.Unlock()
}

// isRejection reports whether a connection error means the broker refused
// our identity (as opposed to being unreachable).
func isRejection(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		return true // a TLS alert from the broker: it refused our certificate
	}
	return errors.Is(err, packets.ErrorRefusedNotAuthorised) || errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword)
}

// dial opens a TLS MQTT connection with a persistent session.
func (d *Device) dial(ctx context.Context, cert tls.Certificate, broker string) (*conn, error) {
	u, err := url.Parse(broker)
	if err != nil {
		return nil, fmt.Errorf("broker URL %q: %w", broker, err)
	}
	c := &conn{lost: make(chan struct{})}
	opts := mqtt.NewClientOptions().
		AddBroker(broker).
		SetClientID(d.base).
		SetCleanSession(false).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetResumeSubs(false).
		SetKeepAlive(d.cfg.KeepAlive).
		SetConnectTimeout(30 * time.Second).
		SetOrderMatters(true).
		SetTLSConfig(&tls.Config{
			MinVersion:         tls.VersionTLS12,
			RootCAs:            d.cfg.RootCAs,
			InsecureSkipVerify: d.cfg.InsecureSkipVerify, //nolint:gosec // explicit opt-in for test instances
			ServerName:         u.Hostname(),
			Certificates:       []tls.Certificate{cert},
		}).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { d.enqueueIncoming(c, m) }).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			d.log.Info("connection lost", "err", err)
			c.markLost()
		})
	c.client = mqtt.NewClient(opts)
	tok := c.client.Connect()
	if err := waitToken(ctx, tok, nil); err != nil {
		c.client.Disconnect(0)
		return nil, fmt.Errorf("connect to %s: %w", broker, err)
	}
	c.sessionPresent = tok.(*mqtt.ConnectToken).SessionPresent()
	d.log.Info("connected", "broker", broker, "session_present", c.sessionPresent)
	return c, nil
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

// sync runs the connect sequence of spec §3.11. Without a session (or with
// a changed introspection): subscribe and wait for the SUBACK, publish the
// introspection, emptyCache, then the device properties and the
// producer/properties purge list. With a session: only the device
// properties changed while offline.
func (d *Device) sync(ctx context.Context, c *conn) error {
	last, _, err := d.store.Meta(ctx, metaIntrospection)
	if err != nil {
		return err
	}
	full := !c.sessionPresent || string(last) != d.introspection
	if full {
		if err := d.subscribe(ctx, c); err != nil {
			return err
		}
		if err := d.publishWait(ctx, c, d.base, []byte(d.introspection)); err != nil {
			return fmt.Errorf("introspection: %w", err)
		}
		if err := d.publishWait(ctx, c, d.base+"/control/emptyCache", []byte("1")); err != nil {
			return fmt.Errorf("emptyCache: %w", err)
		}
	}
	d.mu.Lock()
	d.synced = true
	d.mu.Unlock()
	if err := d.syncProperties(ctx, c, full); err != nil {
		return fmt.Errorf("device properties: %w", err)
	}
	if full {
		return d.store.PutMeta(ctx, metaIntrospection, []byte(d.introspection))
	}
	return nil
}

// subscribe subscribes to the server's purge lists and every server-owned
// interface (spec §3.3) and checks that the broker granted each filter.
func (d *Device) subscribe(ctx context.Context, c *conn) error {
	filters := map[string]byte{d.base + "/control/consumer/properties": 2}
	for _, i := range d.sorted {
		if i.Ownership == OwnershipServer {
			filters[d.base+"/"+i.Name+"/#"] = 2
		}
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

// publishWait publishes at QoS 2 and waits for completion (control
// messages of the sync).
func (d *Device) publishWait(ctx context.Context, c *conn, topic string, payload []byte) error {
	return waitToken(ctx, c.client.Publish(topic, 2, false, payload), c)
}

// syncProperties sends device-owned properties: after a full sync every set
// one, the purge list, and no pending unsets (the purge list removes them);
// otherwise the ones changed while offline.
func (d *Device) syncProperties(ctx context.Context, c *conn, full bool) error {
	var set []string
	for _, i := range d.sorted {
		if i.Type != Properties || i.Ownership != OwnershipDevice {
			continue
		}
		props, err := d.store.Properties(ctx, i.Name)
		if err != nil {
			return err
		}
		for _, p := range props {
			if p.Major != i.Major {
				continue
			}
			if p.Value != nil {
				set = append(set, i.Name+p.Path)
			}
			if full || p.Unsent {
				if err := d.resendProperty(ctx, c, p, full); err != nil {
					return err
				}
			}
		}
	}
	if !full {
		return nil
	}
	return d.publishWait(ctx, c, d.base+"/control/producer/properties", EncodePurge(set))
}

// resendProperty publishes a stored property (a value, or an unset for a
// tombstone) during a sync and settles the store when the broker
// acknowledges it.
func (d *Device) resendProperty(ctx context.Context, c *conn, p store.Property, full bool) error {
	if p.Value == nil && full {
		// The purge list sent after a full sync removes it on the server.
		d.propMu.Lock()
		defer d.propMu.Unlock()
		cur, ok, err := d.store.Property(ctx, p.PropertyKey)
		if err != nil || !ok || cur.Value != nil {
			return err // set again meanwhile: that set publishes itself
		}
		return d.store.DeleteProperty(ctx, p.PropertyKey)
	}
	topic := d.base + "/" + p.Interface + p.Path
	return d.publishTracked(ctx, c, topic, 2, p.Value, func(err error) { d.propertyAcked(p, err) })
}

// release sends what waited for the connection: the volatile queue, then
// the stored queue in order; afterwards sends publish directly.
func (d *Device) release(ctx context.Context, c *conn) {
	defer d.wg.Done()
	if err := d.drainVolatile(ctx, c); err != nil {
		if !c.isLost() && ctx.Err() == nil {
			d.report("resending volatile data", err)
		}
		return
	}
	if err := d.drainStored(ctx, c); err != nil && !c.isLost() && ctx.Err() == nil {
		d.report("resending stored data", err)
	}
}
