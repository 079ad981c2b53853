package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// FileName is the name of the store file inside the store directory.
const FileName = "astarte.db"

// SchemaVersion is the version of the file layout this package writes.
// Version 2 puts a CRC-32C checksum in front of every queue entry,
// property value and dead letter's entry; version 1 files are migrated
// once at open (their entries then get a checksum of what they hold, so
// damage older than the upgrade is not detected).
const SchemaVersion = 2

// ErrSchemaVersion is returned when a file was written by a newer release.
var ErrSchemaVersion = errors.New("store: unsupported schema version")

var (
	bucketMeta  = []byte("meta")
	bucketProps = []byte("properties")
	bucketQueue = []byte("queue")
	bucketDead  = []byte("dead")
	keyVersion  = []byte("schema_version")
	userMeta    = []byte("user:")
)

// container holds a store's buckets: the top level of a file of its own
// (*bolt.Tx), or one device's bucket in a shared file (*bolt.Bucket).
type container interface {
	Bucket(name []byte) *bolt.Bucket
	CreateBucketIfNotExists(name []byte) (*bolt.Bucket, error)
}

// migrations upgrade a store from version N (the key) to N+1.
var migrations = map[int]func(container) error{1: sealAll}

// sealAll adds the version 2 checksums to the entries of a version 1 store.
func sealAll(tx container) error {
	for _, name := range [][]byte{bucketProps, bucketQueue} {
		bk := tx.Bucket(name)
		if bk == nil {
			continue
		}
		if err := rewrite(bk, func(k, v []byte) []byte { return sealEntry(k, v) }); err != nil {
			return err
		}
	}
	if bk := tx.Bucket(bucketDead); bk != nil {
		return rewrite(bk, func(k, v []byte) []byte {
			reason, at, entry, ok := splitDeadLetter(v)
			if !ok {
				return v
			}
			return appendDeadLetter(reason, at, sealEntry(k, entry))
		})
	}
	return nil
}

// rewrite replaces every value of bk by f(key, value).
func rewrite(bk *bolt.Bucket, f func(k, v []byte) []byte) error {
	type kv struct{ k, v []byte }
	var all []kv
	if err := bk.ForEach(func(k, v []byte) error {
		all = append(all, kv{bytes.Clone(k), f(k, v)})
		return nil
	}); err != nil {
		return err
	}
	for _, e := range all {
		if err := bk.Put(e.k, e.v); err != nil {
			return err
		}
	}
	return nil
}

// maxBatch bounds how many requests one group commit carries.
const maxBatch = 4096

// Bolt is the durable Store: one bbolt file. Enqueue calls that arrive
// while a commit is running are committed together by the next one, so a
// burst of concurrent senders shares one fsync (group commit). Acks ride
// on the same commits without waiting for them.
type Bolt struct {
	db   *bolt.DB
	path string
	// device names the bucket holding this store in a shared file (see
	// Shared); nil: the store is the file's top level.
	device []byte
	opts   options
	count  atomic.Int64 // queued messages not acked

	reqs    chan *writeReq
	closing chan struct{}
	done    chan struct{}

	// mu guards acked, closed and syncErr. Ack checks that an id is queued
	// in a read transaction begun under mu, and whoever deletes queue
	// entries settles acked and count under mu after committing, so that a
	// double ack or an unknown id never lowers the count.
	mu      sync.Mutex
	acked   map[uint64]struct{} // queued and acked, deletion not yet committed
	closed  bool
	syncErr error // the last periodic flush failed (WithSyncInterval)
	// release, for a store in a Shared file, replaces closing the file.
	release func()
	// unsynced says commits were written since the last periodic flush.
	unsynced atomic.Bool
	// held, guarded by mu, lists the interface majors the store may hold
	// data of, or is nil when unknown: opening a sound file fills it and
	// writes add to it before they commit. Nothing narrows it (a write
	// racing a Prune could otherwise be missed), so it is a superset of
	// what the file holds: Prune skips its scan when nothing is to be
	// dropped (a start, usually) and never skips one that would drop
	// something; after a Prune that dropped data, later ones run in full.
	held map[heldMajor]struct{}
}

// heldMajor is an interface major the store holds data of.
type heldMajor struct {
	iface string
	major int
}

// in returns where this store's buckets are in tx.
func (b *Bolt) in(tx *bolt.Tx) container {
	if b.device == nil {
		return tx
	}
	return tx.Bucket(b.device)
}

// writeReq is one Enqueue (msgs) or a flush of pending acks (msgs nil).
type writeReq struct {
	msgs []*Message
	err  chan error
}

// OpenBolt opens (creating if needed) the store file in dir, which is
// created 0700 when missing; the file is 0600.
//
// A damaged file (empty, truncated, not a bbolt file, structurally corrupt,
// not a regular file) is never mapped blindly and never crashes the
// process: OpenBolt returns a *DamagedError (errors.Is ErrDamaged) and the
// caller decides: Quarantine it and open again, or give up. Entries whose
// checksum does not match are moved to the dead letters, each reported to
// the WithCorruptionHandler function, and the store opens.
func OpenBolt(dir string, opts ...Option) (*Bolt, error) {
	path, err := filePath(dir, FileName)
	if err != nil {
		return nil, err
	}
	b := &Bolt{
		path: path, opts: newOptions(opts), acked: map[uint64]struct{}{},
		reqs: make(chan *writeReq, maxBatch), closing: make(chan struct{}), done: make(chan struct{}),
	}
	corrupt, err := b.open()
	if err != nil {
		return nil, err
	}
	b.db.NoSync = b.opts.syncInterval > 0 // after initialize, which is synced
	b.reportCorrupt(corrupt)
	go b.writer()
	return b, nil
}

// filePath creates dir (0700) when missing and checks the store file name
// in it before anything maps it (see precheck).
func filePath(dir, name string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("store: %w", err)
	}
	path := filepath.Join(dir, name)
	return path, precheck(path)
}

// open opens the file, migrates it, scans it and counts the queue, turning
// faults and panics on the mapped file into a *DamagedError.
func (b *Bolt) open() (corrupt []DeadLetter, err error) {
	db, err := b.openDB()
	if err != nil {
		return nil, err
	}
	b.db = db
	corrupt, err = b.prepare()
	if err != nil {
		db.Close()
	}
	return corrupt, err
}

// openDB opens the bbolt file at b.path, turning faults and panics on the
// mapped file into a *DamagedError.
func (b *Bolt) openDB() (db *bolt.DB, err error) {
	defer guard(b.path, &err)()
	db, err = bolt.Open(b.path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrVersionMismatch) || errors.Is(err, berrors.ErrChecksum) {
		return nil, &DamagedError{Path: b.path, Size: fileSize(b.path), Reason: err.Error()}
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", b.path, err)
	}
	return db, nil
}

// prepare migrates and scans the store's buckets and counts the queue
// (writing only when something must change).
func (b *Bolt) prepare() (corrupt []DeadLetter, err error) {
	defer guard(b.path, &err)()
	if b.current(b.db) {
		return nil, nil // nothing to create, migrate or move: no write, no fsync
	}
	if err := b.db.Update(func(tx *bolt.Tx) error {
		var err error
		corrupt, err = b.initialize(tx)
		return err
	}); err != nil {
		return nil, fmt.Errorf("store: %s: %w", b.path, err)
	}
	return corrupt, nil
}

// current reports whether the file needs nothing from initialize: the
// current schema version, every bucket, no damaged entry. It then counts
// the queue; a start on a sound file thus costs no write.
func (b *Bolt) current(db *bolt.DB) bool {
	ok := false
	_ = db.View(func(tx *bolt.Tx) error {
		meta := b.in(tx).Bucket(bucketMeta)
		if meta == nil {
			return nil
		}
		if v := meta.Get(keyVersion); len(v) != 4 || int(binary.BigEndian.Uint32(v)) != SchemaVersion {
			return nil
		}
		for _, name := range [][]byte{bucketProps, bucketDead, bucketQueue} {
			if b.in(tx).Bucket(name) == nil {
				return nil
			}
		}
		sound := true
		held := map[heldMajor]struct{}{}
		_ = b.in(tx).Bucket(bucketProps).ForEach(func(k, v []byte) error {
			_, good := openEntry(k, v)
			key, parsed := parsePropKey(k)
			sound = sound && good && parsed
			held[heldMajor{key.Interface, key.Major}] = struct{}{}
			return nil
		})
		queued := 0
		_ = b.in(tx).Bucket(bucketQueue).ForEach(func(k, v []byte) error {
			queued++
			m, err := readMessage(k, v)
			sound = sound && err == nil
			held[heldMajor{m.Interface, m.Major}] = struct{}{}
			return nil
		})
		if sound {
			b.count.Store(int64(queued))
			b.mu.Lock()
			b.held = held
			b.mu.Unlock()
			ok = true
		}
		return nil
	})
	return ok
}

func fileSize(path string) int64 {
	if st, err := os.Stat(path); err == nil {
		return st.Size()
	}
	return -1
}

// initialize creates the buckets, checks and migrates the schema version,
// moves entries that fail their checksum to the dead letters, and counts
// the queue. Reading every entry also walks every page of the file, so
// that structural damage shows here, at open, rather than later.
func (b *Bolt) initialize(tx *bolt.Tx) ([]DeadLetter, error) {
	meta, err := b.in(tx).CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return nil, err
	}
	version := SchemaVersion
	if v := meta.Get(keyVersion); len(v) == 4 {
		version = int(binary.BigEndian.Uint32(v))
	} else if b.in(tx).Bucket(bucketQueue) != nil {
		version = 1 // a file from before the version key was checked
	}
	if version > SchemaVersion {
		return nil, fmt.Errorf("%w: file has version %d, this release reads up to %d", ErrSchemaVersion, version, SchemaVersion)
	}
	for ; version < SchemaVersion; version++ {
		if err := migrations[version](b.in(tx)); err != nil {
			return nil, fmt.Errorf("migrating from version %d: %w", version, err)
		}
	}
	if err := meta.Put(keyVersion, binary.BigEndian.AppendUint32(nil, SchemaVersion)); err != nil {
		return nil, err
	}
	for _, name := range [][]byte{bucketProps, bucketDead, bucketQueue} {
		if _, err := b.in(tx).CreateBucketIfNotExists(name); err != nil {
			return nil, err
		}
	}
	var corrupt []corruptEntry
	if err := b.in(tx).Bucket(bucketProps).ForEach(func(k, v []byte) error {
		if _, ok := openEntry(k, v); !ok {
			corrupt = append(corrupt, corruptEntry{bucket: bucketProps, key: bytes.Clone(k)})
		}
		return nil
	}); err != nil {
		return nil, err
	}
	q := b.in(tx).Bucket(bucketQueue)
	queued := 0
	if err := q.ForEach(func(k, v []byte) error {
		queued++
		if _, err := readMessage(k, v); err != nil {
			corrupt = append(corrupt, corruptEntry{bucket: bucketQueue, key: bytes.Clone(k), reason: err.Error()})
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if err := b.in(tx).Bucket(bucketDead).ForEach(func(_, _ []byte) error { return nil }); err != nil {
		return nil, err
	}
	moved, gone, err := moveCorrupt(b.in(tx), corrupt)
	if err != nil {
		return nil, err
	}
	b.count.Store(int64(queued - len(gone)))
	return moved, nil
}

var _ Store = (*Bolt)(nil)

func (b *Bolt) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// update runs a write transaction unless the store is closed; a fault or
// panic on the mapped file is a *DamagedError, not a crash.
func (b *Bolt) update(fn func(*bolt.Tx) error) (err error) {
	if b.isClosed() {
		return ErrClosed
	}
	defer guard(b.path, &err)()
	return b.db.Update(fn)
}

func (b *Bolt) view(fn func(*bolt.Tx) error) (err error) {
	if b.isClosed() {
		return ErrClosed
	}
	defer guard(b.path, &err)()
	return b.db.View(fn)
}

// propKey sorts by interface, then major, then path; the NUL separator
// cannot occur in interface names, so a prefix scan never mixes "org.a"
// with "org.ab".
func propKey(k PropertyKey) []byte {
	key := append([]byte(k.Interface), 0)
	key = binary.BigEndian.AppendUint32(key, uint32(k.Major))
	return append(key, k.Path...)
}

func parsePropKey(key []byte) (PropertyKey, bool) {
	i := bytes.IndexByte(key, 0)
	if i < 0 || len(key) < i+5 {
		return PropertyKey{}, false
	}
	return PropertyKey{Interface: string(key[:i]), Major: int(binary.BigEndian.Uint32(key[i+1:])), Path: string(key[i+5:])}, true
}

// Property values are stored as a checksum (sealEntry), one flag byte,
// then the payload.
const (
	flagUnsent    = 1 << 0
	flagTombstone = 1 << 1
)

func encodeProperty(p Property) []byte {
	var flags byte
	if p.Unsent {
		flags |= flagUnsent
	}
	if p.Value == nil {
		flags |= flagTombstone
	}
	return append([]byte{flags}, p.Value...)
}

// decodeProperty reads a sealed value; ok is false when its checksum does
// not match.
func decodeProperty(k PropertyKey, key, sealed []byte) (Property, bool) {
	v, ok := openEntry(key, sealed)
	if !ok {
		return Property{}, false
	}
	return decodePropertyValue(k, v), true
}

func decodePropertyValue(k PropertyKey, v []byte) Property {
	p := Property{PropertyKey: k}
	if len(v) == 0 {
		return p
	}
	p.Unsent = v[0]&flagUnsent != 0
	if v[0]&flagTombstone == 0 {
		p.Value = append([]byte{}, v[1:]...)
	}
	return p
}

// Property implements Store. A value whose checksum does not match is
// moved to the dead letters (and reported) and reads as absent.
func (b *Bolt) Property(_ context.Context, k PropertyKey) (p Property, ok bool, err error) {
	var corrupt []corruptEntry
	key := propKey(k)
	err = b.view(func(tx *bolt.Tx) error {
		if v := b.in(tx).Bucket(bucketProps).Get(key); v != nil {
			if p, ok = decodeProperty(k, key, v); !ok {
				corrupt = append(corrupt, corruptEntry{bucket: bucketProps, key: key})
			}
		}
		return nil
	})
	if err == nil {
		err = b.settleCorrupt(corrupt)
	}
	return p, ok, err
}

// Properties implements Store; values whose checksum does not match are
// moved to the dead letters, reported, and left out.
func (b *Bolt) Properties(_ context.Context, iface string) ([]Property, error) {
	var out []Property
	var corrupt []corruptEntry
	prefix := append([]byte(iface), 0)
	err := b.view(func(tx *bolt.Tx) error {
		c := b.in(tx).Bucket(bucketProps).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			key, ok := parsePropKey(k)
			if !ok {
				continue
			}
			if p, ok := decodeProperty(key, k, v); ok {
				out = append(out, p)
			} else {
				corrupt = append(corrupt, corruptEntry{bucket: bucketProps, key: bytes.Clone(k)})
			}
		}
		return nil
	})
	if err == nil {
		err = b.settleCorrupt(corrupt)
	}
	return out, err
}

// PutProperty implements Store; it is durable on return.
func (b *Bolt) PutProperty(_ context.Context, p Property) error {
	b.hold(heldMajor{p.Interface, p.Major})
	key := propKey(p.PropertyKey)
	return b.update(func(tx *bolt.Tx) error {
		return b.in(tx).Bucket(bucketProps).Put(key, sealEntry(key, encodeProperty(p)))
	})
}

// DeleteProperty implements Store.
func (b *Bolt) DeleteProperty(_ context.Context, k PropertyKey) error {
	return b.update(func(tx *bolt.Tx) error { return b.in(tx).Bucket(bucketProps).Delete(propKey(k)) })
}

// Enqueue implements Store: it returns once the messages are committed and
// synced to disk, sharing that commit with concurrent callers.
func (b *Bolt) Enqueue(ctx context.Context, msgs ...*Message) error {
	if len(msgs) == 0 {
		return nil
	}
	b.mu.Lock()
	for _, m := range msgs {
		b.holdLocked(heldMajor{m.Interface, m.Major})
	}
	b.mu.Unlock()
	if b.opts.syncInterval > 0 {
		return b.enqueueNow(msgs)
	}
	req := &writeReq{msgs: msgs, err: make(chan error, 1)}
	select {
	case b.reqs <- req:
	case <-b.closing:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once handed over, the request is committed or failed even if ctx
	// ends; waiting for it keeps the caller's view truthful. A request that
	// slipped in after the writer's last drain fails with ErrClosed.
	select {
	case err := <-req.err:
		return err
	case <-b.done:
		select {
		case err := <-req.err:
			return err
		default:
			return ErrClosed
		}
	}
}

// enqueueNow commits msgs in the caller's goroutine. With a sync interval
// there is no fsync for concurrent senders to share, so the hop to the
// writer would only add latency; bbolt serialises the transactions.
func (b *Bolt) enqueueNow(msgs []*Message) error {
	if b.isClosed() {
		return ErrClosed
	}
	if err := b.takeSyncErr(); err != nil {
		return err
	}
	n := int64(len(msgs))
	err := b.guardedUpdate(func(tx *bolt.Tx) error {
		if b.count.Load()+n > int64(b.opts.capacity) {
			return ErrFull
		}
		return putMessages(b.in(tx).Bucket(bucketQueue), msgs)
	})
	switch {
	case errors.Is(err, ErrFull):
		return ErrFull
	case errors.Is(err, berrors.ErrDatabaseNotOpen):
		return ErrClosed
	case err != nil:
		return fmt.Errorf("store: commit: %w", err)
	}
	b.count.Add(n)
	b.unsynced.Store(true)
	return nil
}

// takeSyncErr returns, once, the error of a failed periodic flush.
func (b *Bolt) takeSyncErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	err := b.syncErr
	b.syncErr = nil
	if err != nil {
		return fmt.Errorf("store: flushing to disk: %w", err)
	}
	return nil
}

// writer commits queued requests in groups until Close. With a sync
// interval it also flushes the file to the disk on that period, when
// something was committed since the last flush, and once more at Close.
func (b *Bolt) writer() {
	defer close(b.done)
	var tick <-chan time.Time
	if b.opts.syncInterval > 0 {
		t := time.NewTicker(b.opts.syncInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		var batch []*writeReq
		select {
		case r := <-b.reqs:
			batch = append(batch, r)
		case <-tick:
			if b.unsynced.Swap(false) {
				b.sync()
			}
			continue
		case <-b.closing:
			b.commit(b.drainRequests(nil))
			if tick != nil {
				b.sync()
			}
			return
		}
		b.commit(b.drainRequests(batch))
		b.unsynced.Store(true)
	}
}

// sync flushes what NoSync commits wrote to the disk. A failure is kept
// for the next commit to report: the data is still in the file, and the
// next flush retries.
func (b *Bolt) sync() {
	if err := b.db.Sync(); err != nil {
		b.mu.Lock()
		b.syncErr = err
		b.mu.Unlock()
	}
}

// drainRequests adds every request already waiting, up to maxBatch.
func (b *Bolt) drainRequests(batch []*writeReq) []*writeReq {
	for len(batch) < maxBatch {
		select {
		case r := <-b.reqs:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// commit writes a group of enqueues and the pending acks in one
// transaction, then answers every request.
func (b *Bolt) commit(batch []*writeReq) {
	b.mu.Lock()
	acks := make([]uint64, 0, len(b.acked))
	for id := range b.acked {
		acks = append(acks, id)
	}
	b.mu.Unlock()
	results := make([]error, len(batch))
	if err := b.takeSyncErr(); err != nil {
		// Report it once, to the senders of this commit: the disk refused a
		// flush, and what they queue now may not survive a power loss.
		for _, r := range batch {
			r.err <- err
		}
		return
	}
	err := b.guardedUpdate(func(tx *bolt.Tx) error {
		q := b.in(tx).Bucket(bucketQueue)
		for _, id := range acks {
			if err := q.Delete(binary.BigEndian.AppendUint64(nil, id)); err != nil {
				return err
			}
		}
		queued := b.count.Load()
		for i, r := range batch {
			if queued+int64(len(r.msgs)) > int64(b.opts.capacity) {
				results[i] = ErrFull
				continue
			}
			if err := putMessages(q, r.msgs); err != nil {
				return err
			}
			queued += int64(len(r.msgs))
		}
		return nil
	})
	if err == nil {
		b.mu.Lock()
		for _, id := range acks {
			delete(b.acked, id)
		}
		b.mu.Unlock()
	}
	for i, r := range batch {
		switch {
		case err != nil:
			r.err <- fmt.Errorf("store: commit: %w", err)
		case results[i] != nil:
			r.err <- results[i]
		default:
			b.count.Add(int64(len(r.msgs)))
			r.err <- nil
		}
	}
}

// guardedUpdate is db.Update with faults and panics turned into errors,
// for the writer goroutine (which runs while closing, when update refuses).
func (b *Bolt) guardedUpdate(fn func(*bolt.Tx) error) (err error) {
	defer guard(b.path, &err)()
	return b.db.Update(fn)
}

func putMessages(q *bolt.Bucket, msgs []*Message) error {
	for _, m := range msgs {
		id, err := q.NextSequence()
		if err != nil {
			return err
		}
		m.ID = id
		key := binary.BigEndian.AppendUint64(nil, id)
		if err := q.Put(key, sealEntry(key, encodeMessage(m))); err != nil {
			return err
		}
	}
	return nil
}

// readMessage checks a queue entry's checksum and decodes it.
func readMessage(key, sealed []byte) (Message, error) {
	id := binary.BigEndian.Uint64(key)
	v, ok := openEntry(key, sealed)
	if !ok {
		return Message{ID: id}, fmt.Errorf("store: queue entry %d fails its checksum", id)
	}
	return decodeMessage(id, v)
}

// encodeMessage lays a message out as length-prefixed fields.
func encodeMessage(m *Message) []byte {
	buf := make([]byte, 0, 32+len(m.Interface)+len(m.Path)+len(m.Payload))
	buf = binary.AppendUvarint(buf, uint64(len(m.Interface)))
	buf = append(buf, m.Interface...)
	buf = binary.AppendUvarint(buf, uint64(m.Major))
	buf = binary.AppendUvarint(buf, uint64(len(m.Path)))
	buf = append(buf, m.Path...)
	buf = append(buf, m.QoS)
	var deadline int64
	if !m.Deadline.IsZero() {
		deadline = m.Deadline.UnixNano()
	}
	buf = binary.AppendVarint(buf, deadline)
	return append(buf, m.Payload...)
}

func decodeMessage(id uint64, b []byte) (Message, error) {
	m := Message{ID: id}
	bad := fmt.Errorf("store: queue entry %d is unreadable", id)
	str := func() (string, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return "", false
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s, true
	}
	var ok bool
	if m.Interface, ok = str(); !ok {
		return m, bad
	}
	major, k := binary.Uvarint(b)
	if k <= 0 {
		return m, bad
	}
	m.Major, b = int(major), b[k:]
	if m.Path, ok = str(); !ok || len(b) < 1 {
		return m, bad
	}
	m.QoS, b = b[0], b[1:]
	deadline, k := binary.Varint(b)
	if k <= 0 {
		return m, bad
	}
	if deadline != 0 {
		m.Deadline = time.Unix(0, deadline)
	}
	m.Payload = append([]byte{}, b[k:]...)
	return m, nil
}

// Pending implements Store.
func (b *Bolt) Pending(_ context.Context, after uint64, limit int) ([]Message, error) {
	var out []Message
	b.mu.Lock()
	acked := make(map[uint64]struct{}, len(b.acked))
	for id := range b.acked {
		acked[id] = struct{}{}
	}
	b.mu.Unlock()
	var corrupt []corruptEntry
	err := b.view(func(tx *bolt.Tx) error {
		c := b.in(tx).Bucket(bucketQueue).Cursor()
		for k, v := c.Seek(binary.BigEndian.AppendUint64(nil, after+1)); k != nil && len(out) < limit; k, v = c.Next() {
			id := binary.BigEndian.Uint64(k)
			if _, gone := acked[id]; gone {
				continue
			}
			m, err := readMessage(k, v)
			if err != nil {
				// Damaged since open: moved aside below, never sent.
				corrupt = append(corrupt, corruptEntry{bucket: bucketQueue, key: bytes.Clone(k), reason: err.Error()})
				continue
			}
			out = append(out, m)
		}
		return nil
	})
	if err == nil {
		err = b.settleCorrupt(corrupt)
	}
	return out, err
}

// Ack implements Store. The deletion is committed with the next group
// commit (or at Close); until then Pending and Len already exclude it.
func (b *Bolt) Ack(_ context.Context, ids ...uint64) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	// Only ids still queued count: a second ack of an id, or an id that
	// was never queued (or already deleted), must not lower the count.
	err := b.guardedView(func(tx *bolt.Tx) error {
		q := b.in(tx).Bucket(bucketQueue)
		for _, id := range ids {
			if _, dup := b.acked[id]; dup || q.Get(binary.BigEndian.AppendUint64(nil, id)) == nil {
				continue
			}
			b.acked[id] = struct{}{}
			b.count.Add(-1)
		}
		return nil
	})
	n := len(b.acked)
	b.mu.Unlock()
	if err != nil {
		return err
	}
	if n >= maxBatch {
		// Keep the pending set bounded when nothing else commits.
		select {
		case b.reqs <- &writeReq{err: make(chan error, 1)}:
		default:
		}
	}
	return nil
}

func (b *Bolt) guardedView(fn func(*bolt.Tx) error) (err error) {
	defer guard(b.path, &err)()
	return b.db.View(fn)
}

// deleted settles acked and count after a committed transaction deleted
// the queue entries ids (by Prune or a move to the dead letters): an id
// already acked was already uncounted.
func (b *Bolt) deleted(ids []uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, id := range ids {
		if _, acked := b.acked[id]; acked {
			delete(b.acked, id)
			continue
		}
		b.count.Add(-1)
	}
}

// Len implements Store.
func (b *Bolt) Len(_ context.Context) (int, error) {
	if b.isClosed() {
		return 0, ErrClosed
	}
	return int(max(b.count.Load(), 0)), nil
}

// hold records, before a write, that the store holds data of h.
func (b *Bolt) hold(h heldMajor) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.holdLocked(h)
}

// holdLocked is hold with mu held (Enqueue takes it once for a batch).
func (b *Bolt) holdLocked(h heldMajor) {
	if b.held != nil {
		b.held[h] = struct{}{}
	}
}

// Prune implements Store.
func (b *Bolt) Prune(ctx context.Context, keep map[string]int) (props, msgs int, err error) {
	if !b.prunable(keep) {
		return 0, 0, nil // nothing to drop: no write
	}
	b.flushAcks(ctx)
	var gone []uint64
	err = b.update(func(tx *bolt.Tx) error {
		c := b.in(tx).Bucket(bucketProps).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			key, ok := parsePropKey(k)
			if major, kept := keep[key.Interface]; ok && kept && major == key.Major {
				continue
			}
			if err := c.Delete(); err != nil {
				return err
			}
			props++
		}
		qc := b.in(tx).Bucket(bucketQueue).Cursor()
		for k, v := qc.First(); k != nil; k, v = qc.Next() {
			m, err := readMessage(k, v)
			if major, kept := keep[m.Interface]; err != nil || kept && major == m.Major {
				continue // a damaged entry goes to the dead letters, not away
			}
			if err := qc.Delete(); err != nil {
				return err
			}
			gone = append(gone, m.ID)
		}
		return nil
	})
	if err == nil {
		b.deleted(gone)
	}
	return props, len(gone), err
}

// flushAcks commits pending acks now.
// prunable reports whether Prune(keep) would drop anything (or could not
// tell).
func (b *Bolt) prunable(keep map[string]int) bool {
	b.mu.Lock()
	if b.held != nil {
		defer b.mu.Unlock()
		for h := range b.held {
			if major, kept := keep[h.iface]; !kept || major != h.major {
				return true
			}
		}
		return false
	}
	b.mu.Unlock()
	found := false
	err := b.view(func(tx *bolt.Tx) error {
		c := b.in(tx).Bucket(bucketProps).Cursor()
		for k, _ := c.First(); k != nil && !found; k, _ = c.Next() {
			key, ok := parsePropKey(k)
			major, kept := keep[key.Interface]
			found = !ok || !kept || major != key.Major
		}
		qc := b.in(tx).Bucket(bucketQueue).Cursor()
		for k, v := qc.First(); k != nil && !found; k, v = qc.Next() {
			m, err := readMessage(k, v)
			major, kept := keep[m.Interface]
			found = err == nil && (!kept || major != m.Major)
		}
		return nil
	})
	return found || err != nil
}

func (b *Bolt) flushAcks(ctx context.Context) {
	req := &writeReq{err: make(chan error, 1)}
	select {
	case b.reqs <- req:
		select {
		case <-req.err:
		case <-ctx.Done():
		}
	case <-b.closing:
	case <-ctx.Done():
	}
}

// MoveToDeadLetters implements Store: the move is one durable transaction.
func (b *Bolt) MoveToDeadLetters(_ context.Context, id uint64, reason string) (bool, error) {
	b.mu.Lock()
	_, acked := b.acked[id]
	b.mu.Unlock()
	if acked {
		return false, nil
	}
	moved := false
	key := binary.BigEndian.AppendUint64(nil, id)
	err := b.update(func(tx *bolt.Tx) error {
		q := b.in(tx).Bucket(bucketQueue)
		v := q.Get(key)
		if v == nil {
			return nil
		}
		if err := b.in(tx).Bucket(bucketDead).Put(key, appendDeadLetter(reason, time.Now(), v)); err != nil {
			return err
		}
		moved = true
		return q.Delete(key)
	})
	if moved && err == nil {
		b.deleted([]uint64{id})
	}
	return moved && err == nil, err
}

// A dead-letter record is the reason (uvarint length, text), when it was
// moved (varint Unix nanoseconds), then the queue entry as it was stored
// (sealed, or unreadable).
func appendDeadLetter(reason string, at time.Time, entry []byte) []byte {
	rec := binary.AppendUvarint(nil, uint64(len(reason)))
	rec = append(rec, reason...)
	rec = binary.AppendVarint(rec, at.UnixNano())
	return append(rec, entry...)
}

func splitDeadLetter(v []byte) (reason string, at time.Time, entry []byte, ok bool) {
	n, k := binary.Uvarint(v)
	if k <= 0 || uint64(len(v)-k) < n {
		return "", time.Time{}, nil, false
	}
	reason, v = string(v[k:k+int(n)]), v[k+int(n):]
	nanos, k := binary.Varint(v)
	if k <= 0 {
		return reason, time.Time{}, nil, false
	}
	return reason, time.Unix(0, nanos), v[k:], true
}

// DeadLetters implements Store. An entry that cannot be decoded is
// returned with its reason and what could be read.
func (b *Bolt) DeadLetters(_ context.Context) ([]DeadLetter, error) {
	var out []DeadLetter
	err := b.view(func(tx *bolt.Tx) error {
		return b.in(tx).Bucket(bucketDead).ForEach(func(k, v []byte) error {
			out = append(out, decodeDeadLetter(binary.BigEndian.Uint64(k), v))
			return nil
		})
	})
	return out, err
}

func decodeDeadLetter(id uint64, v []byte) DeadLetter {
	d := DeadLetter{Message: Message{ID: id}}
	reason, at, entry, ok := splitDeadLetter(v)
	if !ok {
		d.Reason = "unreadable dead-letter record"
		return d
	}
	d.Reason, d.At = reason, at
	body, sealed := openEntry(binary.BigEndian.AppendUint64(nil, id), entry)
	if !sealed && len(entry) >= 4 {
		body = entry[4:] // damaged: keep what can still be read
	}
	if m, err := decodeMessage(id, body); err == nil {
		d.Message = m
	}
	return d
}

// DeleteDeadLetter implements Store.
func (b *Bolt) DeleteDeadLetter(_ context.Context, id uint64) error {
	return b.update(func(tx *bolt.Tx) error {
		return b.in(tx).Bucket(bucketDead).Delete(binary.BigEndian.AppendUint64(nil, id))
	})
}

// Meta implements Store.
func (b *Bolt) Meta(_ context.Context, key string) (v []byte, ok bool, err error) {
	err = b.view(func(tx *bolt.Tx) error {
		if x := b.in(tx).Bucket(bucketMeta).Get(append(append([]byte{}, userMeta...), key...)); x != nil {
			v, ok = append([]byte{}, x...), true
		}
		return nil
	})
	return v, ok, err
}

// PutMeta implements Store.
func (b *Bolt) PutMeta(_ context.Context, key string, value []byte) error {
	return b.update(func(tx *bolt.Tx) error {
		return b.in(tx).Bucket(bucketMeta).Put(append(append([]byte{}, userMeta...), key...), value)
	})
}

// Close commits pending acks and closes the file.
func (b *Bolt) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	close(b.closing)
	<-b.done
	if b.release != nil {
		b.release()
		return nil
	}
	return b.db.Close()
}
