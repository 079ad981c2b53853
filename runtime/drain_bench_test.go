package runtime_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	astarte "github.com/astarte-gen/astarte-gen/runtime"
	"github.com/astarte-gen/astarte-gen/runtime/astartetest"
)

// BenchmarkDrainBacklog measures how fast a Device empties a stored
// backlog after reconnecting: a paired device (bbolt store) is restarted
// with 100,000 stored messages queued while it was offline, then the timer
// runs from Connect until the in-process fake Astarte has received them
// all. In the same run, before and after the device, raw paho publishes
// the same payloads at QoS 1 with the same in-flight window (512) on a
// connection already open, until the fake has received as many; ratio is
// device / raw rate (raw: the mean time of both). Sub-benchmarks
// are the store's durability: fsync-each (the default) and sync-10ms
// (Config.SyncInterval):
//
//	go test -run '^$' -bench DrainBacklog -benchtime 1x ./runtime/
//
// ASTARTE_DRAIN_MESSAGES=20000 drains fewer.
func BenchmarkDrainBacklog(b *testing.B) {
	count := envInt(b, "ASTARTE_DRAIN_MESSAGES", 100_000)
	for _, bc := range []struct {
		name string
		sync time.Duration
	}{{"fsync-each", 0}, {"sync-10ms", 10 * time.Millisecond}} {
		b.Run(bc.name, func(b *testing.B) {
			a := astartetest.New(b, storedBenchIface)
			var p astarte.Payload
			p.Reset(storedBenchIface, 0)
			payload, err := p.Double(16.73).Finish(time.Time{})
			if err != nil {
				b.Fatal(err)
			}
			var devTime, rawTime time.Duration
			for b.Loop() {
				// raw before and after the device, so that a load change
				// on the machine weighs on both sides
				rawTime += drainRaw(b, a, benchDeviceID(b), count, payload) / 2
				devTime += drainDevice(b, a, benchDeviceID(b), count, bc.sync)
				rawTime += drainRaw(b, a, benchDeviceID(b), count, payload) / 2
			}
			n := float64(b.N * count)
			devRate, rawRate := n/devTime.Seconds(), n/rawTime.Seconds()
			b.ReportMetric(devRate, "device-msgs/s")
			b.ReportMetric(rawRate, "raw-msgs/s")
			b.ReportMetric(devRate/rawRate, "ratio")
		})
	}
}

// drainDevice pairs a device, queues count stored messages while it is
// offline (with a sync interval, which only makes queueing faster), and
// returns how long the device took from Connect, with the given
// durability, until the fake received them all.
func drainDevice(b *testing.B, a *astartetest.Astarte, id string, count int, sync time.Duration) time.Duration {
	cfg, err := a.DeviceConfig(id)
	if err != nil {
		b.Fatal(err)
	}
	cfg.StoreDir = filepath.Join(b.TempDir(), "store")
	cfg.StoredCapacity = 2 * count
	ctx := context.Background()
	open := func(sync time.Duration) *astarte.Device {
		c := cfg
		c.SyncInterval = sync
		d, err := astarte.New(c, storedBenchIface)
		if err != nil {
			b.Fatal(err)
		}
		return d
	}
	d := open(0) // paired once, so the timed start needs no Pairing API
	if err := d.Connect(ctx); err != nil {
		b.Fatal(err)
	}
	mustClose(b, d)
	before := a.ReceivedCount(id)

	d = open(10 * time.Millisecond)
	for i := range count {
		if err := d.Send(ctx, storedBenchIface.Name, "/v", float64(i)); err != nil {
			b.Fatal(err)
		}
	}
	mustClose(b, d)

	d = open(sync)
	defer mustClose(b, d)
	start := time.Now()
	if err := d.Connect(ctx); err != nil {
		b.Fatal(err)
	}
	waitReceived(b, a, id, before+count)
	return time.Since(start)
}

// drainRaw connects a raw paho client (introspection first, untimed) and
// returns how long publishing count payloads at QoS 1 with benchWindow in
// flight took until the fake received them all.
func drainRaw(b *testing.B, a *astartetest.Astarte, id string, count int, payload []byte) time.Duration {
	cert, err := a.IssueCertificate(id)
	if err != nil {
		b.Fatal(err)
	}
	base := a.Realm() + "/" + id
	c, err := rawConnect(cert, a.BrokerURL(), base, a.CA().Pool())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Disconnect(50)
	if err := rawWait(c.Publish(base, 2, false, astarte.Introspection([]*astarte.Interface{storedBenchIface}))); err != nil {
		b.Fatal(err)
	}
	before := a.ReceivedCount(id)
	start := time.Now()
	publishWindowed(b, c, base+"/"+storedBenchIface.Name+"/v", payload, count)
	waitReceived(b, a, id, before+count)
	return time.Since(start)
}

// publishWindowed publishes count messages at QoS 1 keeping at most
// benchWindow unacknowledged.
func publishWindowed(b *testing.B, c mqtt.Client, topic string, payload []byte, count int) {
	window := make(chan mqtt.Token, benchWindow)
	failed := make(chan error, 1)
	go func() {
		defer close(failed)
		for tok := range window {
			if err := rawWait(tok); err != nil {
				failed <- err
				for range window {
				}
				return
			}
		}
	}()
	for range count {
		window <- c.Publish(topic, 1, false, payload)
	}
	close(window)
	if err := <-failed; err != nil {
		b.Fatal(err)
	}
}

// waitReceived waits until the fake has accepted want messages from id.
func waitReceived(b *testing.B, a *astartetest.Astarte, id string, want int) {
	deadline := time.Now().Add(5 * time.Minute)
	for a.ReceivedCount(id) < want {
		if time.Now().After(deadline) {
			b.Fatalf("device %s: %d of %d messages arrived", id, a.ReceivedCount(id), want)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

func mustClose(b *testing.B, d *astarte.Device) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		b.Fatal(err)
	}
}
