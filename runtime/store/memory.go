package store

import (
	"bytes"
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"
	"time"
)

// Memory is a Store that keeps everything in memory: for devices without a
// store directory, and for tests. Nothing survives the process.
type Memory struct {
	mu     sync.Mutex
	opts   options
	props  map[PropertyKey]Property
	queue  []Message // in ID order
	nextID uint64
	meta   map[string][]byte
	dead   []DeadLetter // in ID order
	closed bool
}

// NewMemory returns an empty in-memory store.
func NewMemory(opts ...Option) *Memory {
	return &Memory{opts: newOptions(opts), props: map[PropertyKey]Property{}, meta: map[string][]byte{}}
}

var _ Store = (*Memory)(nil)

func (m *Memory) lock() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	return nil
}

func cloneProperty(p Property) Property {
	p.Value = cloneBytes(p.Value)
	return p
}

// cloneBytes copies b, keeping nil as nil (a tombstone) and empty as empty.
func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

// Property implements Store.
func (m *Memory) Property(_ context.Context, k PropertyKey) (Property, bool, error) {
	if err := m.lock(); err != nil {
		return Property{}, false, err
	}
	defer m.mu.Unlock()
	p, ok := m.props[k]
	return cloneProperty(p), ok, nil
}

// Properties implements Store.
func (m *Memory) Properties(_ context.Context, iface string) ([]Property, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	var out []Property
	for k, p := range m.props {
		if k.Interface == iface {
			out = append(out, cloneProperty(p))
		}
	}
	slices.SortFunc(out, func(a, b Property) int {
		if c := strings.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		return a.Major - b.Major
	})
	return out, nil
}

// PutProperty implements Store.
func (m *Memory) PutProperty(_ context.Context, p Property) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	m.props[p.PropertyKey] = cloneProperty(p)
	return nil
}

// DeleteProperty implements Store.
func (m *Memory) DeleteProperty(_ context.Context, k PropertyKey) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	delete(m.props, k)
	return nil
}

// Enqueue implements Store.
func (m *Memory) Enqueue(_ context.Context, msgs ...*Message) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if len(m.queue)+len(msgs) > m.opts.capacity {
		return ErrFull
	}
	for _, msg := range msgs {
		m.nextID++
		msg.ID = m.nextID
		c := *msg
		c.Payload = bytes.Clone(msg.Payload)
		m.queue = append(m.queue, c)
	}
	return nil
}

// Pending implements Store.
func (m *Memory) Pending(_ context.Context, after uint64, limit int) ([]Message, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	i, _ := m.find(after + 1)
	end := min(len(m.queue), i+limit)
	return slices.Clone(m.queue[i:end]), nil
}

// Ack implements Store.
func (m *Memory) Ack(_ context.Context, ids ...uint64) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	for _, id := range ids {
		if i, ok := m.find(id); ok {
			m.queue = slices.Delete(m.queue, i, i+1)
		}
	}
	return nil
}

// Len implements Store.
func (m *Memory) Len(_ context.Context) (int, error) {
	if err := m.lock(); err != nil {
		return 0, err
	}
	defer m.mu.Unlock()
	return len(m.queue), nil
}

// Prune implements Store.
func (m *Memory) Prune(_ context.Context, keep map[string]int) (int, int, error) {
	if err := m.lock(); err != nil {
		return 0, 0, err
	}
	defer m.mu.Unlock()
	props := 0
	for k := range m.props {
		if major, ok := keep[k.Interface]; !ok || major != k.Major {
			delete(m.props, k)
			props++
		}
	}
	before := len(m.queue)
	m.queue = slices.DeleteFunc(m.queue, func(msg Message) bool {
		major, ok := keep[msg.Interface]
		return !ok || major != msg.Major
	})
	return props, before - len(m.queue), nil
}

// MoveToDeadLetters implements Store.
func (m *Memory) MoveToDeadLetters(_ context.Context, id uint64, reason string) (bool, error) {
	if err := m.lock(); err != nil {
		return false, err
	}
	defer m.mu.Unlock()
	i, ok := m.find(id)
	if !ok {
		return false, nil
	}
	m.dead = append(m.dead, DeadLetter{Message: m.queue[i], Reason: reason, At: time.Now()})
	slices.SortFunc(m.dead, func(a, b DeadLetter) int { return cmp.Compare(a.ID, b.ID) })
	m.queue = slices.Delete(m.queue, i, i+1)
	return true, nil
}

// DeadLetters implements Store.
func (m *Memory) DeadLetters(_ context.Context) ([]DeadLetter, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	out := slices.Clone(m.dead)
	for i := range out {
		out[i].Payload = bytes.Clone(out[i].Payload)
	}
	return out, nil
}

// DeleteDeadLetter implements Store.
func (m *Memory) DeleteDeadLetter(_ context.Context, id uint64) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	m.dead = slices.DeleteFunc(m.dead, func(d DeadLetter) bool { return d.ID == id })
	return nil
}

// Meta implements Store.
func (m *Memory) Meta(_ context.Context, key string) ([]byte, bool, error) {
	if err := m.lock(); err != nil {
		return nil, false, err
	}
	defer m.mu.Unlock()
	v, ok := m.meta[key]
	return bytes.Clone(v), ok, nil
}

// PutMeta implements Store.
func (m *Memory) PutMeta(_ context.Context, key string, value []byte) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	m.meta[key] = bytes.Clone(value)
	return nil
}

// Close implements Store.
func (m *Memory) Close() error {
	if err := m.lock(); err != nil {
		return nil
	}
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

// find locates id in the queue (kept in ID order), or where it would go.
func (m *Memory) find(id uint64) (int, bool) {
	return slices.BinarySearchFunc(m.queue, id, func(msg Message, id uint64) int {
		switch {
		case msg.ID < id:
			return -1
		case msg.ID > id:
			return 1
		}
		return 0
	})
}
