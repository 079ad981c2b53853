package runtime

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	goruntime "runtime"

	"github.com/astarte-gen/astarte-gen/runtime/pairing"
	"github.com/astarte-gen/astarte-gen/runtime/store"
)

// checkPermissions looks at the store directory, the private key, the
// kept credentials secret and the store file: anything readable or writable by others than the owner is
// tightened to 0700/0600 (or only reported with keep), with a log line
// either way. Missing files are fine: they are created private.
func checkPermissions(dir string, keep bool, log *slog.Logger) error {
	if goruntime.GOOS == "windows" {
		return nil // permission bits there say little: access is by ACL
	}
	for _, f := range []struct {
		path string
		want fs.FileMode
	}{
		{dir, 0o700},
		{filepath.Join(dir, pairing.KeyFile), 0o600},
		{filepath.Join(dir, pairing.SecretFile), 0o600},
		{filepath.Join(dir, store.FileName), 0o600},
	} {
		st, err := os.Lstat(f.path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
		mode := st.Mode().Perm()
		if mode&^f.want == 0 || !(st.IsDir() || st.Mode().IsRegular()) {
			continue
		}
		if keep {
			log.Warn("keeping permissions more open than recommended (Config.KeepLoosePermissions)", "path", f.path, "mode", mode, "recommended", f.want)
			continue
		}
		if err := os.Chmod(f.path, mode&f.want); err != nil {
			return fmt.Errorf("%w: tightening %s: %w", ErrConfig, f.path, err)
		}
		log.Warn("tightened permissions that let others read or write", "path", f.path, "was", mode, "now", mode&f.want)
	}
	return nil
}
