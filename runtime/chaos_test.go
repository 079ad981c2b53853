package runtime_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/astarte-gen/astarte-gen/internal/chaos"
	"github.com/astarte-gen/astarte-gen/runtime/astartetest"
)

// TestChaos runs seeded chaos scenarios against the fake Astarte (see
// package internal/chaos for the workload, the invariants and the
// environment variables that choose seeds and duration).
func TestChaos(t *testing.T) {
	for _, seed := range chaos.Seeds(t, 3) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			a := astartetest.New(t, chaos.Installed, chaos.Props, chaos.Commands)
			cfg := testConfig(t, a, "AJInS0w3VpWpuOqkXhgZdA")
			target := &fakeTarget{a: a, id: cfg.DeviceID}
			chaos.Run(t, target, chaos.Options{Seed: seed, Duration: chaos.Duration(t)}, cfg)
		})
	}
}

// fakeTarget is the fake Astarte as a chaos target: every fault it has.
type fakeTarget struct {
	a  *astartetest.Astarte
	id string
}

func (f *fakeTarget) Faults() []chaos.Fault {
	return []chaos.Fault{
		{Name: "drop, session kept", Weight: 4, Do: func(*rand.Rand) { f.a.DropConnection(f.id) }},
		{Name: "drop, session lost", Weight: 2, Do: func(*rand.Rand) { f.a.ClearSession(f.id); f.a.DropConnection(f.id) }},
		{Name: "drop at the next PUBREL", Weight: 2, Do: func(*rand.Rand) { f.a.DropOnPacket(f.id, astartetest.PacketPubrel, 1) }},
		{Name: "drop at the next PUBLISH", Weight: 1, Do: func(*rand.Rand) { f.a.DropOnPacket(f.id, astartetest.PacketPublish, 1) }},
		{Name: "broker restart", Weight: 1, Do: func(rng *rand.Rand) {
			f.a.StopBroker()
			time.Sleep(time.Duration(50+rng.IntN(250)) * time.Millisecond)
			if err := f.a.StartBroker(); err != nil {
				panic(err)
			}
		}},
	}
}

func (f *fakeTarget) Heal() { f.a.DropOnPacket(f.id, astartetest.PacketPubrel, 0) }

func (f *fakeTarget) Deliveries() []chaos.Delivery {
	received, sessions := f.a.ReceivedSessions(f.id)
	out := make([]chaos.Delivery, len(received))
	for i, r := range received {
		out[i] = chaos.Delivery{Interface: r.Interface, Path: r.Path, Value: r.Value, Session: sessions[i]}
	}
	return out
}

func (f *fakeTarget) Properties() map[string]any { return f.a.DeviceProperties(f.id) }

func (f *fakeTarget) Command(v int32) error {
	return f.a.SendDatastream(f.id, chaos.Commands.Name, "/block", v)
}

func (f *fakeTarget) RefusesPoison() bool { return true }
