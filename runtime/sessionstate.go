package runtime

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/astarte-gen/astarte-gen/runtime/store"
)

// The broker keeps the device's MQTT session across process restarts, and
// with it the packet identifiers of QoS 2 messages it received but whose
// PUBREL it has not seen. A new process that reused one of those
// identifiers for a new message would see it swallowed as a duplicate, or
// refused. Two records in the store prevent that:
//   - the packet-identifier floor: every identifier issued so far lies
//     below it (modulo 65,535); it is raised, durably, before identifiers
//     come near it. After a crash the device releases (PUBREL) the window of
//     identifiers below the floor that may still be pending, and continues
//     above them.
//   - on Close, the unfinished flows of stored messages, so that the next
//     process resumes them with the same identifiers, and a QoS 2 message
//     is delivered once even across a restart.
const (
	metaPacketFloor = "mqtt_packet_floor"
	metaSession     = "mqtt_session"
	// floorStep is how far the floor is raised each time; floorMargin is
	// how close identifiers may come to it before it is raised.
	floorStep   = 4096
	floorMargin = floorStep / 2
	maxPacketID = 65535
)

// addID returns the packet identifier n places after id (1..65535).
func addID(id uint16, n int) uint16 {
	return uint16((int(id)-1+n)%maxPacketID+maxPacketID)%maxPacketID + 1
}

// idDistance returns how many identifiers lie from a to b going up.
func idDistance(a, b uint16) int {
	return ((int(b)-int(a))%maxPacketID + maxPacketID) % maxPacketID
}

// floorWindow is how many identifiers below the floor may be pending after
// a crash: those issued since the floor was last raised, and the in-flight
// window before them.
func (d *Device) floorWindow() int { return floorStep + floorMargin + d.cfg.MaxInFlight + 16 }

// restoreSession prepares the session state of a new process: the flows
// saved by the previous Close, and a PUBREL for every identifier below the
// persisted floor that may still be pending (the broker answers PUBCOMP
// for those it does not know).
func (d *Device) restoreSession(ctx context.Context) error {
	saved, _, err := d.store.Meta(ctx, metaSession)
	if err != nil {
		return err
	}
	if len(saved) > 0 {
		if err := d.loadSession(ctx, saved); err != nil {
			d.log.Warn("discarding the saved MQTT session state", "err", err)
		}
		if err := d.store.PutMeta(ctx, metaSession, nil); err != nil {
			return err
		}
	}
	raw, ok, err := d.store.Meta(ctx, metaPacketFloor)
	if err != nil || !ok || len(raw) != 2 {
		return err
	}
	floor := binary.BigEndian.Uint16(raw)
	for n := d.floorWindow(); n > 0; n-- {
		id := addID(floor, -n)
		rel := packets.NewControlPacket(packets.Pubrel).(*packets.PubrelPacket)
		rel.MessageID = id
		d.session.preload(outboundKey(id), rel, nil)
	}
	return nil
}

// loadSession adds the flows saved by Close: each a stored message ID and
// its packet. A flow whose message left the store meanwhile is released
// instead.
func (d *Device) loadSession(ctx context.Context, saved []byte) error {
	r := bytes.NewReader(saved)
	for r.Len() > 0 {
		id, err := binary.ReadUvarint(r)
		if err != nil {
			return err
		}
		pkt, err := packets.ReadPacket(r)
		if err != nil {
			return err
		}
		var msgs []store.Message
		if id > 0 { // 0: a flow of a message that was not stored
			if msgs, err = d.store.Pending(ctx, id-1, 1); err != nil {
				return err
			}
		}
		var rec *record
		if len(msgs) == 1 && msgs[0].ID == id {
			rec = &record{kind: recStored, storedID: id, iface: msgs[0].Interface, path: msgs[0].Path}
		} else {
			rel := packets.NewControlPacket(packets.Pubrel).(*packets.PubrelPacket)
			rel.MessageID = pkt.Details().MessageID
			pkt = rel
		}
		d.session.preload(outboundKey(pkt.Details().MessageID), pkt, rec)
	}
	return nil
}

// saveSession writes the unfinished flows for the next process (Close,
// once the owner loop has stopped): a stored message's flow as it stands,
// and a PUBREL for every other QoS 2 flow, so that the broker frees its
// identifier. That is every identifier the broker may still hold, so the
// packet-identifier floor is dropped: a process that starts after a clean
// Close has no window of identifiers to release blindly (which would cost
// a round trip of a thousand PUBRELs before its first message).
func (d *Device) saveSession(ctx context.Context) error {
	var buf bytes.Buffer
	for _, e := range d.session.outboundFlows() {
		var storedID uint64
		pkt := e.pkt
		switch {
		case e.rec != nil && e.rec.kind == recStored:
			storedID = e.rec.storedID
		case isQoS2Flow(pkt):
			rel := packets.NewControlPacket(packets.Pubrel).(*packets.PubrelPacket)
			rel.MessageID = pkt.Details().MessageID
			pkt = rel
		default:
			continue // QoS 1: the broker keeps nothing of it
		}
		buf.Write(binary.AppendUvarint(nil, storedID))
		if err := pkt.Write(&buf); err != nil {
			return err
		}
	}
	if err := d.store.PutMeta(ctx, metaSession, buf.Bytes()); err != nil {
		return err
	}
	return d.store.PutMeta(ctx, metaPacketFloor, nil)
}

// isQoS2Flow reports whether pkt is a step of a QoS 2 flow.
func isQoS2Flow(pkt packets.ControlPacket) bool {
	switch p := pkt.(type) {
	case *packets.PubrelPacket:
		return true
	case *packets.PublishPacket:
		return p.Qos == 2
	}
	return false
}

// setFloor durably sets the packet-identifier floor.
func (d *Device) setFloor(ctx context.Context, floor uint16) error {
	d.floorMu.Lock()
	defer d.floorMu.Unlock()
	if err := d.store.PutMeta(ctx, metaPacketFloor, binary.BigEndian.AppendUint16(nil, floor)); err != nil {
		return fmt.Errorf("packet identifier floor: %w", err)
	}
	d.floor = floor
	return nil
}

// outboundKey is paho's store key of an outbound packet.
func outboundKey(id uint16) string { return "o." + strconv.Itoa(int(id)) }

// packetID parses an outbound key.
func packetID(key string) (uint16, bool) {
	s, ok := strings.CutPrefix(key, "o.")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 16)
	return uint16(n), err == nil && n > 0
}
