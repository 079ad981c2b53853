package runtime

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/astarte-gen/astarte-gen/runtime/store"
)

// DamagedStorePolicy says what New does when the store file in
// Config.StoreDir is damaged (empty, truncated, not a store, corrupt, or
// not a regular file): see store.DamagedError. Either way the process
// never crashes on it.
type DamagedStorePolicy uint8

const (
	// QuarantineDamagedStore, the default, moves the damaged file aside
	// (astarte.db.damaged-<UTC time> in the store directory, kept for
	// forensics; the newest three are kept), starts with an empty store, and
	// reports it: an ERROR log line with the file's size, the reason and how
	// many queued messages and property values could still be read from it
	// (-1 when none could), and
	// an *Error of kind ErrStore (wrapping the *store.DamagedError) through
	// Config.OnError. What the file held (queued messages, properties,
	// dead letters) is then only in the moved file; the device re-sends its
	// properties and the server its own at the next connection, as after a
	// session loss.
	QuarantineDamagedStore DamagedStorePolicy = iota
	// FailOnDamagedStore makes New fail with an error wrapping the
	// *store.DamagedError (errors.Is(err, store.ErrDamaged)) and leaves the
	// file untouched, for applications that would rather stop than start
	// without their queued data.
	FailOnDamagedStore
)

// openBolt opens the store in cfg.StoreDir under the damage policy.
func (d *Device) openBolt() (*store.Bolt, error) {
	opts := []store.Option{store.WithCapacity(d.cfg.StoredCapacity), store.WithSyncInterval(d.cfg.SyncInterval),
		store.WithCorruptionHandler(d.corruptEntry)}
	s, err := store.OpenBolt(d.cfg.StoreDir, opts...)
	var damaged *store.DamagedError
	if !errors.As(err, &damaged) || d.cfg.DamagedStore == FailOnDamagedStore {
		return s, err
	}
	moved, qerr := store.Quarantine(d.cfg.StoreDir)
	if qerr != nil {
		return nil, fmt.Errorf("%w (and %w)", err, qerr)
	}
	// One ERROR line with what the moved file still holds (-1: unreadable),
	// and the hook.
	e := &Error{Kind: ErrStore, Err: fmt.Errorf("%w; moved to %s", damaged, moved),
		Op: "store file damaged: moved aside, starting with an empty store"}
	msgs, props := store.Count(moved)
	d.log.Error(e.Op, "path", damaged.Path, "moved_to", moved, "bytes", damaged.Size, "reason", damaged.Reason,
		"readable_messages", msgs, "readable_properties", props)
	if d.cfg.OnError != nil {
		d.cfg.OnError(e)
	}
	return store.OpenBolt(d.cfg.StoreDir, opts...)
}

// corruptEntry reports an entry of the store that failed its checksum and
// was moved to the dead letters.
func (d *Device) corruptEntry(dl store.DeadLetter) {
	d.report(&Error{Kind: ErrDeadLetter, Interface: dl.Interface, Path: dl.Path,
		Err: fmt.Errorf("%w: entry %d: %s", store.ErrDamaged, dl.ID, dl.Reason),
		Op:  "damaged store entry moved to the dead letters"})
}

// reportLevel is ERROR for store damage, WARN for the rest.
func reportLevel(e *Error) slog.Level {
	if errors.Is(e.Kind, ErrStore) || errors.Is(e.Err, store.ErrDamaged) {
		return slog.LevelError
	}
	return slog.LevelWarn
}
