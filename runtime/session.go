package runtime

import (
	"cmp"
	"slices"
	"strings"
	"sync"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/astarte-gen/astarte-gen/runtime/store"
)

// recordKind says what an acknowledgement settles.
type recordKind uint8

const (
	recStored   recordKind = iota + 1 // remove the message from the stored queue
	recVolatile                       // nothing to settle; requeued if the session is lost
	recProperty                       // clear the property's "unsent" mark
	recDiscard                        // nothing to settle; dropped if the session is lost
)

// record is a QoS 1 or 2 message handed to the MQTT session, and what to do
// once the broker acknowledges it.
type record struct {
	kind     recordKind
	storedID uint64 // recStored
	// iface and path name a stored message in reports.
	iface, path string
	volatile    volatileMsg    // recVolatile
	prop        store.Property // recProperty
}

// session is the device's MQTT session state on the client side: every
// outbound QoS 1/2 packet the broker has not acknowledged yet (and inbound
// QoS 2 packets awaiting PUBREL), keyed as paho keys them. It outlives
// connections, so that a reconnect with a persistent session resumes the
// same packet identifiers: each new paho client replays it (PUBLISH with
// DUP, PUBREL) before anything else, as MQTT requires. When the broker says
// the session is gone, it is cleared and its records go back to the owner
// loop (orphans), which requeues what its retention says to keep.
//
// paho calls it through a view (one per connection); a view that is no
// longer current cannot add entries, and can remove only entries that
// existed in its time, so nothing an old connection does late touches the
// state of a newer one.
type session struct {
	mu      sync.Mutex
	gen     uint64
	seq     uint64
	entries map[string]*entry
	// next is the record for the PUBLISH the owner loop is handing to paho
	// right now; Put attaches it to that packet's entry.
	next    *record
	acked   []*record // acknowledged, not yet settled by the owner
	orphans []*record // the broker lost the session: to be requeued
	pending int       // entries holding a record
	signal  chan struct{}
}

type entry struct {
	seq uint64 // insertion order: resume replays in it
	gen uint64 // the view that created it
	pkt packets.ControlPacket
	rec *record
}

func newSession() *session {
	return &session{entries: map[string]*entry{}, signal: make(chan struct{}, 1)}
}

// view returns the store for a new connection's paho client; older views
// lose the right to add entries.
func (s *session) view() *sessionView {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	return &sessionView{s: s, gen: s.gen}
}

// lost clears the session after the broker reported it gone: its records
// become orphans, to be requeued by the owner loop.
func (s *session) lost() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.entries {
		if e.rec != nil {
			s.orphans = append(s.orphans, e.rec)
		}
	}
	s.entries = map[string]*entry{}
	s.pending = 0
}

// hand runs publish with rec as the record of the PUBLISH it persists; it
// reports whether paho took the packet into the session (false: it was
// refused before that, e.g. not connected, and rec is the caller's again).
func (s *session) hand(rec *record, publish func()) bool {
	s.mu.Lock()
	s.next = rec
	s.mu.Unlock()
	publish()
	s.mu.Lock()
	defer s.mu.Unlock()
	taken := s.next == nil
	s.next = nil
	return taken
}

// settled queues rec as done without a broker acknowledgement (QoS 0).
func (s *session) settled(rec *record) {
	s.mu.Lock()
	s.acked = append(s.acked, rec)
	s.mu.Unlock()
	s.notify()
}

// take returns the acknowledged and orphaned records since the last call.
func (s *session) take() (acked, orphans []*record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	acked, orphans = s.acked, s.orphans
	s.acked, s.orphans = nil, nil
	return acked, orphans
}

// inFlight returns how many handed records await their acknowledgement.
func (s *session) inFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending
}

// oldestUnreceivedStored returns the record of the oldest outbound packet
// of the session when that packet is a stored message's PUBLISH the broker
// has not acknowledged receiving (no PUBACK, no PUBREC): everything sent
// before it was completed, so when the broker then drops the connection
// and discards the session, that message is the likely cause. Otherwise it
// returns nil.
func (s *session) oldestUnreceivedStored() *record {
	s.mu.Lock()
	defer s.mu.Unlock()
	var oldest *entry
	for k, e := range s.entries {
		if strings.HasPrefix(k, "o.") && (oldest == nil || e.seq < oldest.seq) {
			oldest = e
		}
	}
	if oldest == nil || oldest.rec == nil || oldest.rec.kind != recStored {
		return nil
	}
	if _, isPublish := oldest.pkt.(*packets.PublishPacket); !isPublish {
		return nil
	}
	return oldest.rec
}

func (s *session) notify() {
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

// sessionView is the mqtt.Store of one connection.
type sessionView struct {
	s   *session
	gen uint64
}

var _ mqtt.Store = (*sessionView)(nil)

// Open implements mqtt.Store; the session lives as long as the device.
func (v *sessionView) Open() {}

// Close implements mqtt.Store.
func (v *sessionView) Close() {}

// Reset implements mqtt.Store; paho calls it only for clean sessions, which
// the device never asks for.
func (v *sessionView) Reset() {}

// Put implements mqtt.Store.
func (v *sessionView) Put(key string, pkt packets.ControlPacket) {
	s := v.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if v.gen != s.gen {
		return
	}
	e, ok := s.entries[key]
	if !ok {
		s.seq++
		e = &entry{seq: s.seq, gen: v.gen}
		s.entries[key] = e
		if _, isPublish := pkt.(*packets.PublishPacket); isPublish && s.next != nil && strings.HasPrefix(key, "o.") {
			e.rec, s.next = s.next, nil
			s.pending++
		}
	}
	e.pkt = pkt
}

// Get implements mqtt.Store.
func (v *sessionView) Get(key string) packets.ControlPacket {
	s := v.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.entries[key]; ok && v.gen == s.gen {
		return e.pkt
	}
	return nil
}

// All implements mqtt.Store, in insertion order so that a resumed session
// replays packets in the order they were first sent.
func (v *sessionView) All() []string {
	s := v.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if v.gen != s.gen {
		return nil
	}
	keys := make([]string, 0, len(s.entries))
	for k := range s.entries {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return cmp.Compare(s.entries[a].seq, s.entries[b].seq) })
	return keys
}

// Del implements mqtt.Store: for an outbound key, the broker completed the
// flow (PUBACK, PUBCOMP, SUBACK).
func (v *sessionView) Del(key string) {
	s := v.s
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[key]
	if !ok || e.gen > v.gen {
		return
	}
	delete(s.entries, key)
	if e.rec != nil {
		s.pending--
		s.acked = append(s.acked, e.rec)
		s.notify()
	}
}
