package runtime

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	goruntime "runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/astarte-gen/astarte-gen/runtime/model"
	"github.com/astarte-gen/astarte-gen/runtime/store"
)

// rawMessage is an MQTT message as paho hands it to the device.
type rawMessage struct {
	topic   string
	payload []byte
}

func (m rawMessage) Duplicate() bool   { return false }
func (m rawMessage) Qos() byte         { return 2 }
func (m rawMessage) Retained() bool    { return false }
func (m rawMessage) Topic() string     { return m.topic }
func (m rawMessage) MessageID() uint16 { return 1 }
func (m rawMessage) Payload() []byte   { return m.payload }
func (m rawMessage) Ack()              {}

// TestIncomingQueueBoundedInBytes: while the dispatcher is held up (a
// slow handler), paho's router blocks once 4 MiB of payloads wait, not
// after 256 full payloads (a flood of large messages used to hold 256 of
// them).
func TestIncomingQueueBoundedInBytes(t *testing.T) {
	d := serverStreamDevice(t, model.BinaryBlob)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // before the device's Close
	d.handlers = map[string]HandlerFunc{"org.x.S": func(context.Context, *Incoming) error { <-release; return nil }}
	c := &conn{lost: make(chan struct{})}
	const size, flood = 64<<10 + 13, 100 // the largest binaryblob Astarte takes
	var handed atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range flood {
			d.enqueueIncoming(c, rawMessage{topic: "test/AJInS0w3VpWpuOqkXhgZdA/org.x.S/v", payload: blobPayload(size)})
			handed.Add(1)
		}
	}()
	want := int32(maxIncomingBytes/size) + 1 // and one in the handler
	waitUntil(t, func() bool { return handed.Load() >= want })
	time.Sleep(50 * time.Millisecond) // give a wrongly unbounded queue time to take more
	if n := handed.Load(); n != want || d.incoming.len()*size > maxIncomingBytes {
		t.Fatalf("%d messages of 64 KiB queued (%d in the queue); want the router blocked at %d", n, d.incoming.len(), want)
	}
	// The handler returning lets the dispatcher take one, and exactly one
	// more in.
	release <- struct{}{}
	waitUntil(t, func() bool { return handed.Load() == want+1 })
	// A lost connection releases the blocked router.
	c.markLost()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("router still blocked after the connection was lost")
	}
	if d.incoming.len()*size > maxIncomingBytes {
		t.Errorf("%d bytes queued after the flood", d.incoming.len()*size)
	}
}

// TestDispatcherRunsWhileMessagesWait: the dispatcher goroutine starts when
// a server message arrives and ends when none waits, so an idle device
// holds none; bursts before and after it ended are all handled, in arrival
// order, never two handlers at once; after Close none starts.
func TestDispatcherRunsWhileMessagesWait(t *testing.T) {
	d := serverStreamDevice(t, model.Double)
	var (
		mu      sync.Mutex
		got     []float64
		running atomic.Int32
		overlap atomic.Bool
	)
	d.handlers = map[string]HandlerFunc{}
	d.handlers["org.x.S"] = func(_ context.Context, in *Incoming) error {
		if running.Add(1) > 1 {
			overlap.Store(true)
		}
		defer running.Add(-1)
		time.Sleep(time.Duration(len(got)%3) * time.Microsecond) // let puts overtake
		mu.Lock()
		got = append(got, in.Value.Any().(float64))
		mu.Unlock()
		return nil
	}
	dispatching := func() bool {
		d.incoming.mu.Lock()
		defer d.incoming.mu.Unlock()
		return d.incoming.running
	}
	idle := goruntime.NumGoroutine()
	c := &conn{lost: make(chan struct{})}
	const burst = 200
	next := 0
	for round := range 3 {
		if dispatching() {
			t.Fatalf("round %d: a dispatcher runs with nothing queued", round)
		}
		for range burst {
			next++
			d.enqueueIncoming(c, rawMessage{topic: "test/AJInS0w3VpWpuOqkXhgZdA/org.x.S/v", payload: doublePayload(float64(next))})
		}
		waitUntil(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == next })
		waitUntil(t, func() bool { return !dispatching() && goruntime.NumGoroutine() <= idle })
	}
	if overlap.Load() {
		t.Error("two handlers ran at once")
	}
	for n, v := range got {
		if v != float64(n+1) {
			t.Fatalf("message %d handled as the %dth: not in arrival order", int(v), n+1)
		}
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	d.enqueueIncoming(c, rawMessage{topic: "test/AJInS0w3VpWpuOqkXhgZdA/org.x.S/v", payload: doublePayload(1)})
	if dispatching() {
		t.Error("a dispatcher started after Close")
	}
}

// blobPayload is the BSON document {v: binary}, size bytes in all.
func blobPayload(size int) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(size))
	b = append(b, 0x05, 'v', 0)
	b = binary.LittleEndian.AppendUint32(b, uint32(size-13))
	b = append(b, 0)
	return append(b, make([]byte, size-len(b))...)
}

// doublePayload is the BSON document {v: f}.
func doublePayload(f float64) []byte {
	b := []byte{16, 0, 0, 0, 0x01, 'v', 0}
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
	return append(b, 0)
}

// serverStreamDevice is a device, never connected, with one server-owned
// datastream org.x.S whose mapping /v has type vt.
func serverStreamDevice(t *testing.T, vt model.ValueType) *Device {
	t.Helper()
	iface := &model.Interface{Name: "org.x.S", Major: 1, Type: model.Datastream, Ownership: model.OwnershipServer, Mappings: []model.Mapping{{Endpoint: "/v", Type: vt}}}
	d, err := New(Config{Realm: "test", DeviceID: "AJInS0w3VpWpuOqkXhgZdA", PairingURL: "https://127.0.0.1:1/p", Store: store.NewMemory()}, iface)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	return d
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestForeignTopicRefused: a message on another device's topic (a broker
// that misroutes, or lies) is refused with the topic named, never
// delivered as this device's data.
func TestForeignTopicRefused(t *testing.T) {
	d := serverStreamDevice(t, model.Double)
	delivered := false
	d.handlers = map[string]HandlerFunc{"org.x.S": func(context.Context, *Incoming) error { delivered = true; return nil }}
	payload := []byte{0x10, 0, 0, 0, 0x01, 'v', 0, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f, 0}
	for _, topic := range []string{"test/dvt9mLDaWb2vW7bdBJwKCg/org.x.S/v", "other/AJInS0w3VpWpuOqkXhgZdA/org.x.S/v", "test/AJInS0w3VpWpuOqkXhgZdAx/org.x.S/v"} {
		if err := d.dispatch(incoming{topic: topic, payload: payload}); !errors.Is(err, ErrInvalidPath) || !strings.Contains(err.Error(), "outside test/AJInS0w3VpWpuOqkXhgZdA") {
			t.Errorf("dispatch(%s) = %v", topic, err)
		}
	}
	if err := d.dispatch(incoming{topic: "test/AJInS0w3VpWpuOqkXhgZdA/org.x.S/v", payload: payload}); err != nil || !delivered {
		t.Errorf("own topic: %v, delivered %v", err, delivered)
	}
}
