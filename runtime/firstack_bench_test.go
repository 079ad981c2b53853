package runtime_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	astarte "github.com/astarte-gen/astarte-gen/runtime"
	"github.com/astarte-gen/astarte-gen/runtime/astartetest"
	"github.com/astarte-gen/astarte-gen/runtime/pairing"
)

// BenchmarkFirstAck measures the start of a device paired before: from
// New (bbolt store with the stored certificate and broker URL) through
// Connect and the Send of one guaranteed (QoS 1) message until Flush
// returns, i.e. the broker acknowledged it. In the same run raw paho loads
// its stored key and certificate, connects with the runtime's settings,
// publishes the same payload at QoS 1 and waits for the token. Both talk
// to the in-process fake Astarte; each iteration times one start of each,
// alternating which goes first, and the benchmark reports the medians and
// their ratio device / raw:
//
//	go test -run '^$' -bench FirstAck -benchtime 40x ./runtime/
func BenchmarkFirstAck(b *testing.B) {
	a := astartetest.New(b, benchIface)
	ctx := context.Background()
	ts := time.UnixMilli(1537449422890)

	cfg, err := a.DeviceConfig(benchDeviceID(b))
	if err != nil {
		b.Fatal(err)
	}
	cfg.StoreDir = b.TempDir()
	d, err := astarte.New(cfg, benchIface)
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Connect(ctx); err != nil { // pairs and stores the certificate
		b.Fatal(err)
	}
	mustClose(b, d)
	devStart := func() time.Duration {
		start := time.Now()
		d, err := astarte.New(cfg, benchIface)
		if err != nil {
			b.Fatal(err)
		}
		defer mustClose(b, d)
		if err := d.Connect(ctx); err != nil {
			b.Fatal(err)
		}
		m := d.Message(benchIface, 1)
		m.Double(16.73)
		if err := m.Send(ctx, ts); err != nil {
			b.Fatal(err)
		}
		if err := d.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}

	rawDir, rawBase := pairRaw(b, a)
	var p astarte.Payload
	p.Reset(benchIface, 1)
	payload, err := p.Double(16.73).Finish(ts)
	if err != nil {
		b.Fatal(err)
	}
	topic := rawBase + "/" + benchIface.Name + "/qos1"
	rawStart := func() time.Duration {
		start := time.Now()
		cert, err := tls.LoadX509KeyPair(filepath.Join(rawDir, pairing.CertFile), filepath.Join(rawDir, pairing.KeyFile))
		if err != nil {
			b.Fatal(err)
		}
		broker, err := os.ReadFile(filepath.Join(rawDir, pairing.BrokerFile))
		if err != nil {
			b.Fatal(err)
		}
		c, err := rawConnect(cert, strings.TrimSpace(string(broker)), rawBase, a.CA().Pool())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Disconnect(50)
		if err := rawWait(c.Publish(topic, 1, false, payload)); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}

	var devTimes, rawTimes []time.Duration
	for i := 0; b.Loop(); i++ {
		if i%2 == 0 {
			devTimes = append(devTimes, devStart())
			rawTimes = append(rawTimes, rawStart())
		} else {
			rawTimes = append(rawTimes, rawStart())
			devTimes = append(devTimes, devStart())
		}
	}
	dev, raw := median(devTimes), median(rawTimes)
	b.ReportMetric(float64(dev)/1e6, "device-ms")
	b.ReportMetric(float64(raw)/1e6, "raw-ms")
	b.ReportMetric(float64(dev)/float64(raw), "ratio")
}

// pairRaw obtains a certificate for a new device through the Pairing API,
// stores it in a directory the way a device keeps it, and connects once to
// publish the introspection (as a device does at its first start). It
// returns the directory and the device's topic root.
func pairRaw(b *testing.B, a *astartetest.Astarte) (dir, base string) {
	cfg, err := a.DeviceConfig(benchDeviceID(b))
	if err != nil {
		b.Fatal(err)
	}
	pc, err := pairing.NewClient(cfg.PairingURL, cfg.Realm, pairing.WithHTTPClient(&http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: cfg.RootCAs}}}))
	if err != nil {
		b.Fatal(err)
	}
	dir = b.TempDir()
	m, err := pairing.NewManager(pairing.ManagerConfig{Client: pc, DeviceID: cfg.DeviceID, Secret: cfg.CredentialsSecret, Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	creds, err := m.Ensure(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	base = cfg.Realm + "/" + cfg.DeviceID
	c, err := rawConnect(creds.Certificate, creds.BrokerURL, base, a.CA().Pool())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Disconnect(50)
	if err := rawWait(c.Publish(base, 2, false, astarte.Introspection([]*astarte.Interface{benchIface}))); err != nil {
		b.Fatal(err)
	}
	return dir, base
}

// median returns the middle of ds (the mean of the two middle ones for an
// even count).
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
