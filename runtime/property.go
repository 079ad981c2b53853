package runtime

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/astarte-gen/astarte-gen/internal/wire"
	"github.com/astarte-gen/astarte-gen/runtime/model"
	"github.com/astarte-gen/astarte-gen/runtime/store"
)

// setProperty stores a device-owned property and publishes it when
// connected. Setting the value it already has publishes nothing (spec
// §3.13).
func (d *Device) setProperty(ctx context.Context, o outgoing) error {
	key := store.PropertyKey{Interface: o.info.Name, Major: o.info.Major, Path: d.pathOf(o.topic, o.info.Name)}
	p := store.Property{PropertyKey: key, Value: bytes.Clone(o.payload), Unsent: true}
	changed, err := d.putProperty(ctx, p, func(prev store.Property, ok bool) bool {
		return !ok || prev.Value == nil || !bytes.Equal(prev.Value, p.Value)
	})
	if err != nil || !changed {
		return err
	}
	d.publishProperty(p.PropertyKey)
	return nil
}

// putProperty stores p as unsent if change(previous, found) says so. The
// lock covers only the store's
// read-modify-write, never a publish: the ack loop takes it too.
func (d *Device) putProperty(ctx context.Context, p store.Property, change func(prev store.Property, found bool) bool) (bool, error) {
	d.propMu.Lock()
	defer d.propMu.Unlock()
	prev, ok, err := d.store.Property(ctx, p.PropertyKey)
	if err != nil {
		return false, fmt.Errorf("read property %s%s: %w", p.Interface, p.Path, d.storeErr(err))
	}
	if !change(prev, ok) {
		return false, nil
	}
	if err := d.store.PutProperty(ctx, p); err != nil {
		return false, fmt.Errorf("store property %s%s: %w", p.Interface, p.Path, d.storeErr(err))
	}
	return true, nil
}

// publishProperty marks a stored change for the owner loop, which sends it
// when connected (offline, the next sync does); the acknowledgement clears
// the unsent mark.
func (d *Device) publishProperty(k store.PropertyKey) {
	d.markDirty(k, false)
	d.poke()
}

// markDirty records that a device property must be sent: if it is still
// unsent then, or in any case with force (a full sync resends everything).
func (d *Device) markDirty(k store.PropertyKey, force bool) {
	d.mu.Lock()
	if d.dirty == nil {
		d.dirty = map[store.PropertyKey]bool{}
	}
	d.dirty[k] = d.dirty[k] || force
	d.mu.Unlock()
}

// propertyAcked settles a published property change, unless it has been
// superseded meanwhile.
func (d *Device) propertyAcked(sent store.Property) {
	d.propMu.Lock()
	defer d.propMu.Unlock()
	ctx := context.Background()
	cur, ok, err := d.store.Property(ctx, sent.PropertyKey)
	if err != nil || !ok || !cur.Unsent || !bytes.Equal(cur.Value, sent.Value) || (cur.Value == nil) != (sent.Value == nil) {
		if err != nil && !d.isClosed() {
			d.report(&Error{Kind: ErrStore, Interface: sent.Interface, Path: sent.Path, Err: err, Op: "reading a property after its acknowledgement"})
		}
		return
	}
	if cur.Value == nil {
		err = d.store.DeleteProperty(ctx, cur.PropertyKey)
	} else {
		cur.Unsent = false
		err = d.store.PutProperty(ctx, cur)
	}
	if err != nil && !d.isClosed() {
		d.report(&Error{Kind: ErrStore, Interface: sent.Interface, Path: sent.Path, Err: err, Op: "updating a property after its acknowledgement"})
	}
}

// unsetMapping unsets a device-owned property whose mapping has
// allow_unset. Unsetting a property that is not set does nothing.
func (d *Device) unsetMapping(ctx context.Context, iface *model.Interface, mapping int, params ...string) error {
	info, err := d.lookup(iface)
	if err != nil {
		return err
	}
	topic, err := d.propertyTopic(info, mapping, params)
	if err != nil {
		return err
	}
	return d.unset(ctx, info, mapping, topic)
}

func (d *Device) unset(ctx context.Context, info *ifaceInfo, mapping int, topic string) error {
	if d.isClosed() {
		return ErrClosed
	}
	if info.Ownership != model.OwnershipDevice {
		return fmt.Errorf("%w: %s is server-owned", ErrWrongOwnership, info.Name)
	}
	if info.Type != model.Properties || !info.Mappings[mapping].AllowUnset {
		return fmt.Errorf("%w: %s%s", ErrUnsetNotAllowed, info.Name, info.Mappings[mapping].Endpoint)
	}
	key := store.PropertyKey{Interface: info.Name, Major: info.Major, Path: d.pathOf(topic, info.Name)}
	tombstone := store.Property{PropertyKey: key, Unsent: true}
	changed, err := d.putProperty(ctx, tombstone, func(prev store.Property, found bool) bool { return found && prev.Value != nil })
	if err != nil || !changed {
		return err
	}
	d.publishProperty(key)
	return nil
}

// propertyTopic builds the topic of an individual property mapping.
func (d *Device) propertyTopic(info *ifaceInfo, mapping int, params []string) (string, error) {
	if mapping < 0 || mapping >= len(info.Mappings) {
		return "", fmt.Errorf("%w: %s has no mapping %d", model.ErrMappingNotFound, info.Name, mapping)
	}
	topic, err := appendTopic(nil, d.base, info.Name, info.levels[mapping], params)
	if err != nil {
		return "", fmt.Errorf("%s%s: %w", info.Name, info.Mappings[mapping].Endpoint, err)
	}
	return string(topic), nil
}

// property returns the stored value of a property (device-owned: the last
// set value; server-owned: the last value received), and whether it is set.
func (d *Device) property(iface *model.Interface, mapping int, params ...string) (Value, bool, error) {
	info, err := d.lookup(iface)
	if err != nil {
		return Value{}, false, err
	}
	if info.Type != model.Properties {
		return Value{}, false, fmt.Errorf("%w: %s is a datastream", model.ErrMappingNotFound, info.Name)
	}
	topic, err := d.propertyTopic(info, mapping, params)
	if err != nil {
		return Value{}, false, err
	}
	return d.readProperty(info, model.Match{Index: mapping, Params: params}, d.pathOf(topic, info.Name))
}

func (d *Device) readProperty(info *ifaceInfo, m model.Match, path string) (Value, bool, error) {
	if d.isClosed() {
		return Value{}, false, ErrClosed
	}
	p, ok, err := d.store.Property(context.Background(), store.PropertyKey{Interface: info.Name, Major: info.Major, Path: path})
	if err != nil {
		return Value{}, false, d.storeErr(err)
	}
	if !ok || p.Value == nil {
		return Value{}, false, nil
	}
	dec, err := wire.Decode(info.Interface, m, p.Value)
	if err != nil {
		return Value{}, false, fmt.Errorf("stored property %s%s: %w", info.Name, path, err)
	}
	return Value{dec.Value}, true, nil
}

// Property is one stored property: its path, the mapping it matches (an
// index in the interface's mappings) with the values of the path
// parameters, and its value.
type Property struct {
	Path    string
	Mapping int
	Params  []string
	Value   Value
}

// Properties lists every property of the interface named interfaceName
// that is set, sorted by path: for a device-owned interface what the
// device set and did not unset, for a server-owned one what the server set
// and did not unset or purge. It reads the store, so it works offline and
// across restarts.
func (d *Device) Properties(interfaceName string) ([]Property, error) {
	info, ok := d.ifaces().lookup(interfaceName)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownInterface, interfaceName)
	}
	return d.properties(info, -1)
}

// properties lists the set properties of info, of mapping index mapping
// only when mapping >= 0.
func (d *Device) properties(info *ifaceInfo, mapping int) ([]Property, error) {
	if d.isClosed() {
		return nil, ErrClosed
	}
	if info.Type != model.Properties {
		return nil, fmt.Errorf("%w: %s is a datastream", model.ErrMappingNotFound, info.Name)
	}
	stored, err := d.store.Properties(context.Background(), info.Name)
	if err != nil {
		return nil, d.storeErr(err)
	}
	var out []Property
	for _, p := range stored {
		if p.Major != info.Major || p.Value == nil {
			continue // another major's leftover, or an unset not yet sent
		}
		m, err := info.Match(p.Path)
		if err != nil {
			return nil, fmt.Errorf("stored property %s%s: %w", info.Name, p.Path, err)
		}
		if mapping >= 0 && m.Index != mapping {
			continue
		}
		dec, err := wire.Decode(info.Interface, m, p.Value)
		if err != nil {
			return nil, fmt.Errorf("stored property %s%s: %w", info.Name, p.Path, err)
		}
		out = append(out, Property{Path: p.Path, Mapping: m.Index, Params: m.Params, Value: Value{dec.Value}})
	}
	slices.SortFunc(out, func(a, b Property) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}
