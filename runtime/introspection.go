package runtime

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/astarte-gen/astarte-gen/runtime/model"
)

// registry is the device's interface set. It is never changed once built:
// AddInterfaces and RemoveInterfaces build a new one and swap it in, so
// senders, the dispatcher and the owner loop read it without a lock.
type registry struct {
	sorted        []*ifaceInfo // by name; lookup searches it (no map: less to hold per device)
	introspection string
}

// lookup finds the interface named name.
func (r *registry) lookup(name string) (*ifaceInfo, bool) {
	n, ok := slices.BinarySearchFunc(r.sorted, name, func(i *ifaceInfo, name string) int { return strings.Compare(i.Name, name) })
	if !ok {
		return nil, false
	}
	return r.sorted[n], true
}

// newRegistry checks ifaces and builds a registry of them; base is the
// device's topic root.
func newRegistry(base string, ifaces []*model.Interface) (*registry, error) {
	infos, err := buildInfos(base, ifaces)
	if err != nil {
		return nil, err
	}
	return registryOf(infos), nil
}

// buildInfos checks ifaces (each valid, no name twice) and precomputes
// what the device needs for each.
func buildInfos(base string, ifaces []*model.Interface) ([]*ifaceInfo, error) {
	infos := make([]*ifaceInfo, 0, len(ifaces))
	seen := map[string]bool{}
	for _, i := range ifaces {
		info, err := buildInfo(base, i)
		if err != nil {
			return nil, err
		}
		if seen[i.Name] {
			return nil, fmt.Errorf("%w: interface %s given twice", ErrConfig, i.Name)
		}
		seen[i.Name] = true
		infos = append(infos, info)
	}
	return infos, nil
}

// registryOf indexes infos (distinct names).
func registryOf(infos []*ifaceInfo) *registry {
	r := &registry{sorted: slices.Clone(infos)}
	slices.SortFunc(r.sorted, func(a, b *ifaceInfo) int { return strings.Compare(a.Name, b.Name) })
	r.introspection = model.Introspection(r.interfaces())
	return r
}

// interfaces returns the descriptors, sorted by name.
func (r *registry) interfaces() []*model.Interface {
	out := make([]*model.Interface, len(r.sorted))
	for n, i := range r.sorted {
		out[n] = i.Interface
	}
	return out
}

// changed returns r without the interfaces named in remove and with add
// (replacing any of the same name).
func (r *registry) changed(add []*ifaceInfo, remove []string) *registry {
	var infos []*ifaceInfo
	for _, info := range r.sorted {
		replaced := slices.ContainsFunc(add, func(a *ifaceInfo) bool { return a.Name == info.Name })
		if !replaced && !slices.Contains(remove, info.Name) {
			infos = append(infos, info)
		}
	}
	return registryOf(append(infos, add...))
}

// serverFilters returns what a full sync subscribes to: the server's
// purge list and every server-owned interface (spec §3.3).
func (r *registry) serverFilters(base string) []string {
	return append([]string{base + "/control/consumer/properties"}, filtersOf(base, r.sorted)...)
}

// filtersOf returns the subscription filters of the server-owned
// interfaces among infos.
func filtersOf(base string, infos []*ifaceInfo) []string {
	var out []string
	for _, i := range infos {
		if i.Ownership == model.OwnershipServer {
			out = append(out, base+"/"+i.Name+"/#")
		}
	}
	return out
}

// ifaces returns the current interface set.
func (d *Device) ifaces() *registry { return d.reg.Load() }

// ifaceChange is a request to the owner loop to change the interface set.
type ifaceChange struct {
	add    []*ifaceInfo
	remove []string
	done   chan error
}

// AddInterfaces adds interfaces to the device, or replaces those of the
// same name (another minor or major), checked as New checks them. On a
// connected device the broker learns of them before any data: the device
// subscribes to the server-owned ones, publishes the new introspection and
// waits for its acknowledgement; only then may they be used (Send, typed
// senders, Handle). Offline, the change applies at once and the next
// connection publishes the new introspection before any data. Data kept for
// the old major of a replaced interface is dropped (spec §3.13, §3.14).
//
// Interface files are loaded at run time with schema.LoadInterfaces, which
// validates them as astarte-gen validate does, and then passed here.
func (d *Device) AddInterfaces(ctx context.Context, ifaces ...*model.Interface) error {
	infos, err := buildInfos(d.base, ifaces)
	if err != nil {
		return err
	}
	return d.changeInterfaces(ctx, &ifaceChange{add: infos})
}

// RemoveInterfaces removes interfaces from the device by name. Sending on
// them fails from the moment the call starts (ErrUnknownInterface); on a
// connected device the new introspection is published, then the device
// unsubscribes from the server-owned ones. Their queued data (stored and
// volatile messages, stored properties) is dropped, as the protocol asks
// (spec §3.13, §3.14); messages already handed to the connection complete.
func (d *Device) RemoveInterfaces(ctx context.Context, names ...string) error {
	reg := d.ifaces()
	for _, name := range names {
		if _, ok := reg.lookup(name); !ok {
			return fmt.Errorf("%w: %s", ErrUnknownInterface, name)
		}
	}
	return d.changeInterfaces(ctx, &ifaceChange{remove: names})
}

// changeInterfaces applies ch: through the owner loop once the device
// runs (it owns the connection and what is published on it), directly
// before Connect.
func (d *Device) changeInterfaces(ctx context.Context, ch *ifaceChange) error {
	d.changeMu.Lock()
	defer d.changeMu.Unlock()
	if d.isClosed() {
		return ErrClosed
	}
	d.mu.Lock()
	started := d.started
	d.mu.Unlock()
	if !started {
		return d.applyOffline(ctx, ch)
	}
	ch.done = make(chan error, 1)
	select {
	case d.changes <- ch:
	case <-ctx.Done():
		return fmt.Errorf("interfaces not changed: %w", ctx.Err())
	case <-d.closing:
		return ErrClosed
	}
	select {
	case err := <-ch.done:
		return err
	case <-d.closing:
		return ErrClosed
	}
}

// applyOffline installs the new set while no connection is up; the next
// connection finds the introspection changed and syncs in full.
func (d *Device) applyOffline(ctx context.Context, ch *ifaceChange) error {
	next := d.ifaces().changed(ch.add, ch.remove)
	d.reg.Store(next)
	return d.dropRemoved(ctx, next)
}

// applyConnected runs on the owner loop with connection c: the protocol
// order of spec §3.6 (subscribe, then introspection, for additions;
// introspection, then unsubscribe, for removals). Senders stop using removed
// interfaces first and start using added ones last. If the connection
// fails on the way, the change still applies: the next connection syncs in
// full.
func (d *Device) applyConnected(ctx context.Context, c *conn, ch *ifaceChange) error {
	prev := d.ifaces()
	next := prev.changed(ch.add, ch.remove)
	var removed []*ifaceInfo
	for _, name := range ch.remove {
		info, _ := prev.lookup(name) // RemoveInterfaces checked it is there
		removed = append(removed, info)
	}
	d.reg.Store(prev.changed(nil, ch.remove)) // replaced ones keep their old version meanwhile
	err := d.subscribe(ctx, c, filtersOf(d.base, ch.add))
	if err == nil {
		err = d.publishWait(ctx, c, d.base, []byte(next.introspection))
	}
	if err == nil {
		err = d.store.PutMeta(ctx, metaIntrospection, []byte(next.introspection))
	}
	d.reg.Store(next)
	if err == nil {
		err = d.unsubscribe(ctx, c, filtersOf(d.base, removed))
	}
	if err != nil {
		d.log.Info("interface change: the connection failed midway; the next one publishes the new introspection", "err", err)
		c.end()
	}
	return d.dropRemoved(ctx, next)
}

// dropRemoved drops what the device kept for interfaces next no longer
// has: stored data (and that of other majors), volatile messages, pending
// property marks.
func (d *Device) dropRemoved(ctx context.Context, next *registry) error {
	d.mu.Lock()
	d.volatile.filter(func(v volatileMsg) bool { return next.hasTopic(d.base, v.topic) })
	for k := range d.dirty {
		if info, ok := next.lookup(k.Interface); !ok || info.Major != k.Major {
			delete(d.dirty, k)
		}
	}
	d.mu.Unlock()
	return d.prune(ctx, next)
}

// hasTopic reports whether a data topic belongs to one of r's interfaces.
func (r *registry) hasTopic(base, topic string) bool {
	name, _, _ := strings.Cut(strings.TrimPrefix(topic, base+"/"), "/")
	_, ok := r.lookup(name)
	return ok
}

// unsubscribe removes subscriptions, waiting for the broker's answer.
func (d *Device) unsubscribe(ctx context.Context, c *conn, topics []string) error {
	if len(topics) == 0 {
		return nil
	}
	if err := waitToken(ctx, c.client.Unsubscribe(topics...), c); err != nil {
		return fmt.Errorf("unsubscribe: %w", err)
	}
	return nil
}
