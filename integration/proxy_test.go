package integration

import (
	"net"
	"sync"
	"testing"
)

// proxy forwards TCP connections to a broker, so that a test can cut a
// device's connection the way a network does (mosquitto itself cannot be
// told to). TLS passes through untouched: the device still authenticates
// to mosquitto with its certificate.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	pairs  map[*pair]bool
	// cut, when set, ends the next connection that sends anything: before
	// forwarding that data (the broker never sees it) or after (the broker
	// handles it, its answer is lost).
	cut      bool
	cutAfter bool
	wg       sync.WaitGroup
}

// pair is one proxied connection.
type pair struct {
	client, upstream net.Conn
	once             sync.Once
}

func (p *pair) close() {
	p.once.Do(func() {
		p.client.Close()
		p.upstream.Close()
	})
}

// startProxy listens on a free local port and forwards to target.
func startProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, pairs: map[*pair]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close() // broker down: the client sees a refused connection
			continue
		}
		pr := &pair{client: c, upstream: up}
		p.mu.Lock()
		p.pairs[pr] = true
		p.mu.Unlock()
		p.wg.Add(2)
		go p.forward(pr, c, up, true)
		go p.forward(pr, up, c, false)
	}
}

// forward copies src to dst until either side ends or a cut applies.
func (p *proxy) forward(pr *pair, src, dst net.Conn, fromClient bool) {
	defer p.wg.Done()
	defer func() {
		pr.close()
		p.mu.Lock()
		delete(p.pairs, pr)
		p.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			cut, after := false, false
			if fromClient {
				p.mu.Lock()
				cut, after = p.cut, p.cutAfter
				p.cut = false
				p.mu.Unlock()
			}
			if !cut || after {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if cut {
				return
			}
		}
		if err != nil { // EOF, a reset or a cut: the pair ends either way
			return
		}
	}
}

// drop ends every proxied connection now.
func (p *proxy) drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pr := range p.pairs {
		pr.close()
	}
}

// cutNext ends the connection that next sends something, before or after
// forwarding it.
func (p *proxy) cutNext(after bool) {
	p.mu.Lock()
	p.cut, p.cutAfter = true, after
	p.mu.Unlock()
}

// close stops accepting and ends every connection.
func (p *proxy) close() {
	p.ln.Close()
	p.drop()
	p.wg.Wait()
}
