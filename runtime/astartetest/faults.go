package astartetest

import (
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Packet types for DropOnPacket (MQTT control packet types).
const (
	PacketPublish byte = packets.Publish
	PacketPubrel  byte = packets.Pubrel
	PacketPuback  byte = packets.Puback
	PacketPubrec  byte = packets.Pubrec
)

// faults is the fault-injection state: which devices lose their connection
// on which packet. The broker's session is kept, as for DropConnection.
type faults struct {
	mu    sync.Mutex
	drops map[string]*dropRule // by device ID
}

// dropRule drops a device's connection at the first packet of a type on
// each connection, a number of times.
type dropRule struct {
	kind      byte
	remaining int
	tripped   *mqtt.Client // the connection already dropped by this rule
}

// DropOnPacket makes the broker drop the device's connection when it reads
// the first packet of type kind (PacketPubrel, PacketPublish, …) on a
// connection, before acting on it; it does so on the next times
// connections, then stops. The device keeps its MQTT session. It tests a
// client's QoS 2 state across reconnections: dropping at PUBREL leaves the
// broker holding a message the client must release, not send again.
func (a *Astarte) DropOnPacket(deviceID string, kind byte, times int) {
	a.faults.mu.Lock()
	defer a.faults.mu.Unlock()
	if a.faults.drops == nil {
		a.faults.drops = map[string]*dropRule{}
	}
	a.faults.drops[deviceID] = &dropRule{kind: kind, remaining: times}
}

// faultHook applies the fault-injection rules.
type faultHook struct {
	mqtt.HookBase
	a *Astarte
}

// ID names the hook.
func (h *faultHook) ID() string { return "astartetest-faults" }

// Provides lists the hook methods implemented.
func (h *faultHook) Provides(b byte) bool { return b == mqtt.OnPacketRead }

// OnPacketRead refuses the packet a drop rule names, which makes the broker
// close the connection without processing it.
func (h *faultHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	f := &h.a.faults
	f.mu.Lock()
	defer f.mu.Unlock()
	rule := f.drops[deviceOf(cl)]
	if rule == nil || rule.remaining == 0 || pk.FixedHeader.Type != rule.kind || rule.tripped == cl {
		return pk, nil
	}
	rule.remaining--
	rule.tripped = cl
	h.a.state(deviceOf(cl)).record("dropped at packet type " + packets.PacketNames[pk.FixedHeader.Type])
	return pk, packets.ErrRejectPacket
}
