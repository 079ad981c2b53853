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
	mu  sync.Mutex
	gen uint64
	seq uint64
	// entries and stored are nil while empty (an idle device holds
	// neither): put and mark make them, del and unmark let them go.
	entries map[string]*entry
	acked   []*record // acknowledged, not yet settled by the owner
	orphans []*record // the broker lost the session, or never took them: to be requeued
	pending int       // entries holding a record
	// stored holds the IDs of stored messages on their way to the session
	// or with a flow in it, which the owner loop must not publish again.
	stored map[uint64]bool
	signal chan struct{}
}

type entry struct {
	seq uint64 // insertion order: resume replays in it
	gen uint64 // the view that created it
	pkt packets.ControlPacket
	rec *record
}

func newSession() *session {
	return &session{signal: make(chan struct{}, 1)}
}

// put adds an entry; s.mu must be held.
func (s *session) put(key string, e *entry) {
	if s.entries == nil {
		s.entries = map[string]*entry{}
	}
	s.entries[key] = e
}

// del removes an entry; s.mu must be held.
func (s *session) del(key string) {
	delete(s.entries, key)
	if len(s.entries) == 0 {
		s.entries = nil
	}
}

// mark marks a stored message as on its way or in a flow; s.mu must be
// held.
func (s *session) mark(storedID uint64) {
	if s.stored == nil {
		s.stored = map[uint64]bool{}
	}
	s.stored[storedID] = true
}

// unmark ends a stored message's mark; s.mu must be held.
func (s *session) unmark(storedID uint64) {
	delete(s.stored, storedID)
	if len(s.stored) == 0 {
		s.stored = nil
	}
}

// preload adds an entry before the first connection (restoreSession).
func (s *session) preload(key string, pkt packets.ControlPacket, rec *record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.entries[key]; ok {
		return
	}
	s.seq++
	e := &entry{seq: s.seq, gen: s.gen, pkt: pkt}
	s.put(key, e)
	s.attach(e, rec)
}

// attach gives e its record; s.mu must be held.
func (s *session) attach(e *entry, rec *record) {
	if rec == nil {
		return
	}
	e.rec = rec
	s.pending++
	if rec.kind == recStored {
		s.mark(rec.storedID)
	}
}

// detach takes e's record back; s.mu must be held. A stored message stays
// marked (see forget).
func (s *session) detach(e *entry) *record {
	rec := e.rec
	if rec == nil {
		return nil
	}
	e.rec = nil
	s.pending--
	return rec
}

// holds reports whether a stored message has a flow in the session.
func (s *session) holds(storedID uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stored[storedID]
}

// nextID returns the packet identifier a new paho client will issue first:
// paho continues after the highest identifier the session holds, skipping
// those in use; with an empty session it starts at 1.
func (s *session) nextID() uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var highest uint16
	used := map[uint16]bool{}
	for k := range s.entries {
		if id, ok := packetID(k); ok {
			used[id] = true
			highest = max(highest, id)
		}
	}
	id := addID(highest, 1)
	for used[id] && id != highest {
		id = addID(id, 1)
	}
	return id
}

// outboundFlows returns copies of the entries of outbound flows, in
// insertion order (copies: a late reader of an old connection may still
// move a flow to its PUBREL stage).
func (s *session) outboundFlows() []entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []entry
	for k, e := range s.entries {
		if strings.HasPrefix(k, "o.") && e.pkt != nil {
			out = append(out, *e)
		}
	}
	slices.SortFunc(out, func(a, b entry) int { return cmp.Compare(a.seq, b.seq) })
	return out
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
		if rec := s.detach(e); rec != nil {
			s.orphans = append(s.orphans, rec)
			s.unmark(rec.storedID)
		}
	}
	s.entries = nil
}

// hand runs publish (a paho Publish on v's client) with rec as the record
// of the PUBLISH it persists; it reports whether paho took the packet into
// the session (false: it was refused before that, e.g. not connected, and
// rec is the caller's again). One goroutine per view calls it.
func (v *sessionView) hand(rec *record, publish func()) bool {
	s := v.s
	s.mu.Lock()
	v.next = rec
	s.mu.Unlock()
	publish()
	s.mu.Lock()
	defer s.mu.Unlock()
	taken := v.next == nil
	v.next = nil
	return taken
}

// releasing reports whether the session holds PUBREL packets: paho replays
// them on a new connection without reserving their identifiers, so nothing
// new may be published until the broker has completed them.
func (s *session) releasing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, e := range s.entries {
		if _, rel := e.pkt.(*packets.PubrelPacket); rel && strings.HasPrefix(k, "o.") {
			return true
		}
	}
	return false
}

// giveBack returns a record that never entered the session to the owner,
// to be published again.
func (s *session) giveBack(rec *record) {
	s.mu.Lock()
	s.orphans = append(s.orphans, rec)
	s.unmark(rec.storedID)
	s.mu.Unlock()
	s.notify()
}

// forget ends the marks of stored messages the owner has removed from the
// store. Until then an acknowledged message stays marked: the owner may
// still read it from the queue (a batch read earlier, or a cursor rewound
// behind it), and must not publish it again.
func (s *session) forget(ids []uint64) {
	s.mu.Lock()
	for _, id := range ids {
		s.unmark(id)
	}
	s.mu.Unlock()
}

// take marks a stored message as taken by the owner loop, on its way to
// the session: it must not be read from the queue again until it is
// acknowledged or given back.
func (s *session) takeStored(id uint64) {
	s.mu.Lock()
	s.mark(id)
	s.mu.Unlock()
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
	// next is the record of the PUBLISH being handed to paho right now;
	// Put attaches it to that packet's entry. Guarded by s.mu.
	next *record
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
		s.put(key, e)
		if _, isPublish := pkt.(*packets.PublishPacket); isPublish && v.next != nil && strings.HasPrefix(key, "o.") {
			s.attach(e, v.next)
			v.next = nil
		}
	}
	e.pkt = pkt
}

// received records that the broker acknowledged receiving a QoS 2
// PUBLISH (PUBREC): from now on the flow is resumed with a PUBREL, never
// with the PUBLISH again.
func (v *sessionView) received(id uint16) {
	s := v.s
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[outboundKey(id)]
	if !ok || e.gen > v.gen {
		return
	}
	if _, isPublish := e.pkt.(*packets.PublishPacket); isPublish {
		rel := packets.NewControlPacket(packets.Pubrel).(*packets.PubrelPacket)
		rel.MessageID = id
		e.pkt = rel
	}
}

// hasStored reports whether stored messages are in flight.
func (s *session) hasStored() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.entries {
		if e.rec != nil && e.rec.kind == recStored {
			return true
		}
	}
	return false
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
	s.del(key)
	if rec := s.detach(e); rec != nil {
		s.acked = append(s.acked, rec)
		s.notify()
	}
}
