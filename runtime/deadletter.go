package runtime

import (
	"context"
	"time"

	"github.com/astarte-gen/astarte-gen/internal/wire"
)

// DeadLetter is a stored message the device stopped sending because the
// server kept refusing it (see Config.MaxRefusals): it stays in the store
// until the application deletes it.
type DeadLetter struct {
	// ID identifies it for DeleteDeadLetter.
	ID        uint64
	Interface string
	Major     int
	Path      string
	// Payload is the BSON payload as it would have been published; Value is
	// it decoded when the interface is still the device's (else nil).
	Payload []byte
	Value   any
	Reason  string
	At      time.Time
}

// DeadLetters returns the dead letters in the order they were queued.
func (d *Device) DeadLetters(ctx context.Context) ([]DeadLetter, error) {
	if d.isClosed() {
		return nil, ErrClosed
	}
	dead, err := d.store.DeadLetters(ctx)
	if err != nil {
		return nil, d.storeErr(err)
	}
	out := make([]DeadLetter, len(dead))
	for i, m := range dead {
		out[i] = DeadLetter{ID: m.ID, Interface: m.Interface, Major: m.Major, Path: m.Path, Payload: m.Payload, Reason: m.Reason, At: m.At}
		info, ok := d.ifaces().lookup(m.Interface)
		if !ok || info.Major != m.Major {
			continue
		}
		if match, err := info.Match(m.Path); err == nil {
			if dec, err := wire.Decode(info.Interface, match, m.Payload); err == nil {
				out[i].Value = decodedValue(info.Interface, dec)
			}
		}
	}
	return out, nil
}

// DeleteDeadLetter removes a dead letter for good.
func (d *Device) DeleteDeadLetter(ctx context.Context, id uint64) error {
	if d.isClosed() {
		return ErrClosed
	}
	return d.storeErr(d.store.DeleteDeadLetter(ctx, id))
}
