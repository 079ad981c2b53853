package runtime

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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

// TestIncomingQueueBoundedInBytes: while the dispatch loop is held up (a
// slow handler), paho's router blocks once 4 MiB of payloads wait, not
// after 256 full payloads (a flood of 1 MB messages used to hold 256 MB).
func TestIncomingQueueBoundedInBytes(t *testing.T) {
	d := serverStreamDevice(t, BinaryBlob)
	c := &conn{lost: make(chan struct{})}
	const size, flood = 1 << 20, 40
	var handed atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range flood {
			d.enqueueIncoming(c, rawMessage{topic: "test/AJInS0w3VpWpuOqkXhgZdA/org.x.S/v", payload: make([]byte, size)})
			handed.Add(1)
		}
	}()
	want := int32(maxIncomingBytes / size)
	waitUntil(t, func() bool { return handed.Load() >= want })
	time.Sleep(50 * time.Millisecond) // give a wrongly unbounded queue time to take more
	if n := handed.Load(); n != want || d.incoming.len()*size > maxIncomingBytes {
		t.Fatalf("%d messages of 1 MiB queued (%d in the queue); want the router blocked at %d", n, d.incoming.len(), want)
	}
	// The dispatch loop taking one lets exactly one more in.
	d.incoming.take()
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

// serverStreamDevice is a device, never connected, with one server-owned
// datastream org.x.S whose mapping /v has type vt.
func serverStreamDevice(t *testing.T, vt ValueType) *Device {
	t.Helper()
	iface := &Interface{Name: "org.x.S", Major: 1, Type: Datastream, Ownership: OwnershipServer, Mappings: []Mapping{{Endpoint: "/v", Type: vt}}}
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
	d := serverStreamDevice(t, Double)
	delivered := false
	d.handlers["org.x.S"] = func(context.Context, *Incoming) error { delivered = true; return nil }
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
