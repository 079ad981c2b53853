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
	bolterrors "go.etcd.io/bbolt/errors"
)

// FileName is the name of the store file inside the store directory.
const FileName = "astarte.db"

// SchemaVersion is the version of the file layout this package writes.
const SchemaVersion = 1

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

// migrations upgrade a file from version N (the key) to N+1. Version 1 is
// the first layout, so there is nothing to migrate yet.
var migrations = map[int]func(*bolt.Tx) error{}

// maxBatch bounds how many requests one group commit carries.
const maxBatch = 4096

// Bolt is the durable Store: one bbolt file. Enqueue calls that arrive
// while a commit is running are committed together by the next one, so a
// burst of concurrent senders shares one fsync (group commit). Acks ride
// on the same commits without waiting for them.
type Bolt struct {
	db    *bolt.DB
	opts  options
	count atomic.Int64 // queued messages not acked

	reqs    chan *writeReq
	closing chan struct{}
	done    chan struct{}

	mu      sync.Mutex
	acked   map[uint64]struct{} // acked, deletion not yet committed
	closed  bool
	syncErr error // the last periodic flush failed (WithSyncInterval)
	// unsynced says commits were written since the last periodic flush.
	unsynced atomic.Bool
}

// writeReq is one Enqueue (msgs) or a flush of pending acks (msgs nil).
type writeReq struct {
	msgs []*Message
	err  chan error
}

// OpenBolt opens (creating if needed) the store file in dir, which is
// created 0700 when missing; the file is 0600.
func OpenBolt(dir string, opts ...Option) (*Bolt, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	b := &Bolt{
		db: db, opts: newOptions(opts), acked: map[uint64]struct{}{},
		reqs: make(chan *writeReq, maxBatch), closing: make(chan struct{}), done: make(chan struct{}),
	}
	if err := db.Update(b.initialize); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: %s: %w", path, err)
	}
	db.NoSync = b.opts.syncInterval > 0 // after initialize, which is synced
	go b.writer()
	return b, nil
}

// initialize creates the buckets, checks and migrates the schema version,
// and counts the queue.
func (b *Bolt) initialize(tx *bolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	version := SchemaVersion
	if v := meta.Get(keyVersion); len(v) == 4 {
		version = int(binary.BigEndian.Uint32(v))
	}
	if version > SchemaVersion {
		return fmt.Errorf("%w: file has version %d, this release reads up to %d", ErrSchemaVersion, version, SchemaVersion)
	}
	for ; version < SchemaVersion; version++ {
		if err := migrations[version](tx); err != nil {
			return fmt.Errorf("migrating from version %d: %w", version, err)
		}
	}
	if err := meta.Put(keyVersion, binary.BigEndian.AppendUint32(nil, SchemaVersion)); err != nil {
		return err
	}
	if _, err := tx.CreateBucketIfNotExists(bucketProps); err != nil {
		return err
	}
	// The dead-letter bucket is additive: a file without it is a valid
	// version 1 file, so it needs no migration.
	if _, err := tx.CreateBucketIfNotExists(bucketDead); err != nil {
		return err
	}
	q, err := tx.CreateBucketIfNotExists(bucketQueue)
	if err != nil {
		return err
	}
	b.count.Store(int64(q.Stats().KeyN))
	return nil
}

var _ Store = (*Bolt)(nil)

func (b *Bolt) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// update runs a write transaction unless the store is closed.
func (b *Bolt) update(fn func(*bolt.Tx) error) error {
	if b.isClosed() {
		return ErrClosed
	}
	return b.db.Update(fn)
}

func (b *Bolt) view(fn func(*bolt.Tx) error) error {
	if b.isClosed() {
		return ErrClosed
	}
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

// Property values are stored as one flag byte then the payload.
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

func decodeProperty(k PropertyKey, v []byte) Property {
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

// Property implements Store.
func (b *Bolt) Property(_ context.Context, k PropertyKey) (p Property, ok bool, err error) {
	err = b.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketProps).Get(propKey(k)); v != nil {
			p, ok = decodeProperty(k, v), true
		}
		return nil
	})
	return p, ok, err
}

// Properties implements Store.
func (b *Bolt) Properties(_ context.Context, iface string) ([]Property, error) {
	var out []Property
	prefix := append([]byte(iface), 0)
	err := b.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketProps).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if key, ok := parsePropKey(k); ok {
				out = append(out, decodeProperty(key, v))
			}
		}
		return nil
	})
	return out, err
}

// PutProperty implements Store; it is durable on return.
func (b *Bolt) PutProperty(_ context.Context, p Property) error {
	return b.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketProps).Put(propKey(p.PropertyKey), encodeProperty(p))
	})
}

// DeleteProperty implements Store.
func (b *Bolt) DeleteProperty(_ context.Context, k PropertyKey) error {
	return b.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketProps).Delete(propKey(k)) })
}

// Enqueue implements Store: it returns once the messages are committed and
// synced to disk, sharing that commit with concurrent callers.
func (b *Bolt) Enqueue(ctx context.Context, msgs ...*Message) error {
	if len(msgs) == 0 {
		return nil
	}
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
	err := b.db.Update(func(tx *bolt.Tx) error {
		if b.count.Load()+n > int64(b.opts.capacity) {
			return ErrFull
		}
		return putMessages(tx.Bucket(bucketQueue), msgs)
	})
	switch {
	case errors.Is(err, ErrFull):
		return ErrFull
	case errors.Is(err, bolterrors.ErrDatabaseNotOpen):
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
	err := b.db.Update(func(tx *bolt.Tx) error {
		q := tx.Bucket(bucketQueue)
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

func putMessages(q *bolt.Bucket, msgs []*Message) error {
	for _, m := range msgs {
		id, err := q.NextSequence()
		if err != nil {
			return err
		}
		m.ID = id
		if err := q.Put(binary.BigEndian.AppendUint64(nil, id), encodeMessage(m)); err != nil {
			return err
		}
	}
	return nil
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
	bad := fmt.Errorf("store: corrupt queue entry %d", id)
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
	err := b.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketQueue).Cursor()
		for k, v := c.Seek(binary.BigEndian.AppendUint64(nil, after+1)); k != nil && len(out) < limit; k, v = c.Next() {
			id := binary.BigEndian.Uint64(k)
			if _, gone := acked[id]; gone {
				continue
			}
			m, err := decodeMessage(id, v)
			if err != nil {
				return err
			}
			out = append(out, m)
		}
		return nil
	})
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
	for _, id := range ids {
		if _, dup := b.acked[id]; !dup {
			b.acked[id] = struct{}{}
			b.count.Add(-1)
		}
	}
	n := len(b.acked)
	b.mu.Unlock()
	if n >= maxBatch {
		// Keep the pending set bounded when nothing else commits.
		select {
		case b.reqs <- &writeReq{err: make(chan error, 1)}:
		default:
		}
	}
	return nil
}

// Len implements Store.
func (b *Bolt) Len(_ context.Context) (int, error) {
	if b.isClosed() {
		return 0, ErrClosed
	}
	return int(max(b.count.Load(), 0)), nil
}

// Prune implements Store.
func (b *Bolt) Prune(ctx context.Context, keep map[string]int) (props, msgs int, err error) {
	b.flushAcks(ctx)
	err = b.update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketProps).Cursor()
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
		qc := tx.Bucket(bucketQueue).Cursor()
		for k, v := qc.First(); k != nil; k, v = qc.Next() {
			m, err := decodeMessage(binary.BigEndian.Uint64(k), v)
			if major, kept := keep[m.Interface]; err == nil && kept && major == m.Major {
				continue
			}
			if err := qc.Delete(); err != nil {
				return err
			}
			msgs++
		}
		return nil
	})
	if err == nil {
		b.count.Add(-int64(msgs))
	}
	return props, msgs, err
}

// flushAcks commits pending acks now.
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
		q := tx.Bucket(bucketQueue)
		v := q.Get(key)
		if v == nil {
			return nil
		}
		rec := binary.AppendUvarint(nil, uint64(len(reason)))
		rec = append(rec, reason...)
		rec = binary.AppendVarint(rec, time.Now().UnixNano())
		if err := tx.Bucket(bucketDead).Put(key, append(rec, v...)); err != nil {
			return err
		}
		moved = true
		return q.Delete(key)
	})
	if moved && err == nil {
		b.count.Add(-1)
	}
	return moved && err == nil, err
}

// DeadLetters implements Store. An entry that cannot be decoded is
// returned with its reason and what could be read.
func (b *Bolt) DeadLetters(_ context.Context) ([]DeadLetter, error) {
	var out []DeadLetter
	err := b.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDead).ForEach(func(k, v []byte) error {
			out = append(out, decodeDeadLetter(binary.BigEndian.Uint64(k), v))
			return nil
		})
	})
	return out, err
}

func decodeDeadLetter(id uint64, v []byte) DeadLetter {
	d := DeadLetter{Message: Message{ID: id}}
	n, k := binary.Uvarint(v)
	if k <= 0 || uint64(len(v)-k) < n {
		d.Reason = "unreadable dead-letter record"
		return d
	}
	d.Reason, v = string(v[k:k+int(n)]), v[k+int(n):]
	at, k := binary.Varint(v)
	if k <= 0 {
		return d
	}
	d.At = time.Unix(0, at)
	if m, err := decodeMessage(id, v[k:]); err == nil {
		d.Message = m
	}
	return d
}

// DeleteDeadLetter implements Store.
func (b *Bolt) DeleteDeadLetter(_ context.Context, id uint64) error {
	return b.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDead).Delete(binary.BigEndian.AppendUint64(nil, id))
	})
}

// Meta implements Store.
func (b *Bolt) Meta(_ context.Context, key string) (v []byte, ok bool, err error) {
	err = b.view(func(tx *bolt.Tx) error {
		if x := tx.Bucket(bucketMeta).Get(append(append([]byte{}, userMeta...), key...)); x != nil {
			v, ok = append([]byte{}, x...), true
		}
		return nil
	})
	return v, ok, err
}

// PutMeta implements Store.
func (b *Bolt) PutMeta(_ context.Context, key string, value []byte) error {
	return b.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(append(append([]byte{}, userMeta...), key...), value)
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
	return b.db.Close()
}
