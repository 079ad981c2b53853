package store

import (
	"errors"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// SharedFileName is the name of the file a Shared store keeps in its
// directory.
const SharedFileName = "astarte-shared.db"

// Shared is one bbolt file that many devices of one process share, each in
// a bucket of its own: for simulators and gateways, where a file per
// device would cost a file descriptor and a memory mapping each. Every
// device's store (Store) is isolated from the others and behaves like a
// Bolt store of its own (capacity, checksums, dead letters, group commit
// among its own senders); commits of different devices are serialised by
// the file.
type Shared struct {
	db   *bolt.DB
	path string
	opts []Option

	mu      sync.Mutex
	devices map[string]*Bolt
	closed  bool
}

// ErrDeviceOpen is returned by Shared.Store for a device whose store is
// open already.
var ErrDeviceOpen = errors.New("store: the device's store is open already")

// OpenShared opens (creating if needed) the shared file in dir, created
// 0700 when missing; the file is 0600. opts apply to every device's store
// (WithSyncInterval to the whole file). A damaged file is refused with a
// *DamagedError, as OpenBolt does.
func OpenShared(dir string, opts ...Option) (*Shared, error) {
	path, err := filePath(dir, SharedFileName)
	if err != nil {
		return nil, err
	}
	probe := &Bolt{path: path}
	db, err := probe.openDB()
	if err != nil {
		return nil, err
	}
	db.NoSync = newOptions(opts).syncInterval > 0
	return &Shared{db: db, path: path, opts: opts, devices: map[string]*Bolt{}}, nil
}

// Store opens the store of one device in the shared file; Close it when
// the device is done (it leaves the file open for the others).
func (s *Shared) Store(deviceID string) (*Bolt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if _, open := s.devices[deviceID]; open {
		return nil, fmt.Errorf("%w: %s", ErrDeviceOpen, deviceID)
	}
	b := &Bolt{
		db: s.db, path: s.path + "#" + deviceID, device: []byte("device:" + deviceID), opts: newOptions(s.opts),
		acked: map[uint64]struct{}{}, reqs: make(chan *writeReq, maxBatch), closing: make(chan struct{}), done: make(chan struct{}),
		release: func() { s.forget(deviceID) },
	}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(b.device)
		return err
	}); err != nil {
		return nil, fmt.Errorf("store: %s: %w", b.path, err)
	}
	corrupt, err := b.prepare()
	if err != nil {
		return nil, err
	}
	b.reportCorrupt(corrupt)
	s.devices[deviceID] = b
	go b.writer()
	return b, nil
}

func (s *Shared) forget(deviceID string) {
	s.mu.Lock()
	delete(s.devices, deviceID)
	s.mu.Unlock()
}

// Close closes every device's store still open, then the file.
func (s *Shared) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	open := make([]*Bolt, 0, len(s.devices))
	for _, b := range s.devices {
		open = append(open, b)
	}
	s.mu.Unlock()
	for _, b := range open {
		_ = b.Close()
	}
	return s.db.Close()
}
