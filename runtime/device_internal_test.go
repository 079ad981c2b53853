package runtime

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/google/go-cmp/cmp"

	"github.com/astarte-gen/astarte-gen/runtime/model"
	"github.com/astarte-gen/astarte-gen/runtime/store"
)

func TestRingDropsOldest(t *testing.T) {
	r := ring{limit: 3}
	var dropped int
	for i := range 5 {
		if r.push(volatileMsg{topic: string(rune('a' + i))}) {
			dropped++
		}
	}
	if dropped != 2 || r.dropped != 2 {
		t.Fatalf("dropped %d (counter %d), want 2", dropped, r.dropped)
	}
	var got []string
	for {
		v, ok := r.pop()
		if !ok {
			break
		}
		got = append(got, v.topic)
	}
	if diff := cmp.Diff([]string{"c", "d", "e"}, got); diff != "" {
		t.Errorf("ring order (-want +got):\n%s", diff)
	}
}

func TestBackoffGrowsWithJitterAndCap(t *testing.T) {
	d := &Device{cfg: Config{ReconnectMin: 100 * time.Millisecond, ReconnectMax: time.Second}}
	for attempt, base := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		base *= time.Millisecond
		for range 50 {
			got := d.backoff(attempt)
			if got < base/2 || got > base {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", attempt, got, base/2, base)
			}
		}
	}
}

func TestAppendTopic(t *testing.T) {
	levels, err := model.ParseEndpoint("/%{sensor_id}/value")
	if err != nil {
		t.Fatal(err)
	}
	got, err := appendTopic(nil, "test/dev", "org.x.S", levels, []string{"s1"})
	if err != nil || string(got) != "test/dev/org.x.S/s1/value" {
		t.Errorf("appendTopic = %q, %v", got, err)
	}
	got, err = appendTopic(nil, "test/dev", "org.x.O", nil, nil)
	if err != nil || string(got) != "test/dev/org.x.O/" {
		t.Errorf("depth-1 object topic = %q, %v", got, err)
	}
	for _, params := range [][]string{nil, {"a", "b"}, {"a/b"}, {"+"}, {""}} {
		if _, err := appendTopic(nil, "r/d", "i", levels, params); !errors.Is(err, model.ErrInvalidParameter) {
			t.Errorf("appendTopic(%q) = %v, want ErrInvalidParameter", params, err)
		}
	}
}

func TestCheckConfig(t *testing.T) {
	for _, realm := range []string{"", "Test", "1abc", "a-b", "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghi"} {
		cfg := Config{Realm: realm, DeviceID: "AJInS0w3VpWpuOqkXhgZdA"}
		if err := checkConfig(&cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("realm %q accepted", realm)
		}
	}
	cfg := Config{Realm: "test", DeviceID: "AJInS0w3VpWpuOqkXhgZdA"}
	if err := checkConfig(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.KeepAlive != 30*time.Second || cfg.MaxInFlight != 512 || cfg.VolatileCapacity != 1000 {
		t.Errorf("defaults not applied: %+v", cfg)
	}
	for _, id := range []string{"", "a/b", "a+b", "a#"} {
		cfg := Config{Realm: "test", DeviceID: id}
		if err := checkConfig(&cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("device ID %q accepted", id)
		}
	}
}

// An acknowledged stored message that the owner read ahead (or reads again
// behind a rewound cursor) must not be published again before the owner
// has removed it from the store: within one broker session that would
// deliver a unique message twice.
func TestAckedStoredMessageNotRepublished(t *testing.T) {
	ctx := context.Background()
	iface := &model.Interface{Name: "org.x.Q", Major: 1, Type: model.Datastream, Ownership: model.OwnershipDevice,
		Mappings: []model.Mapping{{Endpoint: "/v", Type: model.Integer, Reliability: model.Unique, Retention: model.Stored}}}
	d, err := New(Config{Realm: "test", DeviceID: "AJInS0w3VpWpuOqkXhgZdA", PairingURL: "https://127.0.0.1:1", CredentialsSecret: "x"}, iface)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(ctx)
	for i := range 3 {
		msg := &store.Message{Interface: iface.Name, Major: 1, Path: "/v", QoS: 2, Payload: []byte{byte(i)}}
		if err := d.store.Enqueue(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	pending, err := d.store.Pending(ctx, 0, 3)
	if err != nil || len(pending) != 3 {
		t.Fatalf("pending = %v, %v", pending, err)
	}
	// The second message has a flow in the session (as restored after a
	// restart): a PUBREL awaiting its PUBCOMP.
	rel := packets.NewControlPacket(packets.Pubrel).(*packets.PubrelPacket)
	rel.MessageID = 7
	d.session.preload(outboundKey(7), rel, &record{kind: recStored, storedID: pending[1].ID})

	var o owner
	first, ok := d.nextStored(ctx, &o)
	if !ok || first.rec.storedID != pending[0].ID {
		t.Fatalf("first publish: %+v, %v; want message %d", first.rec, ok, pending[0].ID)
	}
	d.session.view().Del(outboundKey(7)) // PUBCOMP: the broker has it
	next, ok := d.nextStored(ctx, &o)
	if !ok || next.rec.storedID != pending[2].ID {
		t.Fatalf("after the acknowledgement the owner publishes %+v (%v); want message %d, not the acknowledged %d",
			next.rec, ok, pending[2].ID, pending[1].ID)
	}
	d.settle(ctx, &o)
	if n, err := d.store.Len(ctx); err != nil || n != 2 {
		t.Errorf("store holds %d messages (%v), want 2 (the acknowledged one removed)", n, err)
	}
	if d.session.holds(pending[1].ID) {
		t.Error("the settled message is still marked as in flight")
	}
}

// The volatile ring allocates by need, keeps order across growth and
// wrap-around, and filter keeps order too.
func TestRingGrowsByNeed(t *testing.T) {
	r := ring{limit: 100}
	if r.items != nil {
		t.Fatal("storage before the first push")
	}
	for i := range 40 {
		r.push(volatileMsg{qos: byte(i)})
		if i%3 == 0 {
			r.pop()
		}
	}
	if len(r.items) >= 100 {
		t.Errorf("storage %d entries for %d queued", len(r.items), r.n)
	}
	r.filter(func(v volatileMsg) bool { return v.qos%2 == 0 })
	var got []byte
	for {
		v, ok := r.pop()
		if !ok {
			break
		}
		got = append(got, v.qos)
	}
	if !slices.IsSorted(got) || len(got) == 0 {
		t.Errorf("order lost: %v", got)
	}
	for _, q := range got {
		if q%2 != 0 {
			t.Errorf("filter kept %d", q)
		}
	}
}

// TestWriteQueue: the owner's hand-over to a connection's writer keeps
// order, holds at most writeQueueCap requests (the owner waits for room,
// or gives the request back when the connection is lost), lets its
// storage go when empty, and tells the writer when it is closed.
func TestWriteQueue(t *testing.T) {
	d := &Device{session: newSession()}
	c := &conn{lost: make(chan struct{}), wake: make(chan struct{}, 1)}
	ctx := context.Background()
	for n := range writeQueueCap {
		d.busy.Add(1)
		if !d.write(ctx, c, writeReq{out: outbound{topic: strconv.Itoa(n)}}) {
			t.Fatalf("request %d refused", n)
		}
	}
	written := make(chan bool)
	d.busy.Add(1)
	go func() { written <- d.write(ctx, c, writeReq{out: outbound{topic: strconv.Itoa(writeQueueCap)}}) }()
	select {
	case <-written:
		t.Fatalf("a request past %d queued without waiting", writeQueueCap)
	case <-time.After(50 * time.Millisecond):
	}
	for n := 0; n <= writeQueueCap; n++ {
		req, ok, _ := c.reqs.take()
		if !ok || req.out.topic != strconv.Itoa(n) {
			t.Fatalf("take %d: %q %v", n, req.out.topic, ok)
		}
		if n == 0 && !<-written {
			t.Fatal("the waiting request was refused once there was room")
		}
	}
	if c.reqs.items != nil {
		t.Errorf("an empty queue holds storage for %d requests", cap(c.reqs.items))
	}
	if _, ok, closed := c.reqs.take(); ok || closed {
		t.Errorf("empty open queue: ok %v closed %v", ok, closed)
	}
	for range writeQueueCap {
		d.busy.Add(1)
		d.write(ctx, c, writeReq{out: outbound{}})
	}
	d.busy.Add(1)
	go func() { written <- d.write(ctx, c, writeReq{out: outbound{}}) }()
	c.markLost()
	if <-written {
		t.Error("a request waiting for room was queued after the connection was lost")
	}
	c.closeWrites()
	for range writeQueueCap {
		if _, ok, _ := c.reqs.take(); !ok {
			t.Fatal("closing dropped queued requests")
		}
	}
	if _, ok, closed := c.reqs.take(); ok || !closed {
		t.Errorf("empty closed queue: ok %v closed %v", ok, closed)
	}
}

// TestSessionLetsGoWhenEmpty: the session's tables exist only while they
// hold something, and work again after they were let go.
func TestSessionLetsGoWhenEmpty(t *testing.T) {
	s := newSession()
	for round := range 2 {
		v := s.view()
		pub := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
		pub.Qos, pub.MessageID = 1, 7
		rec := &record{kind: recStored, storedID: 42}
		s.takeStored(42)
		if !v.hand(rec, func() { v.Put(outboundKey(7), pub) }) || v.Get(outboundKey(7)) == nil || !s.holds(42) {
			t.Fatalf("round %d: the publish did not enter the session", round)
		}
		v.Del(outboundKey(7))
		if acked, _ := s.take(); len(acked) != 1 || acked[0] != rec {
			t.Fatalf("round %d: acknowledged %v", round, acked)
		}
		s.forget([]uint64{42})
		if s.entries != nil || s.stored != nil || s.holds(42) {
			t.Errorf("round %d: an empty session holds %d entries, %d marks", round, len(s.entries), len(s.stored))
		}
	}
}
