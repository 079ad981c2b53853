// Package integration runs the runtime against Debian's mosquitto, a broker
// this project did not write, configured as Astarte's broker is: mutual TLS,
// the certificate CN as identity, and an ACL confining each device to its
// own topics. The certificates come from astartetest's Pairing API.
package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/google/go-cmp/cmp"

	"github.com/astarte-gen/astarte-gen/runtime"
	"github.com/astarte-gen/astarte-gen/runtime/astartetest"
)

const (
	deviceA  = "AJInS0w3VpWpuOqkXhgZdA"
	deviceB  = "BBBBBBBBBBBBBBBBBBBBBA"
	observer = "OBSERVER"
)

var (
	values = &runtime.Interface{
		Name: "org.astartegen.it.Values", Major: 1, Type: runtime.Datastream, Ownership: runtime.OwnershipDevice,
		Mappings: []runtime.Mapping{
			{Endpoint: "/qos0", Type: runtime.Integer},
			{Endpoint: "/qos1", Type: runtime.Integer, Reliability: runtime.Guaranteed},
			{Endpoint: "/qos2", Type: runtime.Integer, Reliability: runtime.Unique},
			{Endpoint: "/stored", Type: runtime.Integer, Reliability: runtime.Guaranteed, Retention: runtime.Stored},
		},
	}
	commands = &runtime.Interface{
		Name: "org.astartegen.it.Commands", Major: 1, Type: runtime.Datastream, Ownership: runtime.OwnershipServer,
		Mappings: []runtime.Mapping{{Endpoint: "/run", Type: runtime.String, Reliability: runtime.Unique}},
	}
)

// broker is a mosquitto process.
type broker struct {
	t    *testing.T
	dir  string
	port int
	cmd  *exec.Cmd
}

// startMosquitto configures and starts mosquitto with certificates from a.
func startMosquitto(t *testing.T, a *astartetest.Astarte) *broker {
	path, err := exec.LookPath("mosquitto")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("mosquitto is not installed; CI must install it (apt-get install mosquitto)")
		}
		t.Skip("mosquitto not installed (apt-get install mosquitto); skipping the integration suite")
	}
	// Run as root, mosquitto drops to its own user, which must reach these
	// files: t.TempDir sits under a 0700 directory, so use one of our own.
	dir, err := os.MkdirTemp("", "astartegen-mosquitto-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	server := a.CA().ServerCertificate()
	keyDER, err := x509.MarshalPKCS8PrivateKey(server.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"ca.pem":     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.CA().Certificate().Raw}),
		"server.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: server.Certificate[0]}),
		"server.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		"acl":        []byte("user test/" + observer + "\ntopic readwrite #\n\npattern readwrite %u/#\n"),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b := &broker{t: t, dir: dir, port: freePort(t)}
	conf := fmt.Sprintf(`per_listener_settings true
persistence true
persistence_location %[1]s/
log_dest stderr
max_inflight_messages 0
max_queued_messages 1000000
listener %[2]d 127.0.0.1
cafile %[1]s/ca.pem
certfile %[1]s/server.pem
keyfile %[1]s/server.key
require_certificate true
use_identity_as_username true
use_username_as_clientid true
allow_anonymous false
acl_file %[1]s/acl
`, dir, b.port)
	if err := os.WriteFile(filepath.Join(dir, "mosquitto.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	b.start(path)
	t.Cleanup(b.stop)
	return b
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (b *broker) url() string { return fmt.Sprintf("mqtts://127.0.0.1:%d", b.port) }

func (b *broker) start(path string) {
	b.cmd = exec.Command(path, "-c", filepath.Join(b.dir, "mosquitto.conf"))
	b.cmd.Stderr = &testLog{b.t}
	if err := b.cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", b.port))
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("mosquitto did not listen: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop terminates mosquitto, which saves its persistent sessions.
func (b *broker) stop() {
	if b.cmd == nil || b.cmd.Process == nil {
		return
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	_ = b.cmd.Wait()
	b.cmd = nil
}

type testLog struct{ t *testing.T }

func (l *testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// client connects a raw paho client with a certificate for id.
func client(t *testing.T, a *astartetest.Astarte, b *broker, id string, handler mqtt.MessageHandler) mqtt.Client {
	cert, err := a.IssueCertificate(id)
	if err != nil {
		t.Fatal(err)
	}
	opts := mqtt.NewClientOptions().AddBroker(b.url()).SetClientID("test/" + id).SetCleanSession(false).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).SetDefaultPublishHandler(handler).
		SetTLSConfig(&tls.Config{RootCAs: a.CA().Pool(), Certificates: []tls.Certificate{cert}, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// seen is what the observer received: value per path, with the QoS.
type seen struct {
	Path  string
	Value any
	QoS   byte
}

// observe subscribes a privileged observer to the device's data.
func observe(t *testing.T, a *astartetest.Astarte, b *broker, cert tls.Certificate) (mqtt.Client, chan seen) {
	ch := make(chan seen, 256)
	handler := func(_ mqtt.Client, m mqtt.Message) {
		path, ok := strings.CutPrefix(m.Topic(), "test/"+deviceA+"/"+values.Name)
		if !ok {
			return
		}
		match, err := values.Match(path)
		if err != nil {
			return
		}
		dec, err := runtime.DecodeDevicePayload(values, match, m.Payload())
		if err != nil {
			t.Errorf("observer: %s: %v", m.Topic(), err)
			return
		}
		ch <- seen{Path: path, Value: dec.Value.Any(), QoS: m.Qos()}
	}
	opts := mqtt.NewClientOptions().AddBroker(b.url()).SetClientID("test/" + observer).SetCleanSession(false).
		SetAutoReconnect(false).SetDefaultPublishHandler(handler).
		SetTLSConfig(&tls.Config{RootCAs: a.CA().Pool(), Certificates: []tls.Certificate{cert}, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("observer connect: %v", tok.Error())
	}
	if tok := c.Subscribe("test/"+deviceA+"/"+values.Name+"/#", 2, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("observer subscribe: %v", tok.Error())
	}
	return c, ch
}

func collect(t *testing.T, ch <-chan seen, n int) []seen {
	t.Helper()
	var got []seen
	for len(got) < n {
		select {
		case s := <-ch:
			got = append(got, s)
		case <-time.After(15 * time.Second):
			t.Fatalf("observer got %d of %d messages: %+v", len(got), n, got)
		}
	}
	return got
}

func TestMosquitto(t *testing.T) {
	a := astartetest.New(t, values, commands)
	a.SetWaitTimeout(15 * time.Second) // mosquitto restarts take longer
	b := startMosquitto(t, a)
	a.SetBrokerURL(b.url())
	observerCert, err := a.IssueCertificate(observer)
	if err != nil {
		t.Fatal(err)
	}
	obs, ch := observe(t, a, b, observerCert)
	cfg, err := a.DeviceConfig(deviceA)
	if err != nil {
		t.Fatal(err)
	}
	cfg.StoreDir = t.TempDir()
	cfg.ReconnectMin, cfg.ReconnectMax = 50*time.Millisecond, 500*time.Millisecond
	d, err := runtime.New(cfg, values, commands)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	got := make(chan string, 4)
	if err := d.Handle(commands, func(_ context.Context, in *runtime.Incoming) error {
		s, err := in.Value.String()
		got <- s
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := d.Connect(ctx); err != nil {
		t.Fatal(err)
	}

	t.Run("publish at each QoS", func(t *testing.T) {
		for i, p := range []string{"/qos0", "/qos1", "/qos2"} {
			if err := d.Send(ctx, values.Name, p, int32(i)); err != nil {
				t.Fatal(err)
			}
		}
		want := []seen{{"/qos0", int32(0), 0}, {"/qos1", int32(1), 1}, {"/qos2", int32(2), 2}}
		if diff := cmp.Diff(want, collect(t, ch, 3)); diff != "" {
			t.Errorf("observer (-want +got):\n%s", diff)
		}
	})

	t.Run("receive", func(t *testing.T) {
		var p runtime.Payload
		p.Reset(commands, 0)
		payload, err := p.String("reboot").Finish(time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		obs.Publish("test/"+deviceA+"/"+commands.Name+"/run", 2, false, payload).WaitTimeout(5 * time.Second)
		select {
		case s := <-got:
			if s != "reboot" {
				t.Errorf("handler got %q", s)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("server data did not reach the handler")
		}
	})

	t.Run("ACL refuses another device's topic", func(t *testing.T) {
		// Device B publishes a valid value on device A's topic; the observer,
		// subscribed to A's data, must not see it. (mosquitto 2.0 drops the
		// denied publish; it does not close the connection.)
		var p runtime.Payload
		p.Reset(values, 1)
		payload, err := p.Integer(99).Finish(time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		other := client(t, a, b, deviceB, func(mqtt.Client, mqtt.Message) {})
		other.Publish("test/"+deviceA+"/"+values.Name+"/qos1", 1, false, payload).WaitTimeout(2 * time.Second)
		select {
		case s := <-ch:
			t.Errorf("the foreign publish was delivered: %+v", s)
		case <-time.After(500 * time.Millisecond):
		}
		// The same client may use its own topics.
		if tok := other.Publish("test/"+deviceB+"/x", 1, false, payload); !tok.WaitTimeout(2*time.Second) || tok.Error() != nil {
			t.Errorf("publishing on its own topic: %v", tok.Error())
		}
	})

	t.Run("persistent session across a restart, stored data delivered", func(t *testing.T) {
		obs.Disconnect(100) // its session (and subscription) stays in mosquitto
		b.stop()
		a.WaitFor(t, "device disconnected", func() bool { return d.State() != runtime.Connected })
		for i := range 20 {
			if err := d.Send(ctx, values.Name, "/stored", int32(i)); err != nil {
				t.Fatal(err)
			}
		}
		b.start(mustLook(t))
		a.WaitFor(t, "device reconnected", func() bool { return d.State() == runtime.Connected })
		if err := d.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		_, ch2 := observe(t, a, b, observerCert) // same client id: the queued messages arrive
		delivered := map[any]bool{}
		for _, s := range collect(t, ch2, 20) {
			delivered[s.Value] = true
		}
		for i := range 20 {
			if !delivered[int32(i)] {
				t.Errorf("stored message %d not delivered after the restart", i)
			}
		}
	})
}

func mustLook(t *testing.T) string {
	path, err := exec.LookPath("mosquitto")
	if err != nil {
		t.Fatal(err)
	}
	return path
}
