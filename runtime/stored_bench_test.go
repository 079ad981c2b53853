package runtime_test

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	astarte "github.com/astarte-gen/astarte-gen/runtime"
)

// BenchmarkStoredSendOffline measures one goroutine sending stored
// messages while the device is offline, per durability option, and in the
// same run plain bbolt with one transaction and fsync per message (what a
// durable queue costs without the runtime); ratio is device / plain bbolt:
//
//	go test -run '^$' -bench StoredSendOffline -benchtime 20000x ./runtime/
func BenchmarkStoredSendOffline(b *testing.B) {
	for _, bc := range []struct {
		name string
		sync time.Duration
	}{{"fsync-each", 0}, {"sync-10ms", 10 * time.Millisecond}} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := astarte.Config{
				Realm: "test", DeviceID: "AJInS0w3VpWpuOqkXhgZdA", PairingURL: "https://127.0.0.1:1", CredentialsSecret: "unused",
				StoreDir: b.TempDir(), StoredCapacity: 1 << 30, SyncInterval: bc.sync,
			}
			d, err := astarte.New(cfg, storedBenchIface)
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close(context.Background())
			ctx := context.Background()
			b.ResetTimer()
			start := time.Now()
			for i := 0; b.Loop(); i++ {
				if err := d.Send(ctx, storedBenchIface.Name, "/v", float64(i)); err != nil {
					b.Fatal(err)
				}
			}
			devRate := float64(b.N) / time.Since(start).Seconds()
			b.StopTimer()
			plainRate := plainBoltRate(b, min(b.N, 2000))
			b.ReportMetric(devRate, "device-msgs/s")
			b.ReportMetric(plainRate, "bbolt-fsync-msgs/s")
			b.ReportMetric(devRate/plainRate, "ratio")
		})
	}
}

var storedBenchIface = &astarte.Interface{
	Name: "org.astartegen.bench.Stored", Major: 1, Type: astarte.Datastream, Ownership: astarte.OwnershipDevice,
	Mappings: []astarte.Mapping{{Endpoint: "/v", Type: astarte.Double, Reliability: astarte.Guaranteed, Retention: astarte.Stored}},
}

// plainBoltRate writes n 40-byte messages to a bbolt file, one transaction
// (and fsync) each, and returns the rate.
func plainBoltRate(b *testing.B, n int) float64 {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "plain.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	payload := make([]byte, 40)
	start := time.Now()
	for range n {
		err := db.Update(func(tx *bolt.Tx) error {
			q, err := tx.CreateBucketIfNotExists([]byte("q"))
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
	return float64(n) / time.Since(start).Seconds()
}
