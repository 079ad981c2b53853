package runtime_test

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/astarte-gen/astarte-gen/runtime"
	"github.com/astarte-gen/astarte-gen/runtime/astartetest"
	"github.com/astarte-gen/astarte-gen/runtime/model"
	"github.com/astarte-gen/astarte-gen/runtime/store"
)

var retentionIface = &model.Interface{
	Name: "org.astartegen.e2e.Retention", Major: 1, Minor: 0,
	Type: model.Datastream, Ownership: model.OwnershipDevice,
	Mappings: []model.Mapping{
		{Endpoint: "/stored", Type: model.LongInteger, Reliability: model.Guaranteed, Retention: model.Stored},
		{Endpoint: "/volatile", Type: model.LongInteger, Reliability: model.Guaranteed, Retention: model.Volatile},
		{Endpoint: "/discard", Type: model.LongInteger, Reliability: model.Guaranteed},
		{Endpoint: "/expiring", Type: model.LongInteger, Reliability: model.Guaranteed, Retention: model.Stored, Expiry: time.Second},
	},
}

// valuesAt returns the values received on one path, in arrival order.
func valuesAt(got []astartetest.Received, path string) []any {
	var out []any
	for _, r := range got {
		if r.Path == path {
			out = append(out, r.Value)
		}
	}
	return out
}

func TestBrokerOutageRetention(t *testing.T) {
	a := astartetest.New(t, retentionIface)
	cfg := testConfig(t, a, "AJInS0w3VpWpuOqkXhgZdA")
	cfg.VolatileCapacity = 10
	d := newDevice(t, a, cfg, retentionIface)
	ctx := ctxT(t)
	a.StopBroker()
	waitFor(t, func() bool { return d.State() != runtime.Connected })
	for i := range int64(15) {
		for _, p := range []string{"/stored", "/volatile"} {
			if err := d.Send(ctx, retentionIface.Name, p, i); err != nil {
				t.Fatal(err)
			}
		}
		if err := d.Send(ctx, retentionIface.Name, "/discard", i); !errors.Is(err, runtime.ErrNotConnected) {
			t.Fatalf("discard while offline: %v, want ErrNotConnected", err)
		}
	}
	if n := d.VolatileDropped(); n != 5 {
		t.Errorf("volatile queue of 10 dropped %d of 15, want 5 (the oldest)", n)
	}
	if err := a.StartBroker(); err != nil {
		t.Fatal(err)
	}
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := a.WaitReceived(t, cfg.DeviceID, 25)
	stored, volatile := valuesAt(got, "/stored"), valuesAt(got, "/volatile")
	for i := range 15 {
		if i >= len(stored) || stored[i] != int64(i) {
			t.Fatalf("stored values %v: want 0..14 in order", stored)
		}
	}
	for i := range 10 {
		if i >= len(volatile) || volatile[i] != int64(i+5) {
			t.Fatalf("volatile values %v: want the newest 10, 5..14", volatile)
		}
	}
	if len(valuesAt(got, "/discard")) != 0 {
		t.Error("discard data was queued")
	}
}

func TestExpiredStoredDataIsDropped(t *testing.T) {
	a := astartetest.New(t, retentionIface)
	cfg := testConfig(t, a, "AJInS0w3VpWpuOqkXhgZdA")
	d := newDevice(t, a, cfg, retentionIface)
	ctx := ctxT(t)
	a.StopBroker()
	waitFor(t, func() bool { return d.State() != runtime.Connected })
	for _, p := range []string{"/expiring", "/stored"} {
		if err := d.Send(ctx, retentionIface.Name, p, int64(1)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(1100 * time.Millisecond) // past the 1 s expiry
	if err := a.StartBroker(); err != nil {
		t.Fatal(err)
	}
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := a.WaitReceived(t, cfg.DeviceID, 1)
	if len(valuesAt(got, "/expiring")) != 0 || len(valuesAt(got, "/stored")) != 1 {
		t.Errorf("received %+v: the expired message must be dropped, the other delivered", got)
	}
}

func TestStoredCapacityRefusesNewData(t *testing.T) {
	a := astartetest.New(t, retentionIface)
	cfg := testConfig(t, a, "AJInS0w3VpWpuOqkXhgZdA")
	cfg.StoredCapacity = 3
	d := newDevice(t, a, cfg, retentionIface)
	a.StopBroker()
	waitFor(t, func() bool { return d.State() != runtime.Connected })
	for i := range int64(3) {
		if err := d.Send(ctxT(t), retentionIface.Name, "/stored", i); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Send(ctxT(t), retentionIface.Name, "/stored", int64(3)); !errors.Is(err, runtime.ErrQueueFull) {
		t.Errorf("fourth message with capacity 3: %v, want ErrQueueFull", err)
	}
}

func TestPropertiesOfflineSessionLossAndMajorChange(t *testing.T) {
	a := astartetest.New(t, deviceProps)
	cfg := testConfig(t, a, "AJInS0w3VpWpuOqkXhgZdA")
	d := newDevice(t, a, cfg, deviceProps)
	ctx := ctxT(t)
	set := func(d *runtime.Device, led string, v int32) {
		t.Helper()
		m := runtime.GeneratedMessage(d, deviceProps, 0, led)
		m.Integer(v)
		if err := m.Send(ctx, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	set(d, "a", 1)
	a.WaitReceived(t, cfg.DeviceID, 1)
	// Changed while offline: sent after the reconnection.
	a.StopBroker()
	waitFor(t, func() bool { return d.State() != runtime.Connected })
	set(d, "b", 2)
	if err := a.StartBroker(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return a.DeviceProperties(cfg.DeviceID)[deviceProps.Name+"/b/brightness"] == int32(2) })
	// After a session loss every set property is sent again, with the
	// purge list.
	before := len(a.Received(cfg.DeviceID))
	a.ClearSession(cfg.DeviceID)
	a.DropConnection(cfg.DeviceID)
	got := a.WaitReceived(t, cfg.DeviceID, before+2)
	resent := map[string]any{}
	for _, r := range got[before:] {
		resent[r.Path] = r.Value
	}
	if resent["/a/brightness"] != int32(1) || resent["/b/brightness"] != int32(2) {
		t.Errorf("after a session loss resent %v, want both properties", resent)
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The interface's major changes: the old values are dropped.
	v2 := *deviceProps
	v2.Major = 2
	d2, err := runtime.New(cfg, &v2)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close(context.Background())
	if _, ok, err := runtime.GeneratedProperty(d2, &v2, 0, "a"); ok || err != nil {
		t.Errorf("property of major 1 survived the change to major 2 (%v)", err)
	}
}

// The crash test runs a device in a child process (this test binary,
// re-executed) that sends numbered stored, guaranteed messages, and kills it
// with SIGKILL at random moments. Every number must reach Astarte.
// ASTARTE_CRASH_MESSAGES raises the count (default 2,000).

const crashChildEnv = "ASTARTEGEN_CRASH_CHILD"

func TestCrashLosesNoStoredData(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		crashChild(t)
		return
	}
	// Both durability modes: one fsync per Send, and Config.SyncInterval,
	// where a process crash must lose nothing either.
	for _, sync := range []string{"0", "50ms"} {
		t.Run("sync-interval-"+sync, func(t *testing.T) { crashTest(t, sync) })
	}
}

func crashTest(t *testing.T, syncInterval string) {
	total := 2000
	if n, err := strconv.Atoi(os.Getenv("ASTARTE_CRASH_MESSAGES")); err == nil && n > 0 {
		total = n
	}
	a := astartetest.New(t, retentionIface)
	cfg := testConfig(t, a, "AJInS0w3VpWpuOqkXhgZdA")
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.CA().Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	next, kills := 0, 0
	for attempt := 0; next < total; attempt++ {
		var killed bool
		next, killed = runCrashChild(t, cfg, caFile, syncInterval, next, total, attempt < 8)
		if killed {
			kills++
		}
	}
	if kills < 3 {
		t.Errorf("only %d of the child runs were killed mid-stream; the test proves little", kills)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		seen := map[any]bool{}
		for _, r := range a.Received(cfg.DeviceID) {
			seen[r.Value] = true
		}
		missing := -1
		for i := range total {
			if !seen[int64(i)] {
				missing = i
				break
			}
		}
		if missing < 0 {
			t.Logf("%d messages, %d kills, %d deliveries (duplicates allowed)", total, kills, len(a.Received(cfg.DeviceID)))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %d never arrived (%d kills)", missing, kills)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runCrashChild runs the child from message next; with kill it is killed
// after a random delay. It returns the number after the last message the
// child reported as durably queued, and whether the kill interrupted it.
func runCrashChild(t *testing.T, cfg runtime.Config, caFile, syncInterval string, next, total int, kill bool) (int, bool) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashLosesNoStoredData$", "-test.v")
	cmd.Env = append(os.Environ(), crashChildEnv+"=1", "CRASH_SYNC="+syncInterval,
		"CRASH_SECRET="+cfg.CredentialsSecret, "CRASH_PAIRING="+cfg.PairingURL, "CRASH_CA="+caFile,
		"CRASH_STORE="+cfg.StoreDir, "CRASH_FROM="+strconv.Itoa(next), "CRASH_TO="+strconv.Itoa(total))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if kill {
		delay := time.Duration(20+rand.IntN(80)) * time.Millisecond
		timer := time.AfterFunc(delay, func() { _ = cmd.Process.Signal(syscall.SIGKILL) })
		defer timer.Stop()
	}
	scanner := bufio.NewScanner(out)
	for scanner.Scan() {
		var n int
		if _, err := fmt.Sscanf(scanner.Text(), "queued %d", &n); err == nil && n >= next {
			next = n + 1
		}
	}
	err = cmd.Wait()
	if !kill && err != nil {
		t.Fatalf("child failed: %v", err)
	}
	return next, err != nil
}

// crashChild is the device process: it sends CRASH_FROM..CRASH_TO-1 and
// prints "queued N" after each Send returns (the message is then durable
// against a crash of the process).
func crashChild(t *testing.T) {
	pemCA, err := os.ReadFile(os.Getenv("CRASH_CA"))
	if err != nil {
		t.Fatal(err)
	}
	a := &runtime.Config{
		Realm: "test", DeviceID: "AJInS0w3VpWpuOqkXhgZdA", CredentialsSecret: os.Getenv("CRASH_SECRET"),
		PairingURL: os.Getenv("CRASH_PAIRING"), StoreDir: os.Getenv("CRASH_STORE"),
		ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond,
	}
	a.RootCAs = poolFromPEM(t, pemCA)
	if a.SyncInterval, err = time.ParseDuration(os.Getenv("CRASH_SYNC")); err != nil {
		t.Fatal(err)
	}
	d, err := runtime.New(*a, retentionIface)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := d.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	from, _ := strconv.Atoi(os.Getenv("CRASH_FROM"))
	to, _ := strconv.Atoi(os.Getenv("CRASH_TO"))
	for i := from; i < to; i++ {
		if err := d.Send(ctx, retentionIface.Name, "/stored", int64(i)); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("queued %d\n", i)
	}
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func poolFromPEM(t *testing.T, pemCA []byte) *x509.CertPool {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemCA) {
		t.Fatal("no CA certificate in PEM")
	}
	return pool
}

// After a clean Close the device knows every packet identifier the broker
// may hold, so the next process releases those and nothing else: no blind
// window of a thousand PUBRELs (a round trip) before its first message. A
// unique message sent after the restart still arrives once.
func TestRestartAfterCloseReleasesOnlyKnownFlows(t *testing.T) {
	a := astartetest.New(t, qosIface)
	cfg := testConfig(t, a, "AJInS0w3VpWpuOqkXhgZdA")
	ctx := ctxT(t)
	d := newDevice(t, a, cfg, qosIface)
	for i := range 10 {
		if err := d.Send(ctx, qosIface.Name, "/unique", int32(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	before := a.Pubrels(cfg.DeviceID)
	d = newDevice(t, a, cfg, qosIface)
	if err := d.Send(ctx, qosIface.Name, "/unique", int32(10)); err != nil {
		t.Fatal(err)
	}
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := a.Pubrels(cfg.DeviceID) - before; n > 3 {
		t.Errorf("the restarted device sent %d PUBRELs for one new message", n)
	}
	if got := valuesAt(a.WaitReceived(t, cfg.DeviceID, 11), "/unique"); len(got) != 11 {
		t.Errorf("received %v", got)
	}
}

// stoppedBrokerDevice is a connected device whose broker then stops.
func stoppedBrokerDevice(t *testing.T, a *astartetest.Astarte, cfg runtime.Config) *runtime.Device {
	t.Helper()
	d := newDevice(t, a, cfg, retentionIface)
	a.StopBroker()
	waitFor(t, func() bool { return d.State() != runtime.Connected })
	return d
}

// A full stored queue whose messages all expired accepts new data: the
// expired ones are evicted first, and counted.
func TestFullQueueOfExpiredMessagesAcceptsNewData(t *testing.T) {
	a := astartetest.New(t, retentionIface)
	cfg := testConfig(t, a, "AJInS0w3VpWpuOqkXhgZdA")
	cfg.StoredCapacity = 3
	d := stoppedBrokerDevice(t, a, cfg)
	ctx := ctxT(t)
	for i := range int64(3) {
		if err := d.Send(ctx, retentionIface.Name, "/expiring", i); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(1100 * time.Millisecond) // the mapping's expiry is 1 s
	if err := d.Send(ctx, retentionIface.Name, "/stored", int64(10)); err != nil {
		t.Fatalf("send into a full queue of expired messages: %v", err)
	}
	st, err := d.QueueStats(ctx)
	if err != nil || st.Stored != 1 || st.StoredExpired != 3 || st.StoredEvicted != 0 {
		t.Errorf("stats %+v, %v; want 1 queued, 3 expired", st, err)
	}
	if err := a.StartBroker(); err != nil {
		t.Fatal(err)
	}
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := valuesAt(a.Received(cfg.DeviceID), "/expiring"); len(got) != 0 {
		t.Errorf("expired messages delivered: %v", got)
	}
	if got := valuesAt(a.WaitReceived(t, cfg.DeviceID, 1), "/stored"); len(got) != 1 || got[0] != int64(10) {
		t.Errorf("received %v", got)
	}
}

// With DropOldestWhenFull a full queue drops its oldest messages for new
// ones, and counts them; the default refuses (TestStoredCapacityRefusesNewData).
func TestFullQueueDropsOldest(t *testing.T) {
	a := astartetest.New(t, retentionIface)
	cfg := testConfig(t, a, "AJInS0w3VpWpuOqkXhgZdA")
	cfg.StoredCapacity = 3
	cfg.StoredQueueFull = runtime.DropOldestWhenFull
	d := stoppedBrokerDevice(t, a, cfg)
	ctx := ctxT(t)
	for i := range int64(5) {
		if err := d.Send(ctx, retentionIface.Name, "/stored", i); err != nil {
			t.Fatal(err)
		}
	}
	st, err := d.QueueStats(ctx)
	if err != nil || st.Stored != 3 || st.StoredEvicted != 2 {
		t.Errorf("stats %+v, %v; want 3 queued, 2 evicted", st, err)
	}
	if err := a.StartBroker(); err != nil {
		t.Fatal(err)
	}
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]any{int64(2), int64(3), int64(4)}, valuesAt(a.WaitReceived(t, cfg.DeviceID, 3), "/stored")); diff != "" {
		t.Errorf("delivered (-want +got):\n%s", diff)
	}
}

// The volatile queue drops expired messages before its oldest one, and
// counts both.
func TestVolatileQueueCounters(t *testing.T) {
	iface := &model.Interface{
		Name: "org.astartegen.e2e.Volatile", Major: 1, Type: model.Datastream, Ownership: model.OwnershipDevice,
		Mappings: []model.Mapping{
			{Endpoint: "/short", Type: model.Integer, Reliability: model.Guaranteed, Retention: model.Volatile, Expiry: time.Second},
			{Endpoint: "/long", Type: model.Integer, Reliability: model.Guaranteed, Retention: model.Volatile},
		},
	}
	a := astartetest.New(t, iface)
	cfg := testConfig(t, a, "AJInS0w3VpWpuOqkXhgZdA")
	cfg.VolatileCapacity = 2
	d := newDevice(t, a, cfg, iface)
	a.StopBroker()
	waitFor(t, func() bool { return d.State() != runtime.Connected })
	ctx := ctxT(t)
	send := func(path string, v int32) {
		t.Helper()
		if err := d.Send(ctx, iface.Name, path, v); err != nil {
			t.Fatal(err)
		}
	}
	send("/long", 1)
	send("/short", 2)
	time.Sleep(1100 * time.Millisecond)
	send("/long", 3) // full: the expired /short goes, /long 1 stays
	send("/long", 4) // full, nothing expired: the oldest (1) goes
	st, err := d.QueueStats(ctx)
	if err != nil || st.Volatile != 2 || st.VolatileExpired != 1 || st.VolatileEvicted != 1 {
		t.Errorf("stats %+v, %v; want 2 queued, 1 expired, 1 evicted", st, err)
	}
	if err := a.StartBroker(); err != nil {
		t.Fatal(err)
	}
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := a.WaitReceived(t, cfg.DeviceID, 2)
	if len(got) != 2 || got[0].Value != int32(3) || got[1].Value != int32(4) {
		t.Errorf("received %+v", got)
	}
}

// Devices of one process can share one store file (store.Shared): each
// keeps its own queue, and the process holds one descriptor for all.
func TestDevicesShareOneStoreFile(t *testing.T) {
	a := astartetest.New(t, retentionIface)
	dir := t.TempDir()
	shared, err := store.OpenShared(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer shared.Close()
	ctx := ctxT(t)
	ids := []string{"AAAAAAAAAAAAAAAAAAAAAA", "BBBBBBBBBBBBBBBBBBBBBA", "CCCCCCCCCCCCCCCCCCCCCA", "DDDDDDDDDDDDDDDDDDDDDA"}
	for n, id := range ids {
		st, err := shared.Store(id)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		cfg := testConfig(t, a, id)
		cfg.StoreDir, cfg.Store = "", st
		d := newDevice(t, a, cfg, retentionIface)
		if err := d.Send(ctx, retentionIface.Name, "/stored", int64(n)); err != nil {
			t.Fatal(err)
		}
		if err := d.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for n, id := range ids {
		if got := valuesAt(a.WaitReceived(t, id, 1), "/stored"); len(got) != 1 || got[0] != int64(n) {
			t.Errorf("device %s received %v", id, got)
		}
	}
	if n := fdsUnder(t, dir); n != 1 {
		t.Errorf("%d descriptors open on the shared store directory, want 1", n)
	}
}

// fdsUnder counts this process's descriptors on files under dir.
func fdsUnder(t *testing.T, dir string) int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	n := 0
	for _, e := range entries {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(target, dir) {
			n++
		}
	}
	return n
}
