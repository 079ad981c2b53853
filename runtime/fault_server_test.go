package runtime_test

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	goruntime "runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	astarte "github.com/astarte-gen/astarte-gen/runtime"
	"github.com/astarte-gen/astarte-gen/runtime/astartetest"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// hostileMemoryBound is the most the process heap may grow while the
// device handles one hostile message. The largest case is the 16 MB
// payload, which the in-process broker and paho each hold once.
const hostileMemoryBound = 128 << 20

// heapPeak samples the live heap until stop is called and returns the
// largest growth over the heap at the start.
func heapPeak() (stop func() uint64) {
	goruntime.GC()
	var m goruntime.MemStats
	goruntime.ReadMemStats(&m)
	base := m.HeapAlloc
	var peak atomic.Uint64
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			var m goruntime.MemStats
			goruntime.ReadMemStats(&m)
			if m.HeapAlloc > base && m.HeapAlloc-base > peak.Load() {
				peak.Store(m.HeapAlloc - base)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-finished
		return peak.Load()
	}
}

// purgeOf builds a consumer/properties payload from the inflated text,
// with a header that may lie.
func purgeOf(text []byte, header uint32) []byte {
	var b bytes.Buffer
	b.Write(binary.BigEndian.AppendUint32(nil, header))
	z, _ := zlib.NewWriterLevel(&b, zlib.BestSpeed)
	_, _ = z.Write(text)
	_ = z.Close()
	return b.Bytes()
}

// nested is {"v": {"v": … }} depth levels deep.
func nested(depth int) []byte {
	doc := bsoncore.NewDocumentBuilder().AppendInt32("x", 1).Build()
	for range depth {
		doc = bsoncore.NewDocumentBuilder().AppendDocument("v", doc).Build()
	}
	return doc
}

// TestHostileServer: malformed and oversized server data, through the
// broker as raw publishes, never crashes the device, keeps the memory it
// costs bounded (measured), is reported with a precise error, and leaves
// the device working.
func TestHostileServer(t *testing.T) {
	if testing.Short() {
		t.Skip("hostile-server suite")
	}
	const other = "dvt9mLDaWb2vW7bdBJwKCg"
	a := astartetest.New(t, serverStreamIface, serverProps)
	if _, err := a.RegisterDevice(other); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, a, "AJInS0w3VpWpuOqkXhgZdA")
	errs := make(chan error, 64)
	cfg.OnError = func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	d, err := astarte.New(cfg, serverStreamIface, serverProps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	var mu sync.Mutex
	var got []string
	if err := d.Handle(serverStreamIface, func(_ context.Context, in *astarte.Incoming) error {
		mu.Lock()
		got = append(got, in.Path)
		mu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := d.Connect(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	stream := serverStreamIface.Name + "/s1/"
	lying := bsoncore.NewDocumentBuilder().AppendDouble("v", 1).Build()
	binary.LittleEndian.PutUint32(lying, 0x7ffffff0)
	huge := bsoncore.NewDocumentBuilder().AppendBinary("v", 0, make([]byte, 16<<20)).Build()
	cases := []struct {
		name, suffix string
		payload      []byte
		want         string // in the reported error; empty: nothing is reported
	}{
		{"malformed BSON", stream + "double", []byte{0x05, 0xff, 0x00, 0x13, 0x37, 0x01}, "not a BSON document"},
		{"lying-length BSON", stream + "double", lying, "not a BSON document"},
		{"deep nesting", stream + "double", nested(5000), "invalid payload"},
		{"16 MB payload", stream + "binaryblob", huge, "exceeds 65536"},
		{"zip bomb purge", "control/consumer/properties", purgeOf(bytes.Repeat([]byte("a"), 16<<20), 12), "longer than 4096 bytes"},
		{"zip bomb purge, valid entries", "control/consumer/properties", purgeOf(bytes.Repeat([]byte("org.astartegen.e2e.ServerProps/mode;"), 200_000), 0xffffffff), "more than 100000 entries"},
		{"amplifying purge", "control/consumer/properties", purgeOf(bytes.Repeat([]byte(";"), astarte.MaxPurgeSize), 0), "more than 100000 entries"},
		{"another device's topic", "@" + serverStreamIface.Name + "/s1/double", bsoncore.NewDocumentBuilder().AppendDouble("v", 1).Build(), ""},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stop := heapPeak()
			var err error
			if to, ok := strings.CutPrefix(tc.suffix, "@"); ok {
				err = a.SendRaw(other, to, tc.payload, 2)
			} else {
				err = a.SendRaw("AJInS0w3VpWpuOqkXhgZdA", tc.suffix, tc.payload, 2)
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.want != "" {
				select {
				case err := <-errs:
					if !errors.Is(err, astarte.ErrServerData) || !strings.Contains(err.Error(), tc.want) {
						t.Errorf("reported %v, want ErrServerData with %q", err, tc.want)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("nothing reported in 10 s")
				}
			}
			// The device still works: a valid message after it arrives.
			probe := fmt.Sprintf("/s%d/double", i)
			if err := a.SendDatastream("AJInS0w3VpWpuOqkXhgZdA", serverStreamIface.Name, probe, 1.5); err != nil {
				t.Fatal(err)
			}
			waitFor(t, func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(got) > 0 && got[len(got)-1] == probe
			})
			peak := stop()
			t.Logf("heap growth %.1f MiB", float64(peak)/(1<<20))
			if peak > hostileMemoryBound {
				t.Errorf("heap grew by %d bytes, bound %d", peak, hostileMemoryBound)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) != i+1 {
				t.Errorf("handler got %q; the hostile message must not be delivered", got)
			}
			select {
			case err := <-errs:
				t.Errorf("unexpected report: %v", err)
			default:
			}
			if d.State() != astarte.Connected {
				t.Errorf("device %v after the hostile message", d.State())
			}
		})
	}
}
