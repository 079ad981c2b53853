package runtime_test

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/astarte-gen/astarte-gen/internal/wire"
	"github.com/astarte-gen/astarte-gen/runtime"
	"github.com/astarte-gen/astarte-gen/runtime/astartetest"
	"github.com/astarte-gen/astarte-gen/runtime/model"
)

// The throughput benchmarks send {v: double, t: datetime} messages through
// the astartetest broker, once with raw paho publishing pre-encoded bytes
// (the ceiling) and once through the Device, and report both rates and
// their ratio from the same run:
//
//	go test -run '^$' -bench Throughput -benchtime 3x ./runtime/

var benchIface = &model.Interface{
	Name: "org.astartegen.bench.Values", Major: 1, Minor: 0,
	Type: model.Datastream, Ownership: model.OwnershipDevice,
	Mappings: []model.Mapping{
		{Endpoint: "/qos0", Type: model.Double, ExplicitTimestamp: true},
		{Endpoint: "/qos1", Type: model.Double, ExplicitTimestamp: true, Reliability: model.Guaranteed},
	},
}

const (
	benchBatch  = 20000
	benchWindow = 512 // in-flight QoS 1 messages, raw and Device alike
)

func BenchmarkThroughputQoS0(b *testing.B) { benchThroughput(b, 0) }

func BenchmarkThroughputQoS1(b *testing.B) { benchThroughput(b, 1) }

func benchThroughput(b *testing.B, qos byte) {
	a := astartetest.New(b, benchIface)
	raw := rawClient(b, a, "BBBBBBBBBBBBBBBBBBBBBA")
	cfg, err := a.DeviceConfig("AAAAAAAAAAAAAAAAAAAAAA")
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxInFlight = benchWindow
	d, err := runtime.New(cfg, benchIface)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close(context.Background())
	ctx := context.Background()
	if err := d.Connect(ctx); err != nil {
		b.Fatal(err)
	}
	ts := time.UnixMilli(1537449422890)
	var p wire.Payload
	p.Reset(benchIface, int(qos))
	payload, err := p.Double(16.73).Finish(ts)
	if err != nil {
		b.Fatal(err)
	}
	rawTopic := "test/BBBBBBBBBBBBBBBBBBBBBA/" + benchIface.Name + "/qos0"
	if qos == 1 {
		rawTopic = "test/BBBBBBBBBBBBBBBBBBBBBA/" + benchIface.Name + "/qos1"
	}
	var rawTime, devTime time.Duration
	sent := 0
	for b.Loop() {
		sent += benchBatch
		start := time.Now()
		rawPublish(b, raw, rawTopic, qos, payload)
		waitCount(b, a, "BBBBBBBBBBBBBBBBBBBBBA", sent)
		rawTime += time.Since(start)

		start = time.Now()
		for range benchBatch {
			m := runtime.GeneratedMessage(d, benchIface, int(qos))
			m.Double(16.73)
			if err := m.Send(ctx, ts); err != nil {
				b.Fatal(err)
			}
		}
		waitCount(b, a, cfg.DeviceID, sent)
		devTime += time.Since(start)
	}
	n := float64(b.N * benchBatch)
	rawRate, devRate := n/rawTime.Seconds(), n/devTime.Seconds()
	b.ReportMetric(rawRate, "raw-msgs/s")
	b.ReportMetric(devRate, "device-msgs/s")
	b.ReportMetric(devRate/rawRate, "ratio")
}

// rawClient connects a plain paho client as another device and publishes
// its introspection, as Astarte requires before data.
func rawClient(b *testing.B, a *astartetest.Astarte, id string) mqtt.Client {
	cert, err := a.IssueCertificate(id)
	if err != nil {
		b.Fatal(err)
	}
	opts := mqtt.NewClientOptions().AddBroker(a.BrokerURL()).SetClientID("test/" + id).
		SetCleanSession(false).SetAutoReconnect(false).
		SetTLSConfig(&tls.Config{RootCAs: a.CA().Pool(), Certificates: []tls.Certificate{cert}, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); tok.Wait() && tok.Error() != nil {
		b.Fatal(tok.Error())
	}
	b.Cleanup(func() { c.Disconnect(0) })
	if tok := c.Publish("test/"+id, 2, false, model.Introspection([]*model.Interface{benchIface})); tok.Wait() && tok.Error() != nil {
		b.Fatal(tok.Error())
	}
	return c
}

// rawPublish sends a batch of pre-encoded messages, pipelining QoS 1 within
// the same window the Device uses.
func rawPublish(b *testing.B, c mqtt.Client, topic string, qos byte, payload []byte) {
	window := make(chan mqtt.Token, benchWindow)
	done := make(chan struct{})
	go func() {
		for tok := range window {
			tok.Wait()
		}
		close(done)
	}()
	for range benchBatch {
		tok := c.Publish(topic, qos, false, payload)
		if qos > 0 {
			window <- tok
		}
	}
	close(window)
	<-done
}

// waitCount waits until Astarte has accepted want messages from a device.
func waitCount(b *testing.B, a *astartetest.Astarte, id string, want int) {
	deadline := time.Now().Add(time.Minute)
	for a.ReceivedCount(id) < want {
		if time.Now().After(deadline) {
			b.Fatalf("device %s: %d of %d messages arrived", id, a.ReceivedCount(id), want)
		}
		time.Sleep(200 * time.Microsecond)
	}
}
