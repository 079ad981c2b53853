package integration

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/astarte-gen/astarte-gen/internal/chaos"
	"github.com/astarte-gen/astarte-gen/internal/wire"
	"github.com/astarte-gen/astarte-gen/runtime/astartetest"
	"github.com/astarte-gen/astarte-gen/runtime/model"
)

// TestChaosMosquitto runs the seeded chaos scenario of internal/chaos
// against mosquitto: the device connects through a proxy that cuts its
// connections (anywhere in a QoS 2 flow, before or after the broker read
// the last packet), and mosquitto is restarted with its persistence, so the
// device's session is never lost. An observer subscribed at QoS 2 sees what
// mosquitto delivers. One seed by default (see internal/chaos for the
// environment variables that run more).
func TestChaosMosquitto(t *testing.T) {
	for _, seed := range chaos.Seeds(t, 1) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			a := astartetest.New(t, chaos.Installed, chaos.Props, chaos.Commands)
			a.SetWaitTimeout(15 * time.Second)
			b := startMosquitto(t, a)
			px := startProxy(t, fmt.Sprintf("127.0.0.1:%d", b.port))
			a.SetBrokerURL(fmt.Sprintf("mqtts://127.0.0.1:%d", px.port()))
			target := &mosquittoTarget{t: t, b: b, px: px, props: map[string]any{}, lastID: map[uint16]string{}}
			target.connectObserver(a)
			cfg, err := a.DeviceConfig(deviceA)
			if err != nil {
				t.Fatal(err)
			}
			cfg.StoreDir = t.TempDir()
			cfg.ReconnectMin, cfg.ReconnectMax = 20*time.Millisecond, 200*time.Millisecond
			cfg.Logger = slog.New(slog.NewTextHandler(&testLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
			chaos.Run(t, target, chaos.Options{Seed: seed, Duration: chaos.Duration(t)}, cfg)
		})
	}
}

// mosquittoTarget is mosquitto behind the proxy as a chaos target.
type mosquittoTarget struct {
	t    *testing.T
	b    *broker
	px   *proxy
	obs  mqtt.Client
	opts *mqtt.ClientOptions

	mu         sync.Mutex
	deliveries []chaos.Delivery
	props      map[string]any
	last       time.Time
	// lastID is the last message the observer got under each packet ID: a
	// DUP resend of it is mosquitto redelivering to the observer, not the
	// device sending twice.
	lastID map[uint16]string
}

// connectObserver subscribes a privileged client, with a persistent
// session and automatic reconnection, to everything the device publishes.
func (m *mosquittoTarget) connectObserver(a *astartetest.Astarte) {
	cert, err := a.IssueCertificate(observer)
	if err != nil {
		m.t.Fatal(err)
	}
	opts := mqtt.NewClientOptions().AddBroker(m.b.url()).SetClientID("test/" + observer).SetCleanSession(false).
		SetAutoReconnect(true).SetConnectRetry(true).SetMaxReconnectInterval(200 * time.Millisecond).
		SetDefaultPublishHandler(m.observe).
		SetTLSConfig(&tls.Config{RootCAs: a.CA().Pool(), Certificates: []tls.Certificate{cert}, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	m.opts = opts
	m.Resume()
	m.t.Cleanup(m.Pause)
	if tok := m.obs.Subscribe("test/"+deviceA+"/#", 2, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		m.t.Fatalf("observer subscribe: %v", tok.Error())
	}
}

// Pause disconnects the observer; mosquitto queues what it would get.
func (m *mosquittoTarget) Pause() { m.obs.Disconnect(100) }

// Resume connects the observer again, on its kept session.
func (m *mosquittoTarget) Resume() {
	m.obs = mqtt.NewClient(m.opts)
	if tok := m.obs.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		m.t.Fatalf("observer connect: %v", tok.Error())
	}
}

// observe records one message mosquitto delivered.
func (m *mosquittoTarget) observe(_ mqtt.Client, msg mqtt.Message) {
	rest, ok := strings.CutPrefix(msg.Topic(), "test/"+deviceA+"/")
	if !ok {
		return
	}
	name, path, _ := strings.Cut(rest, "/")
	path = "/" + path
	m.mu.Lock()
	defer m.mu.Unlock()
	if rest == "control/producer/properties" {
		m.purge(msg.Payload())
		return
	}
	m.last = time.Now()
	key := msg.Topic() + "\x00" + string(msg.Payload())
	if msg.Qos() == 2 {
		if msg.Duplicate() && m.lastID[msg.MessageID()] == key {
			return
		}
		m.lastID[msg.MessageID()] = key
	}
	switch name {
	case chaos.Data.Name:
		v, err := decode(chaos.Data, path, msg.Payload())
		if err != nil {
			m.t.Errorf("observer: %s: %v", msg.Topic(), err)
			return
		}
		m.deliveries = append(m.deliveries, chaos.Delivery{Interface: name, Path: path, Value: v, Session: 1})
	case chaos.Props.Name:
		if len(msg.Payload()) == 0 {
			delete(m.props, name+path)
			return
		}
		v, err := decode(chaos.Props, path, msg.Payload())
		if err != nil {
			m.t.Errorf("observer: %s: %v", msg.Topic(), err)
			return
		}
		m.props[name+path] = v
	}
}

// purge applies a producer/properties list as Astarte does: a device
// property it does not list is unset (a device relies on it after a full
// sync instead of resending unsets). m.mu must be held.
func (m *mosquittoTarget) purge(payload []byte) {
	list, err := wire.DecodePurge(payload)
	if err != nil {
		m.t.Errorf("observer: producer/properties: %v", err)
		return
	}
	keep := map[string]bool{}
	for _, e := range list {
		keep[e] = true
	}
	for key := range m.props {
		if !keep[key] {
			delete(m.props, key)
		}
	}
}

func decode(iface *model.Interface, path string, payload []byte) (any, error) {
	match, err := iface.Match(path)
	if err != nil {
		return nil, err
	}
	dec, err := wire.DecodeDevice(iface, match, payload)
	if err != nil {
		return nil, err
	}
	return dec.Value.Any(), nil
}

func (m *mosquittoTarget) Faults() []chaos.Fault {
	return []chaos.Fault{
		{Name: "drop (session kept)", Weight: 4, Do: func(*rand.Rand) { m.px.drop() }},
		{Name: "cut before the broker reads the next packet", Weight: 2, Do: func(*rand.Rand) { m.px.cutNext(false) }},
		{Name: "cut after the broker read the next packet", Weight: 2, Do: func(*rand.Rand) { m.px.cutNext(true) }},
		{Name: "broker restart (sessions saved)", Weight: 1, Do: func(rng *rand.Rand) {
			m.b.stop()
			time.Sleep(time.Duration(50+rng.IntN(250)) * time.Millisecond)
			m.b.start(mustLook(m.t))
		}},
	}
}

func (m *mosquittoTarget) Heal() {
	m.px.mu.Lock()
	m.px.cut = false
	m.px.mu.Unlock()
}

// Deliveries returns what the observer got, once mosquitto has had time to
// forward everything (the observer has been quiet for a moment).
func (m *mosquittoTarget) Deliveries() []chaos.Delivery {
	m.quiet()
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]chaos.Delivery(nil), m.deliveries...)
}

func (m *mosquittoTarget) Properties() map[string]any {
	m.quiet()
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.props)
}

// quiet waits until the observer is connected and has received nothing
// for half a second (at most 15 s).
func (m *mosquittoTarget) quiet() {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		m.mu.Lock()
		idle := time.Since(m.last)
		m.mu.Unlock()
		if m.obs.IsConnectionOpen() && idle > 500*time.Millisecond {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (m *mosquittoTarget) Command(v int32) error {
	var p wire.Payload
	p.Reset(chaos.Commands, 0)
	payload, err := p.Integer(v).Finish(time.Time{})
	if err != nil {
		return err
	}
	tok := m.obs.Publish("test/"+deviceA+"/"+chaos.Commands.Name+"/block", 2, false, payload)
	if !tok.WaitTimeout(2 * time.Second) {
		return fmt.Errorf("command not acknowledged in 2 s")
	}
	return tok.Error()
}

// RefusesPoison: mosquitto checks no data, so there is nothing to refuse.
func (m *mosquittoTarget) RefusesPoison() bool { return false }
