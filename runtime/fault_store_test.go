package runtime_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	astarte "github.com/astarte-gen/astarte-gen/runtime"
	"github.com/astarte-gen/astarte-gen/runtime/store"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

const (
	storeChildEnv = "ASTARTE_FAULT_STORE_CHILD"
	pristineQueue = 3000
	pageSize      = 4096
)

// storeOutcome is what the child process saw.
type storeOutcome struct {
	NewErr      string // New's error, if it failed
	Damaged     bool   // New's error wraps *store.DamagedError
	Quarantined bool   // an ErrStore report wrapping store.ErrDamaged
	ErrorLog    bool   // an ERROR log line (with the counts, for a quarantine)
	Queued      int
	Dead        int
	CorruptSeen int // ErrDeadLetter reports wrapping store.ErrDamaged
	Property    bool
	SendAfter   bool // a stored Send worked afterwards
}

// pristineStore builds a store with 3,000 queued messages and a property
// the way a device leaves it, and returns the file's bytes.
func pristineStore(t *testing.T) []byte {
	dir := t.TempDir()
	s, err := store.OpenBolt(dir)
	if err != nil {
		t.Fatal(err)
	}
	payload := bsoncore.NewDocumentBuilder().AppendDouble("v", 1.5).AppendDateTime("t", 1_700_000_000_000).Build()
	msgs := make([]*store.Message, pristineQueue)
	for i := range msgs {
		msgs[i] = &store.Message{Interface: timesIface.Name, Major: 1, Path: "/ts", QoS: 1, Payload: payload}
	}
	if err := s.Enqueue(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	if err := s.PutProperty(context.Background(), store.Property{PropertyKey: store.PropertyKey{Interface: propsIface.Name, Major: 1, Path: "/name"},
		Value: bsoncore.NewDocumentBuilder().AppendString("v", "kept").Build()}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

var propsIface = &astarte.Interface{
	Name: "org.astartegen.fault.Props", Major: 1, Type: astarte.Properties, Ownership: astarte.OwnershipDevice,
	Mappings: []astarte.Mapping{{Endpoint: "/name", Type: astarte.String}},
}

// TestDamagedStoreNeverCrashes runs runtime.New on damaged copies of a
// store in a child process each, so that a crash (SIGSEGV, SIGBUS, a panic
// in bbolt) is a failed case, not a dead test binary. Every case must end
// in one of two ways: the file is quarantined (reported at ERROR and
// through OnError, the device starts empty and works), or it opens and
// nothing is silently lost (every message is queued or a dead letter).
func TestDamagedStoreNeverCrashes(t *testing.T) {
	if os.Getenv(storeChildEnv) != "" {
		damagedStoreChild(t)
		return
	}
	pristine := pristineStore(t)
	t.Logf("pristine store: %d bytes, %d pages", len(pristine), len(pristine)/pageSize)
	type damage struct {
		name  string
		apply func(path string, data []byte) error
	}
	truncate := func(n int) func(string, []byte) error {
		return func(path string, data []byte) error { return os.WriteFile(path, data[:n], 0o600) }
	}
	zero := func(from, to int) func(string, []byte) error {
		return func(path string, data []byte) error {
			d := bytes.Clone(data)
			clear(d[from:to])
			return os.WriteFile(path, d, 0o600)
		}
	}
	flips := func(seed uint64, n int) func(string, []byte) error {
		return func(path string, data []byte) error {
			r := rand.New(rand.NewPCG(seed, seed))
			d := bytes.Clone(data)
			for range n {
				i := 2*pageSize + r.IntN(len(d)-2*pageSize) // past the meta pages
				d[i] ^= 1 << r.IntN(8)
			}
			return os.WriteFile(path, d, 0o600)
		}
	}
	cases := []damage{
		{"0 bytes", truncate(0)},
		{"a directory in place of the file", func(path string, _ []byte) error { return os.Mkdir(path, 0o700) }},
		{"zeroed meta pages", zero(0, 2*pageSize)},
		{"zeroed first meta page", zero(0, pageSize)},
		{"garbage", func(path string, _ []byte) error {
			return os.WriteFile(path, bytes.Repeat([]byte("not a store "), 2000), 0o600)
		}},
	}
	for _, n := range []int{pageSize, 2 * pageSize, 3 * pageSize, 4 * pageSize, len(pristine) / 2 / pageSize * pageSize, len(pristine) - pageSize} {
		cases = append(cases, damage{fmt.Sprintf("truncated at page boundary %d", n), truncate(n)})
	}
	for _, n := range []int{100, pageSize + 100, 2*pageSize + 7, 3*pageSize - 1, 10_000, len(pristine)/2 + 123} {
		cases = append(cases, damage{fmt.Sprintf("truncated inside a page at %d", n), truncate(n)})
	}
	for seed := range uint64(12) {
		cases = append(cases, damage{fmt.Sprintf("random bit flip, seed %d", seed), flips(seed, 1)})
	}
	for seed := range uint64(4) {
		cases = append(cases, damage{fmt.Sprintf("64 random bit flips, seed %d", seed), flips(100+seed, 64)})
	}
	var quarantined, opened, dead int
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := c.apply(filepath.Join(dir, store.FileName), pristine); err != nil {
				t.Fatal(err)
			}
			out := runStoreChild(t, dir, "")
			switch {
			case out.Quarantined:
				quarantined++
				if !out.ErrorLog || !out.SendAfter || out.Queued != 1 {
					t.Errorf("quarantined but %+v; want an ERROR log line and a working empty store", out)
				}
				if moved, _ := filepath.Glob(filepath.Join(dir, store.FileName+".damaged-*")); len(moved) != 1 {
					t.Errorf("damaged file not kept aside: %v", moved)
				}
			case out.NewErr != "":
				t.Errorf("New failed: %s", out.NewErr)
			default:
				opened++
				dead += out.Dead
				if out.Queued+out.Dead != pristineQueue+1 || out.CorruptSeen != out.Dead {
					t.Errorf("opened with %d queued and %d dead letters (%d reported) of %d: data lost silently", out.Queued, out.Dead, out.CorruptSeen, pristineQueue+1)
				}
				if !out.Property && out.Dead == 0 {
					t.Error("property lost silently")
				}
			}
			// With FailOnDamagedStore, New fails with the typed error and
			// leaves the file alone (checked on the first few).
			if out.Quarantined && quarantined <= 4 {
				if err := c.apply(filepath.Join(dir, store.FileName+".fail"), pristine); err != nil {
					t.Fatal(err)
				}
				if err := os.RemoveAll(filepath.Join(dir, store.FileName)); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(filepath.Join(dir, store.FileName+".fail"), filepath.Join(dir, store.FileName)); err != nil {
					t.Fatal(err)
				}
				if out := runStoreChild(t, dir, "fail"); !out.Damaged || out.Quarantined {
					t.Errorf("FailOnDamagedStore: %+v, want New to fail with *store.DamagedError", out)
				}
			}
		})
	}
	t.Logf("%d cases: %d quarantined, %d opened (%d entries moved to the dead letters)", len(cases), quarantined, opened, dead)
}

func runStoreChild(t *testing.T, dir, policy string) storeOutcome {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDamagedStoreNeverCrashes$")
	// The race detector sleeps a second before a process exits
	// (atexit_sleep_ms); the children have no goroutines left to wait for.
	cmd.Env = append(os.Environ(), storeChildEnv+"="+dir, "ASTARTE_FAULT_POLICY="+policy,
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("child process failed (%v): a crash on a damaged store\n%s%s", err, tail(stdout.String()), tail(stderr.String()))
	}
	_, line, ok := strings.Cut(stdout.String(), "OUTCOME ")
	var out storeOutcome
	if !ok || json.Unmarshal([]byte(strings.SplitN(line, "\n", 2)[0]), &out) != nil {
		t.Fatalf("child said:\n%s%s", tail(stdout.String()), tail(stderr.String()))
	}
	return out
}

func tail(s string) string {
	if len(s) > 4000 {
		return "…" + s[len(s)-4000:]
	}
	return s
}

// damagedStoreChild is the device process of TestDamagedStoreNeverCrashes.
func damagedStoreChild(t *testing.T) {
	var out storeOutcome
	var logs bytes.Buffer
	cfg := astarte.Config{Realm: "test", DeviceID: "AJInS0w3VpWpuOqkXhgZdA", PairingURL: "https://127.0.0.1:1/pairing",
		StoreDir: os.Getenv(storeChildEnv), Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		OnError: func(err error) {
			switch {
			case errors.Is(err, astarte.ErrStore) && errors.Is(err, store.ErrDamaged):
				out.Quarantined = true
			case errors.Is(err, astarte.ErrDeadLetter) && errors.Is(err, store.ErrDamaged):
				out.CorruptSeen++
			}
		}}
	if os.Getenv("ASTARTE_FAULT_POLICY") == "fail" {
		cfg.DamagedStore = astarte.FailOnDamagedStore
	}
	ctx := context.Background()
	d, err := astarte.New(cfg, timesIface, propsIface)
	if err != nil {
		var damaged *store.DamagedError
		out.NewErr, out.Damaged = err.Error(), errors.As(err, &damaged)
	} else {
		out.SendAfter = d.Send(ctx, timesIface.Name, "/ts", 2.5, astarte.WithTimestamp(t0)) == nil
		dl, _ := d.DeadLetters(ctx)
		out.Dead = len(dl)
		_, out.Property, _ = d.PropertyAt(propsIface.Name, "/name")
		_ = d.Close(ctx)
		// Count what is queued by opening the store again.
		if s, err := store.OpenBolt(cfg.StoreDir); err == nil {
			out.Queued, _ = s.Len(ctx)
			_ = s.Close()
		}
	}
	out.ErrorLog = strings.Contains(logs.String(), "level=ERROR") &&
		(!out.Quarantined || strings.Contains(logs.String(), "readable_messages=") && strings.Contains(logs.String(), "bytes="))
	line, _ := json.Marshal(out)
	fmt.Printf("OUTCOME %s\n%s", line, logs.String())
}
