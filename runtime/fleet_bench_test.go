//go:build linux

package runtime_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/astarte-gen/astarte-gen/internal/wire"
	"github.com/astarte-gen/astarte-gen/runtime"
	"github.com/astarte-gen/astarte-gen/runtime/model"
	"github.com/astarte-gen/astarte-gen/runtime/pairing"
	"github.com/astarte-gen/astarte-gen/schema"
)

// BenchmarkIdleFleet measures what an idle connected device costs: N
// Devices (memory store) connected to cmd/astartetest running in another
// process, then N raw paho v1.5.1 clients with the runtime's TLS and MQTT
// settings (a certificate each from the Pairing API, clean session false,
// the same three subscriptions and the same three sync messages). Each
// fleet is measured after 10 s idle and two GCs against a baseline taken
// right before it started; it reports per client HeapInuse, StackInuse,
// goroutines and open fds, for the Device (dev-) and raw paho (raw-), and
// the ratios dev / raw, plus the fds a closed Device leaves open
// (dev-fds-after-close) and the live heap (HeapAlloc: what HeapInuse holds
// without the free slots of its spans, which vary from run to run by a
// KiB or so per client; dev-alloc-KiB, raw-alloc-KiB):
//
//	go test -run '^$' -bench IdleFleet -benchtime 1x ./runtime/
//
// ASTARTE_FLEET=10000 measures 10,000 clients of each kind (a few
// minutes); ASTARTE_FLEET_IDLE=2s shortens the idle time for a quick try;
// ASTARTE_FLEET_HEAPPROFILE=/tmp/fleet writes the heap profile of each
// idle fleet (-memprofile is written after both fleets closed) to
// /tmp/fleet.device and /tmp/fleet.raw, for
// go tool pprof -sample_index=inuse_space -diff_base /tmp/fleet.raw /tmp/fleet.device.
// The raw fleet runs first: a closed Device keeps its pairing connection
// open for up to 90 s, which would otherwise stay in the raw measurement.
func BenchmarkIdleFleet(b *testing.B) {
	n := envInt(b, "ASTARTE_FLEET", 1000)
	idle := 10 * time.Second
	if s := os.Getenv("ASTARTE_FLEET_IDLE"); s != "" {
		var err error
		if idle, err = time.ParseDuration(s); err != nil {
			b.Fatalf("ASTARTE_FLEET_IDLE: %v", err)
		}
	}
	if os.Getenv("ASTARTE_FLEET_HEAPPROFILE") != "" {
		goruntime.MemProfileRate = 1024 // precise enough to split 80 KiB per device
	}
	raiseFDLimit(b)
	f := startFleetFake(b, 2*n)
	for b.Loop() {
		raw, _ := measureFleet(b, "raw", idle, func() func() { return f.rawFleet(b, f.devices[n:]) })
		dev, left := measureFleet(b, "device", idle, func() func() { return f.deviceFleet(b, f.devices[:n]) })
		per := func(v float64) float64 { return v / float64(n) }
		b.ReportMetric(per(dev.heap)/1024, "dev-heap-KiB")
		b.ReportMetric(per(raw.heap)/1024, "raw-heap-KiB")
		b.ReportMetric(dev.heap/raw.heap, "heap-ratio")
		b.ReportMetric(per(dev.alloc)/1024, "dev-alloc-KiB")
		b.ReportMetric(per(raw.alloc)/1024, "raw-alloc-KiB")
		b.ReportMetric(per(dev.stack)/1024, "dev-stack-KiB")
		b.ReportMetric(per(raw.stack)/1024, "raw-stack-KiB")
		b.ReportMetric(dev.stack/raw.stack, "stack-ratio")
		b.ReportMetric(per(dev.goroutines), "dev-goroutines")
		b.ReportMetric(per(raw.goroutines), "raw-goroutines")
		b.ReportMetric(dev.goroutines/raw.goroutines, "goroutine-ratio")
		b.ReportMetric(per(dev.fds), "dev-fds")
		b.ReportMetric(per(raw.fds), "raw-fds")
		b.ReportMetric(dev.fds/raw.fds, "fd-ratio")
		b.ReportMetric(per(left.fds), "dev-fds-after-close")
	}
}

// fleetIfaces are the fleet's interfaces: two device-owned, two
// server-owned (so three subscriptions with the server's purge list).
var fleetIfaces = map[string]string{
	"telemetry.json": `{"interface_name": "org.astartegen.fleet.Telemetry", "version_major": 1, "version_minor": 0,
 "type": "datastream", "ownership": "device",
 "mappings": [{"endpoint": "/%{sensor}/value", "type": "double", "reliability": "guaranteed", "retention": "stored"}]}`,
	"reported.json": `{"interface_name": "org.astartegen.fleet.Reported", "version_major": 1, "version_minor": 0,
 "type": "properties", "ownership": "device",
 "mappings": [{"endpoint": "/rate", "type": "integer"}]}`,
	"commands.json": `{"interface_name": "org.astartegen.fleet.Commands", "version_major": 1, "version_minor": 0,
 "type": "datastream", "ownership": "server",
 "mappings": [{"endpoint": "/reboot", "type": "boolean", "reliability": "guaranteed"}]}`,
	"desired.json": `{"interface_name": "org.astartegen.fleet.Desired", "version_major": 1, "version_minor": 0,
 "type": "properties", "ownership": "server",
 "mappings": [{"endpoint": "/rate", "type": "integer"}]}`,
}

// fleetFake is cmd/astartetest running in another process.
type fleetFake struct {
	realm, pairingURL string
	roots             *x509.CertPool
	ifaces            []*model.Interface
	devices           []fleetDevice
}

type fleetDevice struct {
	DeviceID          string `json:"device_id"`
	CredentialsSecret string `json:"credentials_secret"`
}

// startFleetFake builds and starts cmd/astartetest with the fleet's
// interfaces and registers count devices: as many as fit in one argument
// with -devices, the rest through the control API.
func startFleetFake(b *testing.B, count int) *fleetFake {
	tmp := b.TempDir()
	dir := filepath.Join(tmp, "interfaces")
	if err := os.Mkdir(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	for name, text := range fleetIfaces {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	res, err := schema.Load([]string{dir})
	if err != nil || len(res.Errors()) > 0 {
		b.Fatalf("fleet interfaces: %v %v", err, res.Errors())
	}
	f := &fleetFake{roots: x509.NewCertPool()}
	for _, l := range res.Interfaces {
		f.ifaces = append(f.ifaces, l.Interface)
	}
	ids := make([]string, count)
	for i := range ids {
		if ids[i], err = pairing.DeviceIDFromNamespace("6ba7b810-9dad-11d1-80b4-00c04fd430c8", "fleet-"+strconv.Itoa(i)); err != nil {
			b.Fatal(err)
		}
	}
	inArgs := min(count, 4000) // one argument is limited to 128 KiB

	bin := filepath.Join(tmp, "astartetest")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/astarte-gen/astarte-gen/cmd/astartetest").CombinedOutput(); err != nil {
		b.Fatalf("go build cmd/astartetest: %v\n%s", err, out)
	}
	out := filepath.Join(tmp, "fake.json")
	// The fake stands for Astarte's servers, not what is measured: it may
	// hold two fds per device (MQTT, idle pairing connection), so it gets
	// more than this process when the system allows.
	cmd := exec.Command("sh", "-c", `ulimit -n 65536 2>/dev/null; exec "$0" "$@"`, bin,
		"-interfaces", dir, "-devices", strings.Join(ids[:inArgs], ","), "-out", out)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	var info struct {
		Realm      string        `json:"realm"`
		PairingURL string        `json:"pairing_url"`
		ControlURL string        `json:"control_url"`
		CAPEM      string        `json:"ca_pem"`
		Devices    []fleetDevice `json:"devices"`
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if data, err := os.ReadFile(out); err == nil {
			if err := json.Unmarshal(data, &info); err != nil {
				b.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("cmd/astartetest wrote no %s in 30 s: %s", out, log.String())
		}
	}
	if !f.roots.AppendCertsFromPEM([]byte(info.CAPEM)) {
		b.Fatal("no CA in the fake's output")
	}
	f.realm, f.pairingURL, f.devices = info.Realm, info.PairingURL, info.Devices
	for _, id := range ids[inArgs:] {
		resp, err := http.Post(info.ControlURL+"/devices", "application/json", strings.NewReader(`{"device_id":"`+id+`"}`))
		if err != nil {
			b.Fatal(err)
		}
		var d fleetDevice
		err = json.NewDecoder(resp.Body).Decode(&d)
		resp.Body.Close()
		if err != nil || d.CredentialsSecret == "" {
			b.Fatalf("register %s: HTTP %d, %v", id, resp.StatusCode, err)
		}
		f.devices = append(f.devices, d)
	}
	if len(f.devices) != count {
		b.Fatalf("%d devices registered, want %d", len(f.devices), count)
	}
	return f
}

// usage is what the process holds at one moment.
type usage struct{ heap, stack, goroutines, fds, alloc float64 }

func (u usage) minus(v usage) usage {
	return usage{u.heap - v.heap, u.stack - v.stack, u.goroutines - v.goroutines, u.fds - v.fds, u.alloc - v.alloc}
}

// sampleUsage runs two GCs and reads what the process holds.
func sampleUsage(b *testing.B) usage {
	goruntime.GC()
	goruntime.GC()
	var ms goruntime.MemStats
	goruntime.ReadMemStats(&ms)
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		b.Fatal(err)
	}
	return usage{float64(ms.HeapInuse), float64(ms.StackInuse), float64(goruntime.NumGoroutine()), float64(len(fds)), float64(ms.HeapAlloc)}
}

// measureFleet takes a baseline, starts a fleet, lets it idle, samples,
// closes it, and returns what the fleet held and what it left behind
// once closed.
func measureFleet(b *testing.B, name string, idle time.Duration, start func() (stop func())) (held, left usage) {
	settle()
	base := sampleUsage(b)
	t := time.Now()
	stop := start()
	b.Logf("%s fleet connected in %v", name, time.Since(t).Round(time.Millisecond))
	time.Sleep(idle)
	held = sampleUsage(b).minus(base)
	if path := os.Getenv("ASTARTE_FLEET_HEAPPROFILE"); path != "" {
		writeHeapProfile(b, path+"."+name)
	}
	stop()
	settle()
	return held, sampleUsage(b).minus(base)
}

// writeHeapProfile writes the live heap (as of the last GC) to path.
func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}

// settle waits (at most 5 s) until the goroutine count stops falling, so
// that a baseline does not count goroutines of a fleet still exiting.
func settle() {
	prev := goruntime.NumGoroutine()
	for range 50 {
		time.Sleep(100 * time.Millisecond)
		cur := goruntime.NumGoroutine()
		if cur >= prev {
			return
		}
		prev = cur
	}
}

// forEach runs do for 0..n-1 on a few workers and stops at the first error.
func forEach(b *testing.B, n int, do func(i int) error) {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		next = make(chan int)
	)
	for range 4 * goruntime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range next {
				if err := do(i); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("client %d: %w", i, err))
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		mu.Lock()
		failed := len(errs) > 0
		mu.Unlock()
		if failed {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if len(errs) > 0 {
		b.Fatalf("%d clients failed, first: %v", len(errs), errs[0])
	}
}

// deviceFleet connects a Device per registered device and returns what
// closes them.
func (f *fleetFake) deviceFleet(b *testing.B, devs []fleetDevice) func() {
	ds := make([]*runtime.Device, len(devs))
	closeAll := func() {
		forEach(b, len(ds), func(i int) error {
			if ds[i] != nil {
				_ = ds[i].Close(context.Background())
				ds[i] = nil // not counted in the next baseline
			}
			return nil
		})
	}
	b.Cleanup(closeAll) // after a failure
	forEach(b, len(devs), func(i int) error {
		d, err := runtime.New(runtime.Config{Realm: f.realm, DeviceID: devs[i].DeviceID, CredentialsSecret: devs[i].CredentialsSecret,
			PairingURL: f.pairingURL, RootCAs: f.roots}, f.ifaces...)
		if err != nil {
			return err
		}
		ds[i] = d
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return d.Connect(ctx)
	})
	return closeAll
}

// rawFleet connects a raw paho client per registered device, the way the
// runtime does it, and returns what disconnects them. The pairing calls
// share one HTTP client whose idle connections are closed afterwards.
func (f *fleetFake) rawFleet(b *testing.B, devs []fleetDevice) func() {
	transport := &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: f.roots}}
	pc, err := pairing.NewClient(f.pairingURL, f.realm, pairing.WithHTTPClient(&http.Client{Transport: transport, Timeout: 30 * time.Second}))
	if err != nil {
		b.Fatal(err)
	}
	filters := map[string]byte{"/control/consumer/properties": 2}
	for _, i := range f.ifaces {
		if i.Ownership == model.OwnershipServer {
			filters["/"+i.Name+"/#"] = 2
		}
	}
	intro := []byte(model.Introspection(f.ifaces))
	cs := make([]mqtt.Client, len(devs))
	stop := func() {
		forEach(b, len(cs), func(i int) error {
			if cs[i] != nil {
				cs[i].Disconnect(50)
				cs[i] = nil // not counted in the next baseline
			}
			return nil
		})
	}
	b.Cleanup(stop)
	forEach(b, len(devs), func(i int) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		m, err := pairing.NewManager(pairing.ManagerConfig{Client: pc, DeviceID: devs[i].DeviceID, Secret: devs[i].CredentialsSecret})
		if err != nil {
			return err
		}
		creds, err := m.Ensure(ctx)
		if err != nil {
			return err
		}
		base := f.realm + "/" + devs[i].DeviceID
		c, err := rawConnect(creds.Certificate, creds.BrokerURL, base, f.roots)
		if err != nil {
			return err
		}
		cs[i] = c
		subs := make(map[string]byte, len(filters))
		for suffix, q := range filters {
			subs[base+suffix] = q
		}
		if err := rawWait(c.SubscribeMultiple(subs, nil)); err != nil {
			return err
		}
		for _, m := range []struct {
			topic   string
			payload []byte
		}{{base, intro}, {base + "/control/emptyCache", []byte("1")}, {base + "/control/producer/properties", wire.EncodePurge(nil)}} {
			if err := rawWait(c.Publish(m.topic, 2, false, m.payload)); err != nil {
				return err
			}
		}
		return nil
	})
	transport.CloseIdleConnections()
	return stop
}

// raiseFDLimit raises the soft limit of open files to the hard one (Go
// does it at start since 1.19; this says so where the benchmark needs it).
func raiseFDLimit(b *testing.B) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("open files limit %d", lim.Cur)
}
