package astartetest

import (
	"crypto/tls"
	"log/slog"
	"net"
	"sync"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// tlsListener is the broker's listener. It replaces mochi's TCP listener
// to make shutdown race-free: mochi v2.7.9 starts each connection in a
// goroutine that calls WaitGroup.Add while Server.Close may already be in
// WaitGroup.Wait (a data race that go test -race reports). This listener
// tracks its connection goroutines and, on Close, stops accepting, ends
// every connection and waits for those goroutines, so mochi's Wait starts
// only after its last Add.
type tlsListener struct {
	id      string
	address string
	config  *tls.Config

	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup // one per connection goroutine
}

func newTLSListener(id, address string, config *tls.Config) *tlsListener {
	return &tlsListener{id: id, address: address, config: config, conns: map[net.Conn]struct{}{}}
}

// ID returns the listener id.
func (l *tlsListener) ID() string { return l.id }

// Protocol names the transport.
func (l *tlsListener) Protocol() string { return "tcp" }

// Address returns the bound address (the real port after Init).
func (l *tlsListener) Address() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.address
}

// Init opens the socket.
func (l *tlsListener) Init(*slog.Logger) error {
	ln, err := tls.Listen("tcp", l.address, l.config)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.ln = ln
	l.mu.Unlock()
	return nil
}

// Serve accepts connections until Close and hands each one to establish
// in a tracked goroutine.
func (l *tlsListener) Serve(establish listeners.EstablishFn) {
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			_ = conn.Close()
			return
		}
		l.conns[conn] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go func() {
			defer l.wg.Done()
			_ = establish(l.id, conn) // errors are the client's: bad handshake, refused CONNECT
			l.mu.Lock()
			delete(l.conns, conn)
			l.mu.Unlock()
		}()
	}
}

// Close stops accepting, disconnects the clients (closeClients is the
// server's), closes what is left and waits for every connection goroutine.
func (l *tlsListener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	if l.ln != nil {
		_ = l.ln.Close()
	}
	l.mu.Unlock()
	closeClients(l.id)
	l.mu.Lock()
	for conn := range l.conns {
		_ = conn.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
}
