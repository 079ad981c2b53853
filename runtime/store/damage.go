package store

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"io"
	"io/fs"
	"math/bits"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrDamaged is wrapped by every *DamagedError.
var ErrDamaged = errors.New("store: damaged file")

// DamagedError says that the store file cannot be used: empty, truncated,
// not a bbolt file, structurally corrupt, or not a regular file. OpenBolt
// returns it before bbolt maps such a file, or when reading the mapped file
// faulted or panicked; it is never a crash. See Quarantine.
type DamagedError struct {
	Path   string
	Size   int64 // bytes; -1 when not a regular file
	Reason string
}

// Error says which file, its size and what is wrong with it.
func (e *DamagedError) Error() string {
	return fmt.Sprintf("store: %s is damaged (%d bytes): %s", e.Path, e.Size, e.Reason)
}

// Unwrap makes errors.Is(err, ErrDamaged) true.
func (e *DamagedError) Unwrap() error { return ErrDamaged }

// bbolt's on-disk layout, which precheck reads before bbolt maps the file
// (go.etcd.io/bbolt internal/common: a 16-byte page header, then the meta:
// magic, version, page size, flags, root bucket {pgid, sequence},
// freelist pgid, high-water pgid, txid, FNV-64a checksum of what precedes
// it). Integers are in the machine's byte order.
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	metaOffset     = 16
	metaSize       = 64
	noFreelistPgid = ^uint64(0)
)

type boltMeta struct {
	pageSize                 uint32
	root, freelist, pgid, tx uint64
}

// readMeta decodes and validates the meta page at the start of b.
func readMeta(b []byte) (boltMeta, bool) {
	if len(b) < metaOffset+metaSize {
		return boltMeta{}, false
	}
	m := b[metaOffset : metaOffset+metaSize]
	e := binary.NativeEndian
	h := fnv.New64a()
	h.Write(m[:56])
	if e.Uint32(m[0:]) != boltMagic || e.Uint32(m[4:]) != boltVersion || e.Uint64(m[56:]) != h.Sum64() {
		return boltMeta{}, false
	}
	meta := boltMeta{pageSize: e.Uint32(m[8:]), root: e.Uint64(m[16:]), freelist: e.Uint64(m[32:]), pgid: e.Uint64(m[40:]), tx: e.Uint64(m[48:])}
	ps := meta.pageSize
	return meta, ps >= 512 && ps <= 1<<16 && bits.OnesCount32(ps) == 1
}

// precheck looks at the store file before bbolt maps it: bbolt trusts the
// file, and a truncated one makes it read past the end of the mapping
// (SIGBUS, which no recover catches without SetPanicOnFault) or panic on
// the freelist. A missing file is fine (a new store); anything else that
// bbolt could not use is a *DamagedError.
func precheck(path string) error {
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	damaged := func(format string, args ...any) error {
		return &DamagedError{Path: path, Size: st.Size(), Reason: fmt.Sprintf(format, args...)}
	}
	if !st.Mode().IsRegular() {
		return &DamagedError{Path: path, Size: -1, Reason: fmt.Sprintf("not a regular file (%s)", st.Mode().Type())}
	}
	if st.Size() == 0 {
		// bbolt would silently initialise it: whatever was stored is gone,
		// and that is damage to report, not a new store.
		return damaged("empty file")
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer f.Close()
	// The meta pages are the first two pages; the second sits at the page
	// size the first names, or at the OS page size when the first is bad.
	first := make([]byte, metaOffset+metaSize)
	if _, err := io.ReadFull(f, first); err != nil {
		return damaged("shorter than a bbolt meta page")
	}
	metas := []boltMeta{}
	second := int64(os.Getpagesize())
	if m, ok := readMeta(first); ok {
		metas, second = append(metas, m), int64(m.pageSize)
	}
	buf := make([]byte, metaOffset+metaSize)
	if _, err := f.ReadAt(buf, second); err == nil {
		if m, ok := readMeta(buf); ok {
			metas = append(metas, m)
		}
	}
	if len(metas) == 0 {
		return damaged("no valid bbolt meta page (not a store file, or both meta pages overwritten)")
	}
	// bbolt uses the valid meta with the highest transaction id.
	m := slices.MaxFunc(metas, func(a, b boltMeta) int { return cmp.Compare(a.tx, b.tx) })
	if need := int64(m.pgid) * int64(m.pageSize); m.pgid > 1<<40 || st.Size() < need {
		return damaged("truncated: the meta page describes %d pages of %d bytes", m.pgid, m.pageSize)
	}
	if m.root >= m.pgid || (m.freelist >= m.pgid && m.freelist != noFreelistPgid) {
		return damaged("meta page points beyond the file's pages")
	}
	return nil
}

// guard turns a panic or a memory fault while bbolt reads the mapped file
// into a *DamagedError in *err. Use as
//
//	defer guard(path, &err)()
//
// in the goroutine that calls bbolt: SetPanicOnFault is per goroutine.
func guard(path string, err *error) func() {
	old := debug.SetPanicOnFault(true)
	return func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			size := int64(-1)
			if st, statErr := os.Stat(path); statErr == nil {
				size = st.Size()
			}
			*err = &DamagedError{Path: path, Size: size, Reason: fmt.Sprintf("reading it failed: %v", r)}
		}
	}
}

// damagedSuffix marks a store file moved aside by Quarantine.
const damagedSuffix = ".damaged-"

// maxQuarantined bounds how many damaged files are kept, oldest removed
// first, so that a disk that keeps damaging the store does not fill up.
const maxQuarantined = 3

// Quarantine moves the store file of dir aside, to
// astarte.db.damaged-<UTC time>, keeping it for forensics, so that OpenBolt
// then creates a fresh store. Only the newest three damaged files are
// kept. It returns the new path.
func Quarantine(dir string) (string, error) {
	path := filepath.Join(dir, FileName)
	to := path + damagedSuffix + time.Now().UTC().Format("20060102T150405.000000000Z")
	if err := os.Rename(path, to); err != nil {
		return "", fmt.Errorf("store: moving the damaged file aside: %w", err)
	}
	entries, _ := os.ReadDir(dir) // sorted by name, so by time
	var old []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), FileName+damagedSuffix) {
			old = append(old, filepath.Join(dir, e.Name()))
		}
	}
	for len(old) > maxQuarantined {
		_ = os.RemoveAll(old[0])
		old = old[1:]
	}
	return to, nil
}

// Entry checksums: CRC-32C of the key and the value, in front of the value
// of each queue entry and property (schema version 2).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func sealEntry(key, value []byte) []byte {
	sum := crc32.Update(crc32.Checksum(key, castagnoli), castagnoli, value)
	return append(binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(value)), sum), value...)
}

// openEntry checks and strips the checksum.
func openEntry(key, sealed []byte) ([]byte, bool) {
	if len(sealed) < 4 {
		return nil, false
	}
	value := sealed[4:]
	sum := crc32.Update(crc32.Checksum(key, castagnoli), castagnoli, value)
	return value, binary.BigEndian.Uint32(sealed) == sum
}

// corruptEntry is a queue entry or property value that failed its
// checksum or could not be decoded.
type corruptEntry struct {
	bucket []byte // bucketQueue or bucketProps
	key    []byte
	reason string
}

// moveCorrupt moves damaged entries to the dead letters within tx and
// returns what it moved. A queue entry keeps its ID; a property value gets
// a new ID from the queue's sequence and is recorded as a message on its
// key (QoS 2, the payload as far as it can be read), so that the
// application sees it with Device.DeadLetters.
// queued lists the queue IDs it removed.
func moveCorrupt(tx container, entries []corruptEntry) (moved []DeadLetter, queued []uint64, err error) {
	q, props, dead := tx.Bucket(bucketQueue), tx.Bucket(bucketProps), tx.Bucket(bucketDead)
	now := time.Now()
	for _, e := range entries {
		var key, rec []byte
		switch string(e.bucket) {
		case string(bucketQueue):
			v := q.Get(e.key)
			if v == nil {
				continue
			}
			reason := e.reason
			if reason == "" {
				reason = "queue entry fails its checksum"
			}
			key, rec = e.key, appendDeadLetter("damaged in the store: "+reason, now, v)
			if err := q.Delete(e.key); err != nil {
				return nil, nil, err
			}
			queued = append(queued, binary.BigEndian.Uint64(e.key))
		default:
			v := props.Get(e.key)
			if v == nil {
				continue
			}
			id, err := q.NextSequence()
			if err != nil {
				return nil, nil, err
			}
			pk, _ := parsePropKey(e.key)
			m := Message{ID: id, Interface: pk.Interface, Major: pk.Major, Path: pk.Path, QoS: 2}
			if len(v) > 5 {
				m.Payload = v[5:] // after the checksum and the flags
			}
			key = binary.BigEndian.AppendUint64(nil, id)
			rec = appendDeadLetter("damaged in the store: property value fails its checksum", now, sealEntry(key, encodeMessage(&m)))
			if err := props.Delete(e.key); err != nil {
				return nil, nil, err
			}
		}
		if err := dead.Put(key, rec); err != nil {
			return nil, nil, err
		}
		moved = append(moved, decodeDeadLetter(binary.BigEndian.Uint64(key), rec))
	}
	return moved, queued, nil
}

// settleCorrupt moves entries found damaged after open to the dead letters
// and reports them.
func (b *Bolt) settleCorrupt(entries []corruptEntry) error {
	if len(entries) == 0 {
		return nil
	}
	var moved []DeadLetter
	var ids []uint64
	err := b.update(func(tx *bolt.Tx) error {
		var err error
		moved, ids, err = moveCorrupt(b.in(tx), entries)
		return err
	})
	if err != nil {
		return err
	}
	b.deleted(ids)
	b.reportCorrupt(moved)
	return nil
}

func (b *Bolt) reportCorrupt(moved []DeadLetter) {
	if b.opts.onCorrupt == nil {
		return
	}
	for _, d := range moved {
		b.opts.onCorrupt(d)
	}
}

// Count tells how many queued messages and property values a store file
// holds, reading what can be read of a damaged one (for the report of a
// quarantine): -1 when the file cannot be read at all. It never crashes:
// the file is checked first and read with faults turned into errors.
func Count(path string) (msgs, props int) {
	msgs, props = -1, -1
	if precheck(path) != nil {
		return msgs, props
	}
	var err error
	func() {
		defer guard(path, &err)()
		db, openErr := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
		if openErr != nil {
			return
		}
		defer db.Close()
		_ = db.View(func(tx *bolt.Tx) error {
			for name, n := range map[string]*int{string(bucketQueue): &msgs, string(bucketProps): &props} {
				if bk := tx.Bucket([]byte(name)); bk != nil {
					*n = 0
					_ = bk.ForEach(func(_, _ []byte) error { *n++; return nil })
				}
			}
			return nil
		})
	}()
	return msgs, props
}
