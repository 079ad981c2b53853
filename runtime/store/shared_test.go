package store

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Devices sharing one file see only their own data, across a reopen of
// the file; the file is the only one in the directory.
func TestSharedStoresAreIsolated(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenShared(dir)
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.Store("AAAAAAAAAAAAAAAAAAAAAA")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Store("BBBBBBBBBBBBBBBBBBBBBA")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Store("AAAAAAAAAAAAAAAAAAAAAA"); !errors.Is(err, ErrDeviceOpen) {
		t.Errorf("opening a device twice: %v", err)
	}
	for i := range 3 {
		if err := a.Enqueue(ctx, &Message{Interface: "org.x.A", Major: 1, Path: "/v", QoS: 1, Payload: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.PutProperty(ctx, Property{PropertyKey: PropertyKey{Interface: "org.x.P", Major: 1, Path: "/p"}, Value: []byte{7}}); err != nil {
		t.Fatal(err)
	}
	if err := b.PutMeta(ctx, "k", []byte("b")); err != nil {
		t.Fatal(err)
	}
	check := func(a, b *Bolt) {
		t.Helper()
		if n, _ := a.Len(ctx); n != 3 {
			t.Errorf("device A queues %d, want 3", n)
		}
		if n, _ := b.Len(ctx); n != 0 {
			t.Errorf("device B queues %d, want 0", n)
		}
		if _, ok, _ := a.Property(ctx, PropertyKey{Interface: "org.x.P", Major: 1, Path: "/p"}); ok {
			t.Error("device A sees device B's property")
		}
		if _, ok, _ := a.Meta(ctx, "k"); ok {
			t.Error("device A sees device B's meta")
		}
		if v, ok, _ := b.Meta(ctx, "k"); !ok || string(v) != "b" {
			t.Errorf("device B's meta: %q %v", v, ok)
		}
	}
	check(a, b)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if a, err = s.Store("AAAAAAAAAAAAAAAAAAAAAA"); err != nil {
		t.Fatalf("reopening a closed device's store: %v", err)
	}
	check(a, b)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Len(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("a device's store after Shared.Close: %v", err)
	}

	s, err = OpenShared(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, _ = s.Store("AAAAAAAAAAAAAAAAAAAAAA")
	b, _ = s.Store("BBBBBBBBBBBBBBBBBBBBBA")
	check(a, b)
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != SharedFileName {
		t.Errorf("directory holds %v, want only %s", entries, SharedFileName)
	}
	if info, err := os.Stat(filepath.Join(dir, SharedFileName)); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("shared file: %v, %v", info, err)
	}
}
