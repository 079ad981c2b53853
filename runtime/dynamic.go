package runtime

import (
	"context"
	"fmt"
	"time"

	"github.com/astarte-gen/astarte-gen/runtime/model"
)

// SendOption modifies a dynamic Send.
type SendOption func(*sendOptions)

type sendOptions struct{ timestamp time.Time }

// WithTimestamp sets the explicit timestamp of a dynamic Send.
func WithTimestamp(t time.Time) SendOption { return func(o *sendOptions) { o.timestamp = t } }

// resolve finds a device interface by name and matches path against it.
func (d *Device) resolve(interfaceName, path string) (*ifaceInfo, model.Match, error) {
	info, ok := d.ifaces().lookup(interfaceName)
	if !ok {
		return nil, model.Match{}, fmt.Errorf("%w: %s", ErrUnknownInterface, interfaceName)
	}
	m, err := info.Match(path)
	if err != nil {
		return nil, model.Match{}, err
	}
	return info, m, nil
}

// Send is the dynamic API, for programs that load interfaces at run time: it
// resolves interfaceName and path, checks value (the Go type of the mapping's Astarte type, other numeric
// kinds when the value fits, map[string]any keyed by last level for an object), and sends
// a datastream value or sets a property, with the same validation and
// retention as generated senders.
func (d *Device) Send(ctx context.Context, interfaceName, path string, value any, opts ...SendOption) error {
	var o sendOptions
	for _, opt := range opts {
		opt(&o)
	}
	info, match, err := d.resolve(interfaceName, path)
	if err != nil {
		return err
	}
	m := d.message(info.Interface, match.Index, match.Params...)
	m.setAny(value)
	return m.Send(ctx, o.timestamp)
}

// UnsetPath is the dynamic counterpart of Unset.
func (d *Device) UnsetPath(ctx context.Context, interfaceName, path string) error {
	info, match, err := d.resolve(interfaceName, path)
	if err != nil {
		return err
	}
	return d.unset(ctx, info, match.Index, d.base+"/"+info.Name+path)
}

// PropertyAt is the dynamic counterpart of Property: the stored value of
// the property at path, as the Go type of its Astarte type.
func (d *Device) PropertyAt(interfaceName, path string) (any, bool, error) {
	info, match, err := d.resolve(interfaceName, path)
	if err != nil {
		return nil, false, err
	}
	if info.Type != model.Properties {
		return nil, false, fmt.Errorf("%w: %s is a datastream", ErrMappingNotFound, info.Name)
	}
	v, ok, err := d.readProperty(info, match, path)
	if !ok || err != nil {
		return nil, ok, err
	}
	return v.Any(), true, nil
}
