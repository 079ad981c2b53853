package pairing_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/astarte-gen/astarte-gen/runtime/astartetest"
	"github.com/astarte-gen/astarte-gen/runtime/pairing"
)

var ctx = context.Background()

func TestDeviceIDVectors(t *testing.T) {
	for _, v := range []struct{ ns, data, want string }{
		{"f79ad91f-c638-4889-ae74-9d001a3b4cf8", "myidentifierdata", "AJInS0w3VpWpuOqkXhgZdA"},
		{"b068931c-c450-342b-a3f5-b3d276ea4297", "0099112233", "dvt9mLDaWb2vW7bdBJwKCg"},
	} {
		got, err := pairing.DeviceIDFromNamespace(v.ns, v.data)
		if err != nil || got != v.want {
			t.Errorf("DeviceIDFromNamespace(%s, %s) = %q, %v; want %q", v.ns, v.data, got, err, v.want)
		}
	}
	id, err := pairing.RandomDeviceID()
	if err != nil || len(id) != 22 || pairing.ValidateDeviceID(id) != nil {
		t.Errorf("RandomDeviceID = %q, %v", id, err)
	}
	for _, bad := range []string{"", "short", "AJInS0w3VpWpuOqkXhgZdB", "AJInS0w3VpWpuOqkXhgZdA==", "AJInS0w3VpWpuOqkXhgZd+"} {
		if err := pairing.ValidateDeviceID(bad); !errors.Is(err, pairing.ErrInvalidDeviceID) {
			t.Errorf("ValidateDeviceID(%q) = %v", bad, err)
		}
	}
}

func TestPlainHTTPRefused(t *testing.T) {
	if _, err := pairing.NewClient("http://pairing.example/", "test"); !errors.Is(err, pairing.ErrInsecureURL) {
		t.Errorf("http:// without opt-in: %v", err)
	}
	if _, err := pairing.NewClient("http://127.0.0.1/", "test", pairing.AllowInsecureHTTP()); err != nil {
		t.Errorf("http:// with opt-in: %v", err)
	}
}

type env struct {
	a      *astartetest.Astarte
	client *pairing.Client
	id     string
	secret string
	logs   *bytes.Buffer
}

func newEnv(t *testing.T) *env {
	a := astartetest.New(t)
	httpClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: a.CA().Pool()}}}
	client, err := pairing.NewClient(a.PairingURL(), a.Realm(), pairing.WithHTTPClient(httpClient))
	if err != nil {
		t.Fatal(err)
	}
	id := "AJInS0w3VpWpuOqkXhgZdA"
	secret, err := a.RegisterDevice(id)
	if err != nil {
		t.Fatal(err)
	}
	return &env{a: a, client: client, id: id, secret: secret, logs: &bytes.Buffer{}}
}

func (e *env) manager(t *testing.T, dir, secret string) *pairing.Manager {
	m, err := pairing.NewManager(pairing.ManagerConfig{
		Client: e.client, DeviceID: e.id, Secret: secret, Dir: dir,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestFirstPairingReuseAndFiles(t *testing.T) {
	e := newEnv(t)
	dir := filepath.Join(t.TempDir(), "creds")
	creds, err := e.manager(t, dir, e.secret).Ensure(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cn := creds.Leaf.Subject.CommonName; cn != "test/"+e.id {
		t.Errorf("certificate CN %q", cn)
	}
	if creds.BrokerURL != strings.TrimSuffix(e.a.BrokerURL(), "/") {
		t.Errorf("broker URL %q, fake says %q", creds.BrokerURL, e.a.BrokerURL())
	}
	for name, mode := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, pairing.KeyFile): 0o600} {
		if st, err := os.Stat(name); err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s mode %v (%v), want %v", name, st.Mode().Perm(), err, mode)
		}
	}
	// A restart (new Manager, same directory) reuses the certificate.
	again, err := e.manager(t, dir, e.secret).Ensure(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Leaf.Equal(creds.Leaf) {
		t.Error("restart obtained a new certificate instead of reusing the stored one")
	}
	if n := e.a.PairingRequests(e.id)["credentials"]; n != 1 {
		t.Errorf("%d credential requests, want 1", n)
	}
	m := e.manager(t, dir, e.secret)
	if _, err := m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := m.Verify(ctx); err != nil || !v.Valid || v.Until.IsZero() {
		t.Errorf("Verify = %+v, %v", v, err)
	}
	e.a.RevokeCertificates(e.id)
	if v, err := m.Verify(ctx); err != nil || v.Valid || v.Cause != "REVOKED" {
		t.Errorf("revoked: Verify = %+v, %v", v, err)
	}
	assertNoSecrets(t, e, dir)
}

func TestExpiredCertificateIsReplaced(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	e.a.SetCertificateLifetime(-time.Second) // issued already expired
	m := e.manager(t, dir, e.secret)
	if _, err := m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := m.Verify(ctx); err != nil || v.Cause != "EXPIRED" {
		t.Errorf("Verify of an expired certificate = %+v, %v", v, err)
	}
	e.a.SetCertificateLifetime(time.Hour)
	creds, err := e.manager(t, dir, e.secret).Ensure(ctx)
	if err != nil || time.Until(creds.Leaf.NotAfter) < 30*time.Minute {
		t.Fatalf("Ensure after expiry = %v, %v", creds.Leaf.NotAfter, err)
	}
	if n := e.a.PairingRequests(e.id)["credentials"]; n != 2 {
		t.Errorf("%d credential requests, want 2", n)
	}
}

func TestTypedErrors(t *testing.T) {
	e := newEnv(t)
	if _, err := e.manager(t, "", "wrong-secret").Ensure(ctx); !errors.Is(err, pairing.ErrUnauthorized) {
		t.Errorf("wrong secret: %v", err)
	}
	e.a.InhibitCredentials(e.id, true)
	if _, err := e.manager(t, "", e.secret).Ensure(ctx); !errors.Is(err, pairing.ErrCredentialsInhibited) {
		t.Errorf("inhibited: %v", err)
	}
	e.a.UnregisterDevice(e.id)
	if _, err := e.manager(t, "", e.secret).Ensure(ctx); !errors.Is(err, pairing.ErrDeviceNotFound) {
		t.Errorf("unregistered: %v", err)
	}
	for _, err := range []error{pairing.ErrUnauthorized, pairing.ErrDeviceNotFound} {
		if pairing.IsRetryable(err) {
			t.Errorf("%v must not be retryable", err)
		}
	}
	assertNoSecrets(t, e, "")
}

func TestRegistration(t *testing.T) {
	e := newEnv(t)
	token, err := pairing.AgentToken(e.a.RealmPrivateKeyPEM(), []string{"POST::agent/devices"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := e.client.Register(ctx, token, "dvt9mLDaWb2vW7bdBJwKCg", map[string]pairing.Version{"org.x.Y": {Major: 1}})
	if err != nil || len(secret) != 44 {
		t.Fatalf("Register = %q, %v", secret, err)
	}
	if _, err := e.client.RegisterWithKey(ctx, e.a.RealmPrivateKeyPEM(), "AAAAAAAAAAAAAAAAAAAAAA", nil); err != nil {
		t.Errorf("RegisterWithKey: %v", err)
	}
	narrow, _ := pairing.AgentToken(e.a.RealmPrivateKeyPEM(), []string{"GET::agent/devices"}, time.Minute)
	if _, err := e.client.Register(ctx, narrow, "BBBBBBBBBBBBBBBBBBBBBA", nil); !errors.Is(err, pairing.ErrUnauthorized) {
		t.Errorf("token without POST permission: %v", err)
	}
	if _, err := e.client.Register(ctx, "not-a-jwt", "BBBBBBBBBBBBBBBBBBBBBA", nil); !errors.Is(err, pairing.ErrUnauthorized) {
		t.Errorf("garbage token: %v", err)
	}
	// Once the device obtained credentials, registering again fails.
	if _, err := e.manager(t, "", e.secret).Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.Register(ctx, token, e.id, nil); !errors.Is(err, pairing.ErrAlreadyRegistered) {
		t.Errorf("registering a confirmed device: %v", err)
	}
	if err := e.client.Unregister(ctx, mustToken(t, e), e.id); err != nil {
		t.Errorf("Unregister: %v", err)
	}
}

func mustToken(t *testing.T, e *env) string {
	tok, err := pairing.AgentToken(e.a.RealmPrivateKeyPEM(), nil, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// assertNoSecrets checks that neither the credentials secret nor the
// private key reached the logs.
func assertNoSecrets(t *testing.T, e *env, dir string) {
	t.Helper()
	logs := e.logs.String()
	if strings.Contains(logs, e.secret) {
		t.Error("the credentials secret appears in the logs")
	}
	if dir == "" {
		return
	}
	key, err := os.ReadFile(filepath.Join(dir, pairing.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Join(strings.Split(string(key), "\n")[1:3], "")
	if strings.Contains(logs, body) {
		t.Error("the private key appears in the logs")
	}
}
