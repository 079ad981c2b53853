package store

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestAckCountsExact: acking an id twice, an unknown id, or an id whose
// deletion was already committed never lowers the queue count (capacity 3
// used to let 5 messages in).
func TestAckCountsExact(t *testing.T) {
	implementations(t, func(t *testing.T, open func(...Option) Store) {
		s := open(WithCapacity(3))
		defer s.Close()
		a, b, c := msg(1), msg(2), msg(3)
		if err := s.Enqueue(ctx, a, b, c); err != nil {
			t.Fatal(err)
		}
		for _, ids := range [][]uint64{{a.ID}, {a.ID}, {a.ID, a.ID}, {999}, {0}} {
			if err := s.Ack(ctx, ids...); err != nil {
				t.Fatal(err)
			}
		}
		if n, _ := s.Len(ctx); n != 2 {
			t.Errorf("Len = %d after acking one of three (twice, plus unknown ids), want 2", n)
		}
		// Commit the deletion (Prune flushes acks), then ack it again.
		if _, _, err := s.Prune(ctx, map[string]int{"org.q": 1}); err != nil {
			t.Fatal(err)
		}
		if err := s.Ack(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		if n, _ := s.Len(ctx); n != 2 {
			t.Errorf("Len = %d after acking a deleted id, want 2", n)
		}
		if err := s.Enqueue(ctx, msg(4)); err != nil {
			t.Fatal(err)
		}
		if err := s.Enqueue(ctx, msg(5)); !errors.Is(err, ErrFull) {
			t.Errorf("fourth queued message with capacity 3: %v, want ErrFull", err)
		}
		if moved, _ := s.MoveToDeadLetters(ctx, b.ID, "x"); !moved {
			t.Fatal("not moved")
		}
		if err := s.Ack(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
		if n, _ := s.Len(ctx); n != 2 {
			t.Errorf("Len = %d after acking a dead letter, want 2", n)
		}
	})
}

// corrupt flips one bit of the value at key in bucket.
func corrupt(t *testing.T, dir string, bucket, key []byte) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		v := append([]byte{}, b.Get(key)...)
		v[len(v)-1] ^= 0x10
		return b.Put(key, v)
	}); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptEntriesBecomeDeadLetters: a queue entry or property value
// whose bytes changed on disk is never sent or returned: it is moved to the
// dead letters with its reason and reported, and the rest goes on.
func TestCorruptEntriesBecomeDeadLetters(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenBolt(dir)
	if err != nil {
		t.Fatal(err)
	}
	msgs := []*Message{msg(1), msg(2), msg(3)}
	if err := s.Enqueue(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	prop := Property{PropertyKey: PropertyKey{"org.p", 1, "/x"}, Value: []byte("value")}
	if err := s.PutProperty(ctx, prop); err != nil {
		t.Fatal(err)
	}
	s.Close()
	corrupt(t, dir, bucketQueue, binary.BigEndian.AppendUint64(nil, msgs[1].ID))
	corrupt(t, dir, bucketProps, propKey(prop.PropertyKey))

	var reported []DeadLetter
	s, err = OpenBolt(dir, WithCorruptionHandler(func(d DeadLetter) { reported = append(reported, d) }))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if len(reported) != 2 {
		t.Fatalf("reported %+v, want the message and the property", reported)
	}
	pending, _ := s.Pending(ctx, 0, 10)
	if len(pending) != 2 || pending[0].ID != msgs[0].ID || pending[1].ID != msgs[2].ID {
		t.Errorf("pending %+v, want messages 1 and 3", pending)
	}
	if n, _ := s.Len(ctx); n != 2 {
		t.Errorf("Len = %d, want 2", n)
	}
	if _, ok, _ := s.Property(ctx, prop.PropertyKey); ok {
		t.Error("the corrupt property value is still returned")
	}
	dead, _ := s.DeadLetters(ctx)
	if len(dead) != 2 || dead[0].ID != msgs[1].ID || !strings.Contains(dead[0].Reason, "fails its checksum") ||
		dead[1].Interface != "org.p" || dead[1].Path != "/x" || !strings.Contains(dead[1].Reason, "property value fails its checksum") {
		t.Errorf("dead letters %+v", dead)
	}

	// Damage that happens while the store is open is caught when read.
	reported = nil
	fresh := msg(4)
	if err := s.Enqueue(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		key := binary.BigEndian.AppendUint64(nil, fresh.ID)
		v := append([]byte{}, tx.Bucket(bucketQueue).Get(key)...)
		v[6] ^= 1
		return tx.Bucket(bucketQueue).Put(key, v)
	}); err != nil {
		t.Fatal(err)
	}
	pending, err = s.Pending(ctx, msgs[2].ID, 10)
	if err != nil || len(pending) != 0 || len(reported) != 1 || reported[0].ID != fresh.ID {
		t.Errorf("after damage while open: pending %+v (%v), reported %+v", pending, err, reported)
	}
	if n, _ := s.Len(ctx); n != 2 {
		t.Errorf("Len = %d, want 2", n)
	}
}

// TestMigratesVersion1: a version 1 file (entries without checksums) is
// upgraded at open and reads as before.
func TestMigratesVersion1(t *testing.T) {
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := msg(7)
	m.ID = 1
	key := binary.BigEndian.AppendUint64(nil, 1)
	pk := PropertyKey{"org.p", 1, "/x"}
	if err := db.Update(func(tx *bolt.Tx) error {
		meta, _ := tx.CreateBucket(bucketMeta)
		q, _ := tx.CreateBucket(bucketQueue)
		props, _ := tx.CreateBucket(bucketProps)
		dead, _ := tx.CreateBucket(bucketDead)
		_, _ = q.NextSequence()
		_ = meta.Put(keyVersion, binary.BigEndian.AppendUint32(nil, 1))
		_ = q.Put(key, encodeMessage(m))
		_ = props.Put(propKey(pk), encodeProperty(Property{PropertyKey: pk, Value: []byte("v")}))
		return dead.Put(binary.BigEndian.AppendUint64(nil, 9), appendDeadLetter("old", time.Unix(1, 0), encodeMessage(msg(9))))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := OpenBolt(dir, WithCorruptionHandler(func(d DeadLetter) { t.Errorf("reported %+v", d) }))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, _ := s.Pending(ctx, 0, 10); len(got) != 1 || got[0].Path != m.Path {
		t.Errorf("pending after migration: %+v", got)
	}
	if p, ok, _ := s.Property(ctx, pk); !ok || string(p.Value) != "v" {
		t.Errorf("property after migration: %+v, %v", p, ok)
	}
	if dead, _ := s.DeadLetters(ctx); len(dead) != 1 || dead[0].Reason != "old" || dead[0].Path != msg(9).Path {
		t.Errorf("dead letters after migration: %+v", dead)
	}
}

// TestDamagedFileIsTypedError: an empty file is damage (not a new store),
// reported as a *DamagedError before bbolt touches it, and Quarantine
// moves it aside so that a fresh store opens.
func TestDamagedFileIsTypedError(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := OpenBolt(dir)
	var damaged *DamagedError
	if !errors.As(err, &damaged) || !errors.Is(err, ErrDamaged) || damaged.Reason != "empty file" || damaged.Path != path {
		t.Fatalf("OpenBolt on an empty file: %v", err)
	}
	if m, p := Count(path); m != -1 || p != -1 {
		t.Errorf("Count of an empty file = %d, %d; want -1, -1", m, p)
	}
	for range 5 {
		if _, err := os.Stat(path); err != nil {
			if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		moved, err := Quarantine(dir)
		if err != nil || !strings.HasPrefix(filepath.Base(moved), FileName+".damaged-") {
			t.Fatalf("Quarantine = %q, %v", moved, err)
		}
	}
	kept, _ := filepath.Glob(filepath.Join(dir, FileName+".damaged-*"))
	if len(kept) != maxQuarantined {
		t.Errorf("%d damaged files kept, want %d", len(kept), maxQuarantined)
	}
	s, err := OpenBolt(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Enqueue(ctx, msg(1), msg(2)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if m, p := Count(path); m != 2 || p != 0 {
		t.Errorf("Count of a store with 2 messages = %d, %d", m, p)
	}
}
