package runtime_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	astarte "github.com/astarte-gen/astarte-gen/runtime"
	"github.com/astarte-gen/astarte-gen/runtime/astartetest"
	"github.com/astarte-gen/astarte-gen/runtime/pairing"
)

// A certificate the broker refuses is checked with the Pairing API and, when
// invalid, replaced; the device then connects again by itself.
func TestRejectedCertificateIsReplaced(t *testing.T) {
	f := newFixture(t)
	f.a.RevokeCertificates(f.id)
	f.a.DropConnection(f.id)
	waitFor(t, func() bool { return f.a.PairingRequests(f.id)["credentials"] == 2 && f.d.State() == astarte.Connected })
	if got := f.a.PairingRequests(f.id)["verify"]; got < 1 {
		t.Errorf("the refused certificate was not verified first (%d verify requests)", got)
	}
	if err := f.d.Send(ctxT(t), qosIface.Name, "/unique", int32(7)); err != nil {
		t.Fatal(err)
	}
	if got := f.a.WaitReceived(t, f.id, 1); got[len(got)-1].Value != int32(7) {
		t.Errorf("after re-pairing, received %+v", got)
	}
}

// The device renews its certificate at the configured fraction of its
// validity and reconnects with the new one, without losing stored data.
func TestRotationBeforeExpiryLosesNothing(t *testing.T) {
	a := astartetest.New(t, retentionIface)
	a.SetCertificateLifetime(3 * time.Second)
	cfg := testConfig(t, a, "AJInS0w3VpWpuOqkXhgZdA")
	cfg.RenewFraction = 0.3 // renew after about a second
	d := newDevice(t, a, cfg, retentionIface)
	ctx := ctxT(t)
	const n = 200
	for i := range n {
		if err := d.Send(ctx, retentionIface.Name, "/stored", int64(i)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitFor(t, func() bool { return a.PairingRequests(cfg.DeviceID)["credentials"] >= 2 })
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	seen := map[any]bool{}
	for _, r := range a.WaitReceived(t, cfg.DeviceID, n) {
		seen[r.Value] = true
	}
	for i := range n {
		if !seen[int64(i)] {
			t.Fatalf("message %d lost during the certificate rotation", i)
		}
	}
	if a.Connections(cfg.DeviceID) < 2 {
		t.Error("the device did not reconnect with its renewed certificate")
	}
}

// Nothing a device logs while pairing, connecting and sending contains its
// credentials secret or its private key.
func TestLogsNeverHoldSecrets(t *testing.T) {
	a := astartetest.New(t, e2eIfaces...)
	var logs bytes.Buffer
	cfg := testConfig(t, a, "AJInS0w3VpWpuOqkXhgZdA")
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reported := &errorsSeen{}
	cfg.OnError = reported.add
	d := newDevice(t, a, cfg, e2eIfaces...)
	if err := d.Send(ctxT(t), qosIface.Name, "/unique", int32(1)); err != nil {
		t.Fatal(err)
	}
	a.RevokeCertificates(cfg.DeviceID) // exercise verify and re-pairing too
	a.DropConnection(cfg.DeviceID)
	waitFor(t, func() bool {
		return a.PairingRequests(cfg.DeviceID)["credentials"] == 2 && d.State() == astarte.Connected
	})
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(cfg.StoreDir, pairing.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	keyBody := strings.Join(strings.Split(strings.TrimSpace(string(key)), "\n")[1:], "")
	all := logs.String()
	for _, err := range reported.list() {
		all += "\n" + err.Error()
	}
	if logs.Len() == 0 {
		t.Fatal("nothing was logged; the test would prove nothing")
	}
	for name, secret := range map[string]string{"credentials secret": cfg.CredentialsSecret, "private key": keyBody[:40]} {
		if strings.Contains(all, secret) {
			t.Errorf("the %s appears in the logs", name)
		}
	}
}

// A device that restarts with a stored, unexpired certificate and broker
// URL connects without asking the Pairing API anything (Astarte's guide:
// connect first; pair only when the broker refuses). Reconnections don't
// ask it either, so a fleet coming back after a broker outage leaves it
// alone; and a device whose credentials an operator inhibited keeps
// connecting with the certificate it holds.
func TestStoredCertificateConnectsFirst(t *testing.T) {
	a := astartetest.New(t, retentionIface)
	cfg := testConfig(t, a, "AJInS0w3VpWpuOqkXhgZdA")
	first, err := astarte.New(cfg, retentionIface)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Connect(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	before := a.PairingRequests(cfg.DeviceID)
	if before["credentials"] != 1 {
		t.Fatalf("first start: %v pairing requests, want one certificate", before)
	}

	a.InhibitCredentials(cfg.DeviceID, true)
	d := newDevice(t, a, cfg, retentionIface)
	a.DropConnection(cfg.DeviceID)
	a.WaitConnections(t, cfg.DeviceID, 3)
	waitFor(t, func() bool { return d.State() == astarte.Connected })
	if err := d.Send(ctxT(t), retentionIface.Name, "/stored", int64(1)); err != nil {
		t.Fatal(err)
	}
	a.WaitReceived(t, cfg.DeviceID, 1)
	if after := a.PairingRequests(cfg.DeviceID); !maps.Equal(before, after) {
		t.Errorf("restart and reconnection asked the Pairing API: %v before, %v after", before, after)
	}
}

// Once connected, a device keeps no connection to the Pairing API open: it
// needs it once per certificate, and an idle keep-alive connection would
// hold a file descriptor per device for nothing.
func TestNoIdlePairingConnection(t *testing.T) {
	a := astartetest.New(t, retentionIface)
	newDevice(t, a, testConfig(t, a, "AJInS0w3VpWpuOqkXhgZdA"), retentionIface)
	a.WaitFor(t, "pairing connections closed", func() bool { return a.PairingConnections() == 0 })
	if a.PairingRequests("AJInS0w3VpWpuOqkXhgZdA")["credentials"] != 1 {
		t.Fatal("the device did not pair")
	}
}

// When renewal falls due while the Pairing API refuses it (the operator
// inhibited the device's credentials, or the API is down), the device stays
// connected with the certificate it holds, reports the failure, and retries
// with a growing delay, not in a tight loop.
func TestRenewalRefusedBacksOff(t *testing.T) {
	a := astartetest.New(t, retentionIface)
	a.SetCertificateLifetime(time.Hour)
	cfg := testConfig(t, a, "AJInS0w3VpWpuOqkXhgZdA")
	cfg.RenewFraction = 0.0001 // due 0.36 s after issue
	var failures atomic.Int32
	cfg.OnError = func(err error) {
		if errors.Is(err, astarte.ErrConnection) && errors.Is(err, pairing.ErrCredentialsInhibited) {
			failures.Add(1)
		}
	}
	a.InhibitCredentials(cfg.DeviceID, false)
	d := newDevice(t, a, cfg, retentionIface)
	a.InhibitCredentials(cfg.DeviceID, true)
	a.WaitFor(t, "a renewal refused", func() bool { return failures.Load() >= 1 })
	time.Sleep(2 * time.Second)
	n := 0
	for _, c := range a.PairingRequests(cfg.DeviceID) {
		n += c
	}
	if n > 6 {
		t.Errorf("%d Pairing API requests in about 2 s while inhibited (%v): a retry loop", n, a.PairingRequests(cfg.DeviceID))
	}
	if st := d.Status(); st.State != astarte.Connected || !st.Inhibited || !st.Paired {
		t.Errorf("status %+v: the device should stay connected with its valid certificate, and say it is inhibited", st)
	}
	if err := d.Send(ctxT(t), retentionIface.Name, "/stored", int64(5)); err != nil {
		t.Fatal(err)
	}
	a.WaitReceived(t, cfg.DeviceID, 1)
}

// A device without a credentials secret registers itself with a pairing
// token on its first start, keeps the secret beside its key (0600), and
// restarts without the token; the application approves the registration.
func TestSelfRegistration(t *testing.T) {
	a := astartetest.New(t, retentionIface)
	token, err := pairing.AgentToken(a.RealmPrivateKeyPEM(), []string{"POST::agent/devices"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var approved []string
	cfg := astarte.Config{
		Realm: a.Realm(), DeviceID: "AJInS0w3VpWpuOqkXhgZdA", PairingURL: a.PairingURL(), RootCAs: a.CA().Pool(),
		StoreDir: t.TempDir(), PairingToken: token,
		OnRegister: func(_ context.Context, id string) error { approved = append(approved, id); return nil },
	}
	d := newDevice(t, a, cfg, retentionIface)
	if err := d.Send(ctxT(t), retentionIface.Name, "/stored", int64(1)); err != nil {
		t.Fatal(err)
	}
	a.WaitReceived(t, cfg.DeviceID, 1)
	if err := d.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if len(approved) != 1 || approved[0] != cfg.DeviceID {
		t.Errorf("OnRegister calls: %v", approved)
	}
	info, err := os.Stat(filepath.Join(cfg.StoreDir, pairing.SecretFile))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("stored secret: %v, %v (want mode 0600)", info, err)
	}

	cfg.PairingToken = "" // the first start used it; the device keeps going without it
	d = newDevice(t, a, cfg, retentionIface)
	if err := d.Send(ctxT(t), retentionIface.Name, "/stored", int64(2)); err != nil {
		t.Fatal(err)
	}
	a.WaitReceived(t, cfg.DeviceID, 2)
	if len(approved) != 1 {
		t.Errorf("the device registered again: OnRegister calls %v", approved)
	}
}

// A device the Pairing API knows as registered, but whose store holds no
// secret, gets a typed error that says what to do; an application that
// refuses the registration keeps the device from registering.
func TestSelfRegistrationErrors(t *testing.T) {
	a := astartetest.New(t, retentionIface)
	token, err := pairing.AgentToken(a.RealmPrivateKeyPEM(), []string{"POST::agent/devices"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	paired := testConfig(t, a, "AJInS0w3VpWpuOqkXhgZdA")
	newDevice(t, a, paired, retentionIface) // obtains credentials: registered for good

	cfg := astarte.Config{
		Realm: a.Realm(), DeviceID: paired.DeviceID, PairingURL: a.PairingURL(), RootCAs: a.CA().Pool(),
		StoreDir: t.TempDir(), PairingToken: token,
	}
	d, err := astarte.New(cfg, retentionIface)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(ctxT(t))
	err = d.Connect(ctxT(t))
	if !errors.Is(err, pairing.ErrAlreadyRegistered) || !strings.Contains(err.Error(), "unregister it in Astarte") {
		t.Errorf("Connect of an already registered device without its secret: %v", err)
	}

	refusal := errors.New("not on the production line")
	cfg.DeviceID, cfg.StoreDir = "BBBBBBBBBBBBBBBBBBBBBA", t.TempDir()
	cfg.OnRegister = func(context.Context, string) error { return refusal }
	d2, err := astarte.New(cfg, retentionIface)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close(ctxT(t))
	if err := d2.Connect(ctxT(t)); !errors.Is(err, pairing.ErrRegistrationRefused) || !errors.Is(err, refusal) {
		t.Errorf("Connect with a refused registration: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.StoreDir, pairing.SecretFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused registration stored a secret: %v", err)
	}
}

// Status says who the device is, whether it holds a certificate and until
// when, its state, and why the last connection ended; the state hook gets
// the same snapshot on each change.
func TestStatus(t *testing.T) {
	a := astartetest.New(t, retentionIface)
	cfg := testConfig(t, a, "AJInS0w3VpWpuOqkXhgZdA")
	var mu sync.Mutex
	var seen []astarte.Status
	cfg.OnStateChange = func(s astarte.Status) {
		mu.Lock()
		seen = append(seen, s)
		mu.Unlock()
	}
	d, err := astarte.New(cfg, retentionIface)
	if err != nil {
		t.Fatal(err)
	}
	if st := d.Status(); st.DeviceID != cfg.DeviceID || d.DeviceID() != cfg.DeviceID || st.State != astarte.Disconnected || st.Paired || st.LastError != nil {
		t.Errorf("before Connect: %+v", st)
	}
	if err := d.Connect(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	st := d.Status()
	if st.State != astarte.Connected || !st.Paired || time.Until(st.CertificateExpiry) < time.Hour || st.Inhibited {
		t.Errorf("connected: %+v", st)
	}
	a.DropConnection(cfg.DeviceID)
	a.WaitFor(t, "the device back, knowing why it lost the connection", func() bool {
		st := d.Status()
		return st.State == astarte.Connected && st.LastError != nil && strings.Contains(st.LastError.Error(), "connection lost")
	})
	if err := d.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if st := d.Status(); st.State != astarte.Closed {
		t.Errorf("after Close: %+v", st)
	}
	mu.Lock()
	defer mu.Unlock()
	var states []astarte.State
	for _, s := range seen {
		states = append(states, s.State)
	}
	if len(states) < 5 || states[0] != astarte.Connecting || states[1] != astarte.Connected || states[len(states)-1] != astarte.Closed || !slices.Contains(states, astarte.Disconnected) {
		t.Errorf("the hook saw %v", states)
	}
}
