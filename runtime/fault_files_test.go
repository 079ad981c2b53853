package runtime_test

import (
	"bytes"
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	astarte "github.com/astarte-gen/astarte-gen/runtime"
	"github.com/astarte-gen/astarte-gen/runtime/pairing"
	"github.com/astarte-gen/astarte-gen/runtime/store"
)

// TestLoosePermissionsTightenedOrReported: a store directory left 0777 and
// a key and store file left 0644 are tightened at New with a log line, or
// kept and reported when Config.KeepLoosePermissions says so.
func TestLoosePermissionsTightenedOrReported(t *testing.T) {
	for _, keep := range []bool{false, true} {
		dir := filepath.Join(t.TempDir(), "store")
		d := offlineDeviceIn(t, dir, astarte.Config{}) // creates the store file
		if err := d.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		key, db, secret := filepath.Join(dir, pairing.KeyFile), filepath.Join(dir, store.FileName), filepath.Join(dir, pairing.SecretFile)
		for _, f := range []string{key, secret} {
			if err := os.WriteFile(f, []byte("not read here"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		for path, mode := range map[string]fs.FileMode{dir: 0o777, key: 0o644, db: 0o644, secret: 0o604} {
			if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
		}
		var logs bytes.Buffer
		d = offlineDeviceIn(t, dir, astarte.Config{KeepLoosePermissions: keep, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		_ = d.Close(context.Background())
		want := map[string]fs.FileMode{dir: 0o700, key: 0o600, db: 0o600, secret: 0o600}
		line := "tightened permissions"
		if keep {
			want, line = map[string]fs.FileMode{dir: 0o777, key: 0o644, db: 0o644, secret: 0o604}, "keeping permissions"
		}
		for path, mode := range want {
			if st, err := os.Stat(path); err != nil || st.Mode().Perm() != mode {
				t.Errorf("keep=%v: %s is %v (%v), want %v", keep, filepath.Base(path), st.Mode().Perm(), err, mode)
			}
			if !strings.Contains(logs.String(), line) || !strings.Contains(logs.String(), "path="+path+" ") {
				t.Errorf("keep=%v: no %q log line for %s in:\n%s", keep, line, path, logs.String())
			}
		}
	}
}

// offlineDeviceIn is a device with its store in dir, never connected.
func offlineDeviceIn(t *testing.T, dir string, cfg astarte.Config) *astarte.Device {
	t.Helper()
	cfg.Realm, cfg.DeviceID, cfg.PairingURL, cfg.StoreDir = "test", "AJInS0w3VpWpuOqkXhgZdA", "https://127.0.0.1:1/pairing", dir
	d, err := astarte.New(cfg, timesIface)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	return d
}
