package store

import (
	"encoding/binary"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// Durable enqueue of 100-byte messages: one transaction and fsync per
// message (what a naive queue does) against the Bolt store's group commit
// with many concurrent senders. Both are durable when the call returns:
//
//	go test -run '^$' -bench Enqueue -benchtime 2s ./runtime/store/

func BenchmarkEnqueueFsyncEach(b *testing.B) {
	db, err := bolt.Open(b.TempDir()+"/naive.db", 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	payload := make([]byte, 100)
	b.ResetTimer()
	for b.Loop() {
		err := db.Update(func(tx *bolt.Tx) error {
			q, err := tx.CreateBucketIfNotExists(bucketQueue)
			if err != nil {
				return err
			}
			id, _ := q.NextSequence()
			return q.Put(binary.BigEndian.AppendUint64(nil, id), payload)
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func BenchmarkEnqueueGroupCommit(b *testing.B) {
	s, err := OpenBolt(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.SetParallelism(64) // 64 senders per core
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m := &Message{Interface: "org.bench.Values", Major: 1, Path: "/v", QoS: 1, Payload: make([]byte, 100)}
			if err := s.Enqueue(ctx, m); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkStartLargeQueue is a device's start on a store holding 100,000
// queued messages: open the file (checking every entry) and the Prune the
// runtime runs with the device's interfaces, which drops nothing here.
//
//	go test -run '^$' -bench StartLargeQueue -benchtime 10x ./runtime/store/
func BenchmarkStartLargeQueue(b *testing.B) {
	dir := b.TempDir()
	s, err := OpenBolt(dir)
	if err != nil {
		b.Fatal(err)
	}
	const queued = 100_000
	for i := 0; i < queued; i += 1000 {
		batch := make([]*Message, 1000)
		for j := range batch {
			batch[j] = &Message{Interface: "org.bench.Values", Major: 1, Path: "/v", QoS: 1, Payload: make([]byte, 100)}
		}
		if err := s.Enqueue(ctx, batch...); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	keep := map[string]int{"org.bench.Values": 1}
	for b.Loop() {
		s, err := OpenBolt(dir)
		if err != nil {
			b.Fatal(err)
		}
		if _, msgs, err := s.Prune(ctx, keep); err != nil || msgs != 0 {
			b.Fatalf("Prune dropped %d messages: %v", msgs, err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
