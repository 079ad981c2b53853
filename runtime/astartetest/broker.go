package astartetest

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// brokerSide is the MQTT half of Astarte: the broker and the server-side
// data handling. The per-device state outlives connections and broker
// restarts, as Astarte's database does; MQTT sessions live in the broker
// and are lost when it restarts.
type brokerSide struct {
	bmu    sync.Mutex
	server *mqtt.Server
	addr   string
	states map[string]*deviceState
	// waitTimeout bounds the Wait methods (wait.go).
	waitTimeout time.Duration
}

// maxRemainingLength is Astarte's limit on a device packet (spec §3.1).
const maxRemainingLength = 65535

func (a *Astarte) startBroker() error {
	a.bmu.Lock()
	defer a.bmu.Unlock()
	if a.states == nil {
		a.states = map[string]*deviceState{}
	}
	addr := a.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	caps := mqtt.NewDefaultServerCapabilities()
	// Astarte's broker refuses (closing the connection) packets whose
	// remaining length exceeds 65,535 bytes (spec §3.1); mochi counts one
	// byte more.
	caps.MaximumPacketSize = maxRemainingLength + 1
	server := mqtt.New(&mqtt.Options{InlineClient: true, Capabilities: caps, Logger: slog.New(slog.DiscardHandler)})
	if err := server.AddHook(&hook{a: a, server: server}, nil); err != nil {
		return fmt.Errorf("astartetest: broker hook: %w", err)
	}
	if err := server.AddHook(&faultHook{a: a}, nil); err != nil {
		return fmt.Errorf("astartetest: fault hook: %w", err)
	}
	l := newTLSListener("mqtts", addr, &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{a.ca.ServerCertificate()},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    a.ca.Pool(),
	})
	if err := server.AddListener(l); err != nil {
		return fmt.Errorf("astartetest: broker listener on %s: %w", addr, err)
	}
	// Serve starts the listener goroutines and returns; calling it here,
	// not in a goroutine, keeps a quick Close from racing it.
	if err := server.Serve(); err != nil {
		return fmt.Errorf("astartetest: broker: %w", err)
	}
	a.addr, a.server = l.Address(), server
	return nil
}

func (a *Astarte) stopBroker() {
	a.bmu.Lock()
	server := a.server
	a.server = nil
	a.bmu.Unlock()
	if server != nil {
		_ = server.Close()
	}
}

// BrokerURL returns the broker URL that the Pairing API hands out.
func (a *Astarte) BrokerURL() string {
	a.bmu.Lock()
	defer a.bmu.Unlock()
	return "mqtts://" + a.addr + "/"
}

// Addr returns the broker's host:port.
func (a *Astarte) Addr() string {
	a.bmu.Lock()
	defer a.bmu.Unlock()
	return a.addr
}

// StopBroker stops the broker, dropping every connection and MQTT session
// (Astarte's own state, such as introspections and properties, is kept).
func (a *Astarte) StopBroker() { a.stopBroker() }

// StartBroker starts the broker again on the same address.
func (a *Astarte) StartBroker() error { return a.startBroker() }

// hook connects the broker to the fake Astarte.
type hook struct {
	mqtt.HookBase
	a      *Astarte
	server *mqtt.Server // the server the hook is installed on
}

// ID names the hook.
func (h *hook) ID() string { return "astartetest" }

// Provides lists the hook methods implemented.
func (h *hook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnSessionEstablish,
		mqtt.OnSubscribed, mqtt.OnUnsubscribed, mqtt.OnPublish, mqtt.OnDisconnect, mqtt.OnPacketRead, mqtt.OnPacketSent,
	}, []byte{b})
}

// identity returns the CN and serial of the client certificate.
func identity(cl *mqtt.Client) (cn, serial string, ok bool) {
	conn, isTLS := cl.Net.Conn.(*tls.Conn)
	if !isTLS {
		return "", "", false
	}
	certs := conn.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return "", "", false
	}
	return certs[0].Subject.CommonName, certs[0].SerialNumber.String(), true
}

// OnConnectAuthenticate accepts a device whose certificate CN names this
// realm and a registered device with its current certificate. As in
// Astarte, the identity is the CN, whatever client id the device sent
// (Astarte's Python SDK sends an empty one): the client id is replaced by
// the CN, so the MQTT session, the ACL and the fake's records all follow
// the identity and no device can take over another's session.
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, _ packets.Packet) bool {
	cn, serial, ok := identity(cl)
	realm, id, found := strings.Cut(cn, "/")
	if !ok || !found || realm != h.a.realm || id == "" || strings.ContainsAny(id, "/+#") {
		return false
	}
	if err := h.a.brokerAllows(id, serial); err != nil {
		h.a.state(id).record("refused " + err.Error())
		return false
	}
	if cl.Properties.Props.AssignedClientID != "" {
		cl.Properties.Props.AssignedClientID = cn // MQTT 5 only; Astarte speaks 3.1.1
	}
	cl.ID = cn
	cl.Properties.Username = []byte(cn)
	return true
}

// OnACLCheck lets a device use only its own topics.
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, _ bool) bool {
	cn := string(cl.Properties.Username)
	return cn != "" && (topic == cn || strings.HasPrefix(topic, cn+"/"))
}

// OnSessionEstablish drops the session when the server asked for a clean
// one (forced disconnect, ClearSession), before the broker looks it up.
func (h *hook) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	st := h.a.state(deviceOf(cl))
	st.mu.Lock()
	clear := st.clearSession
	st.clearSession = false
	st.client = cl
	st.connections++
	st.notify() // WaitConnections
	st.mu.Unlock()
	if clear {
		if old, ok := h.server.Clients.Get(cl.ID); ok {
			old.ClearInflights()
			h.server.UnsubscribeClient(old)
			h.server.Clients.Delete(cl.ID)
		}
	}
}

// OnPacketSent starts a new session number when the broker's CONNACK says
// the session is not present: the device must then treat every flow it
// had as lost. (Numbering from the CONNACK, not from the fake's own guess,
// keeps "delivered twice within one session" exact when a takeover races.)
func (h *hook) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	if pk.FixedHeader.Type != packets.Connack || pk.SessionPresent || cl.Net.Inline {
		return
	}
	st := h.a.state(deviceOf(cl))
	st.mu.Lock()
	st.sessions++
	st.awaitingRelease, st.released = map[uint16]string{}, map[uint16]string{}
	st.mu.Unlock()
}

// OnSubscribed records granted subscriptions.
func (h *hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	st := h.a.state(deviceOf(cl))
	for i, f := range pk.Filters {
		if i < len(codes) && codes[i] < 0x80 {
			st.record("subscribe " + strings.TrimPrefix(f.Filter, string(cl.Properties.Username)+"/"))
		}
	}
}

// OnUnsubscribed records removed subscriptions.
func (h *hook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	st := h.a.state(deviceOf(cl))
	for _, f := range pk.Filters {
		st.record("unsubscribe " + strings.TrimPrefix(f.Filter, string(cl.Properties.Username)+"/"))
	}
}

// OnDisconnect forgets the device's live connection.
func (h *hook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	st := h.a.state(deviceOf(cl))
	st.mu.Lock()
	if st.client == cl {
		st.client = nil
	}
	st.mu.Unlock()
}

// OnPublish runs Astarte's handling of what a device publishes, before the
// broker acknowledges it. Invalid data is dropped unacknowledged and, as
// Astarte does, the device is disconnected and its session discarded.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	id := deviceOf(cl)
	if h.a.state(id).repeated(pk) {
		return pk, nil // acknowledged again, not received again
	}
	rest := strings.TrimPrefix(strings.TrimPrefix(pk.TopicName, string(cl.Properties.Username)), "/")
	errName, err := h.a.receive(id, rest, pk.Payload, pk.FixedHeader.Qos)
	if errName == "" {
		return pk, nil
	}
	st := h.a.state(id)
	st.record("error " + errName)
	st.mu.Lock()
	st.errors = append(st.errors, errName)
	disconnect := errName != "unset_on_datastream"
	if disconnect {
		st.clearSession = true
	}
	st.mu.Unlock()
	if disconnect {
		cl.Stop(fmt.Errorf("astartetest: %s: %w", errName, err))
	}
	return pk, packets.ErrRejectPacket
}

// OnPacketRead completes a QoS 2 flow when its PUBREL arrives.
func (h *hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type == packets.Pubrel && !cl.Net.Inline {
		st := h.a.state(deviceOf(cl))
		st.mu.Lock()
		st.pubrels++
		st.released[pk.PacketID] = st.awaitingRelease[pk.PacketID]
		delete(st.awaitingRelease, pk.PacketID)
		st.mu.Unlock()
	}
	return pk, nil
}

// repeated reports whether pk is a resend (DUP) of a QoS 2 PUBLISH the
// device already delivered in this session: one not released yet, or the
// one just released under the same packet ID. Astarte's broker delivers
// such a message once. mochi alone does not: its inflight state can miss a
// message when a session is taken over while the old connection is still
// being processed, and it resends PUBREC on resumption, so that a client
// may release a message before its own resend of it arrives. The fake
// therefore keeps its own record of the session's QoS 2 flows.
func (st *deviceState) repeated(pk packets.Packet) bool {
	if pk.FixedHeader.Qos != 2 {
		return false
	}
	msg := pk.TopicName + "\x00" + string(pk.Payload)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.awaitingRelease == nil {
		st.awaitingRelease, st.released = map[uint16]string{}, map[uint16]string{}
	}
	if prev, ok := st.awaitingRelease[pk.PacketID]; ok && prev == msg {
		// A resend, or the original still being processed by a connection
		// the device already replaced.
		return true
	}
	if pk.FixedHeader.Dup && st.released[pk.PacketID] == msg {
		return true
	}
	st.awaitingRelease[pk.PacketID] = msg
	return false
}

// deviceOf returns the device ID of an authenticated client.
func deviceOf(cl *mqtt.Client) string {
	_, id, _ := strings.Cut(string(cl.Properties.Username), "/")
	return id
}

// publish sends a server message to a device.
func (a *Astarte) publish(deviceID, suffix string, payload []byte, qos byte) error {
	a.bmu.Lock()
	server := a.server
	a.bmu.Unlock()
	if server == nil {
		return errors.New("broker stopped")
	}
	topic := a.realm + "/" + deviceID
	if suffix != "" {
		topic += "/" + suffix
	}
	return server.Publish(topic, payload, false, qos)
}

// subscribed reports whether the device holds a subscription matching topic.
func (a *Astarte) subscribed(deviceID, topic string) bool {
	a.bmu.Lock()
	server := a.server
	a.bmu.Unlock()
	if server == nil {
		return false
	}
	_, ok := server.Topics.Subscribers(topic).Subscriptions[a.realm+"/"+deviceID]
	return ok
}

// DropConnection closes a device's network connection; its session stays.
func (a *Astarte) DropConnection(deviceID string) {
	st := a.state(deviceID)
	st.mu.Lock()
	cl := st.client
	st.mu.Unlock()
	if cl != nil {
		cl.Stop(errors.New("astartetest: connection dropped"))
	}
}

// ClearSession makes the broker forget a device's session at its next
// connection, so that CONNACK says session present = false.
func (a *Astarte) ClearSession(deviceID string) {
	st := a.state(deviceID)
	st.mu.Lock()
	st.clearSession = true
	st.mu.Unlock()
}
