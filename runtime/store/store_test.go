package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"
)

// implementations runs each behavioural test against both stores.
func implementations(t *testing.T, test func(t *testing.T, open func(opts ...Option) Store)) {
	t.Run("memory", func(t *testing.T) {
		test(t, func(opts ...Option) Store { return NewMemory(opts...) })
	})
	t.Run("bolt", func(t *testing.T) {
		dir := t.TempDir()
		test(t, func(opts ...Option) Store {
			s, err := OpenBolt(dir, opts...)
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})
}

var ctx = context.Background()

func TestProperties(t *testing.T) {
	implementations(t, func(t *testing.T, open func(...Option) Store) {
		s := open()
		defer s.Close()
		put := func(iface string, major int, path string, v []byte, unsent bool) {
			if err := s.PutProperty(ctx, Property{PropertyKey{iface, major, path}, v, unsent}); err != nil {
				t.Fatal(err)
			}
		}
		put("org.a", 1, "/x", []byte("1"), false)
		put("org.a", 1, "/y", nil, true) // tombstone
		put("org.ab", 1, "/x", []byte("2"), true)
		got, err := s.Properties(ctx, "org.a")
		if err != nil {
			t.Fatal(err)
		}
		want := []Property{
			{PropertyKey{"org.a", 1, "/x"}, []byte("1"), false},
			{PropertyKey{"org.a", 1, "/y"}, nil, true},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("prefix scan must not mix org.a and org.ab (-want +got):\n%s", diff)
		}
		if err := s.DeleteProperty(ctx, PropertyKey{"org.a", 1, "/x"}); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := s.Property(ctx, PropertyKey{"org.a", 1, "/x"}); ok {
			t.Error("deleted property still there")
		}
		p, ok, err := s.Property(ctx, PropertyKey{"org.ab", 1, "/x"})
		if err != nil || !ok || string(p.Value) != "2" || !p.Unsent {
			t.Errorf("Property = %+v, %v, %v", p, ok, err)
		}
	})
}

func msg(i int) *Message {
	return &Message{Interface: "org.q", Major: 1, Path: fmt.Sprintf("/%d", i), QoS: 1, Payload: []byte{byte(i)}}
}

func TestQueueOrderAckAndCapacity(t *testing.T) {
	implementations(t, func(t *testing.T, open func(...Option) Store) {
		s := open(WithCapacity(5))
		defer s.Close()
		for i := range 4 {
			if err := s.Enqueue(ctx, msg(i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Enqueue(ctx, msg(4), msg(5)); !errors.Is(err, ErrFull) {
			t.Fatalf("over capacity: %v, want ErrFull", err)
		}
		if n, _ := s.Len(ctx); n != 4 {
			t.Fatalf("a refused batch must add nothing: Len = %d", n)
		}
		first, err := s.Pending(ctx, 0, 2)
		if err != nil || len(first) != 2 || first[0].Path != "/0" || first[1].Path != "/1" || first[0].ID >= first[1].ID {
			t.Fatalf("Pending = %+v, %v", first, err)
		}
		rest, _ := s.Pending(ctx, first[1].ID, 10)
		if len(rest) != 2 || rest[0].Path != "/2" {
			t.Fatalf("second page = %+v", rest)
		}
		if err := s.Ack(ctx, first[0].ID, 9999); err != nil {
			t.Fatal(err)
		}
		if all, _ := s.Pending(ctx, 0, 10); len(all) != 3 || all[0].Path != "/1" {
			t.Errorf("after ack: %+v", all)
		}
		if err := s.Enqueue(ctx, msg(6), msg(7)); err != nil {
			t.Errorf("room freed by the ack: %v", err)
		}
	})
}

func TestPrune(t *testing.T) {
	implementations(t, func(t *testing.T, open func(...Option) Store) {
		s := open()
		defer s.Close()
		for _, k := range []PropertyKey{{"keep", 2, "/a"}, {"keep", 1, "/a"}, {"gone", 1, "/a"}} {
			if err := s.PutProperty(ctx, Property{PropertyKey: k, Value: []byte("x")}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Enqueue(ctx, &Message{Interface: "keep", Major: 2}, &Message{Interface: "keep", Major: 1}, &Message{Interface: "gone", Major: 1}); err != nil {
			t.Fatal(err)
		}
		props, msgs, err := s.Prune(ctx, map[string]int{"keep": 2})
		if err != nil || props != 2 || msgs != 2 {
			t.Fatalf("Prune = %d, %d, %v; want 2, 2", props, msgs, err)
		}
		if left, _ := s.Pending(ctx, 0, 10); len(left) != 1 || left[0].Major != 2 {
			t.Errorf("left = %+v", left)
		}
	})
}

// TestBoltPruneAfterReopen covers Prune on a reopened file, where the
// store knows from its opening check which interfaces the file holds and
// skips the scan when none is to be dropped: data written since the
// opening, of an interface the file did not hold, must still be dropped.
func TestBoltPruneAfterReopen(t *testing.T) {
	dir := t.TempDir()
	reopen := func() Store {
		s, err := OpenBolt(dir)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	prune := func(s Store, wantProps, wantMsgs int) {
		t.Helper()
		props, msgs, err := s.Prune(ctx, map[string]int{"keep": 1})
		if err != nil || props != wantProps || msgs != wantMsgs {
			t.Fatalf("Prune = %d, %d, %v; want %d, %d", props, msgs, err, wantProps, wantMsgs)
		}
	}
	s := reopen()
	if err := s.PutProperty(ctx, Property{PropertyKey: PropertyKey{"keep", 1, "/a"}, Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Enqueue(ctx, &Message{Interface: "keep", Major: 1}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	// Each write gets a file that holds only "keep" 1, so that nothing
	// else makes Prune scan.
	s = reopen()
	prune(s, 0, 0)
	if err := s.PutProperty(ctx, Property{PropertyKey: PropertyKey{"keep", 2, "/a"}, Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	prune(s, 1, 0)
	s.Close()
	s = reopen()
	if err := s.Enqueue(ctx, &Message{Interface: "later", Major: 1}); err != nil {
		t.Fatal(err)
	}
	prune(s, 0, 1)
	prune(s, 0, 0)
	s.Close()

	s = reopen()
	defer s.Close()
	prune(s, 0, 0)
	if left, _ := s.Pending(ctx, 0, 10); len(left) != 1 || left[0].Interface != "keep" {
		t.Errorf("left = %+v", left)
	}
}

func TestBoltPersistsAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenBolt(dir)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	m := &Message{Interface: "org.q", Major: 1, Path: "/p", QoS: 2, Payload: []byte{1, 2}, Deadline: deadline}
	if err := s.Enqueue(ctx, m, msg(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(ctx, m.ID+1); err != nil {
		t.Fatal(err)
	}
	if err := s.PutMeta(ctx, "introspection", []byte("a:1:0")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Enqueue(ctx, msg(2)); !errors.Is(err, ErrClosed) {
		t.Errorf("Enqueue after Close: %v", err)
	}
	info, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("store file mode %v, %v; want 0600", info.Mode().Perm(), err)
	}
	s, err = OpenBolt(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, _ := s.Pending(ctx, 0, 10)
	want := []Message{*m}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
		t.Errorf("after reopen (-want +got):\n%s", diff)
	}
	if v, ok, _ := s.Meta(ctx, "introspection"); !ok || string(v) != "a:1:0" {
		t.Errorf("meta lost: %q", v)
	}
	next := msg(3)
	if err := s.Enqueue(ctx, next); err != nil || next.ID <= m.ID+1 {
		t.Errorf("IDs must keep increasing across reopen: %d after %d (%v)", next.ID, m.ID+1, err)
	}
}

func TestBoltRefusesNewerSchema(t *testing.T) {
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		return b.Put(keyVersion, binary.BigEndian.AppendUint32(nil, 99))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenBolt(dir); !errors.Is(err, ErrSchemaVersion) {
		t.Errorf("opening a version-99 file: %v, want ErrSchemaVersion", err)
	}
}

func TestBoltConcurrentEnqueue(t *testing.T) {
	s, err := OpenBolt(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var wg sync.WaitGroup
	ids := make(chan uint64, 800)
	for g := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				m := msg(g*20 + i)
				if err := s.Enqueue(ctx, m); err != nil {
					t.Error(err)
					return
				}
				ids <- m.ID
			}
		}()
	}
	wg.Wait()
	close(ids)
	seen := map[uint64]bool{}
	for id := range ids {
		if seen[id] {
			t.Fatalf("ID %d given twice", id)
		}
		seen[id] = true
	}
	if n, _ := s.Len(ctx); n != 800 || len(seen) != 800 {
		t.Errorf("Len = %d, distinct IDs %d; want 800", n, len(seen))
	}
}

func TestDeadLetters(t *testing.T) {
	implementations(t, func(t *testing.T, open func(...Option) Store) {
		s := open()
		msgs := []*Message{
			{Interface: "org.a", Major: 1, Path: "/x", QoS: 2, Payload: []byte("one")},
			{Interface: "org.a", Major: 1, Path: "/y", QoS: 1, Payload: []byte("two")},
		}
		if err := s.Enqueue(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
		moved, err := s.MoveToDeadLetters(ctx, msgs[0].ID, "refused 3 times")
		if err != nil || !moved {
			t.Fatalf("MoveToDeadLetters = %v, %v", moved, err)
		}
		if moved, err := s.MoveToDeadLetters(ctx, msgs[0].ID, "again"); err != nil || moved {
			t.Errorf("moving a message twice = %v, %v; want false", moved, err)
		}
		if err := s.Ack(ctx, msgs[1].ID); err != nil {
			t.Fatal(err)
		}
		if moved, _ := s.MoveToDeadLetters(ctx, msgs[1].ID, "acked"); moved {
			t.Error("an acknowledged message was moved to the dead letters")
		}
		if n, _ := s.Len(ctx); n != 0 {
			t.Errorf("Len = %d after moving one and acking the other, want 0", n)
		}
		if pending, _ := s.Pending(ctx, 0, 10); len(pending) != 0 {
			t.Errorf("Pending still lists %d messages", len(pending))
		}
		if _, isBolt := s.(*Bolt); isBolt {
			s.Close()
			s = open() // the same file: dead letters are durable
		}
		defer s.Close()
		dead, err := s.DeadLetters(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(dead) != 1 || dead[0].Reason != "refused 3 times" || string(dead[0].Payload) != "one" || dead[0].Path != "/x" || dead[0].At.IsZero() {
			t.Fatalf("dead letters after reopening = %+v", dead)
		}
		if err := s.DeleteDeadLetter(ctx, dead[0].ID); err != nil {
			t.Fatal(err)
		}
		if dead, _ := s.DeadLetters(ctx); len(dead) != 0 {
			t.Errorf("dead letters after delete = %+v", dead)
		}
	})
}
