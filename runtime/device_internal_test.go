package runtime

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/astarte-gen/astarte-gen/runtime/model"
)

func TestRingDropsOldest(t *testing.T) {
	r := ring{limit: 3}
	var dropped int
	for i := range 5 {
		if r.push(volatileMsg{topic: string(rune('a' + i))}) {
			dropped++
		}
	}
	if dropped != 2 || r.dropped != 2 {
		t.Fatalf("dropped %d (counter %d), want 2", dropped, r.dropped)
	}
	var got []string
	for {
		v, ok := r.pop()
		if !ok {
			break
		}
		got = append(got, v.topic)
	}
	if diff := cmp.Diff([]string{"c", "d", "e"}, got); diff != "" {
		t.Errorf("ring order (-want +got):\n%s", diff)
	}
}

func TestBackoffGrowsWithJitterAndCap(t *testing.T) {
	d := &Device{cfg: Config{ReconnectMin: 100 * time.Millisecond, ReconnectMax: time.Second}}
	for attempt, base := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		base *= time.Millisecond
		for range 50 {
			got := d.backoff(attempt)
			if got < base/2 || got > base {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", attempt, got, base/2, base)
			}
		}
	}
}

func TestAppendTopic(t *testing.T) {
	levels, err := model.ParseEndpoint("/%{sensor_id}/value")
	if err != nil {
		t.Fatal(err)
	}
	got, err := appendTopic(nil, "test/dev", "org.x.S", levels, []string{"s1"})
	if err != nil || string(got) != "test/dev/org.x.S/s1/value" {
		t.Errorf("appendTopic = %q, %v", got, err)
	}
	got, err = appendTopic(nil, "test/dev", "org.x.O", nil, nil)
	if err != nil || string(got) != "test/dev/org.x.O/" {
		t.Errorf("depth-1 object topic = %q, %v", got, err)
	}
	for _, params := range [][]string{nil, {"a", "b"}, {"a/b"}, {"+"}, {""}} {
		if _, err := appendTopic(nil, "r/d", "i", levels, params); !errors.Is(err, model.ErrInvalidParameter) {
			t.Errorf("appendTopic(%q) = %v, want ErrInvalidParameter", params, err)
		}
	}
}

func TestCheckConfig(t *testing.T) {
	for _, realm := range []string{"", "Test", "1abc", "a-b", "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghi"} {
		cfg := Config{Realm: realm, DeviceID: "AJInS0w3VpWpuOqkXhgZdA"}
		if err := checkConfig(&cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("realm %q accepted", realm)
		}
	}
	cfg := Config{Realm: "test", DeviceID: "AJInS0w3VpWpuOqkXhgZdA"}
	if err := checkConfig(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.KeepAlive != 30*time.Second || cfg.MaxInFlight != 512 || cfg.VolatileCapacity != 1000 {
		t.Errorf("defaults not applied: %+v", cfg)
	}
	for _, id := range []string{"", "a/b", "a+b", "a#"} {
		cfg := Config{Realm: "test", DeviceID: id}
		if err := checkConfig(&cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("device ID %q accepted", id)
		}
	}
}
