package astartetest

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	mqtt "github.com/mochi-mqtt/server/v2"

	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"

	"github.com/astarte-gen/astarte-gen/runtime"
)

// Received is one data message Astarte accepted from a device.
type Received struct {
	Interface string
	Path      string
	// Value is the value as the Go type of its Astarte type (see
	// runtime.Value.Any); for an object, a map[string]any keyed by the
	// endpoints' last levels. Nil for an unset.
	Value     any
	Timestamp time.Time // the explicit timestamp, zero when absent
	Unset     bool
	QoS       byte
}

// deviceState is what the fake Astarte knows of one device.
type deviceState struct {
	mu            sync.Mutex
	introspection map[string]*runtime.Interface // name → installed interface
	rawIntro      string
	received      []Received
	receivedIn    []int             // the session number of each received message
	payloads      [][]byte          // of received, as published
	deviceProps   map[string]any    // "<iface><path>" → value
	serverProps   map[string][]byte // "<iface><path>" → payload
	errors        []string
	events        []string
	connections   int
	pubrels       int // PUBREL packets received
	sessions      int // fresh MQTT sessions started so far
	// awaitingRelease holds the QoS 2 messages (topic and payload) received
	// in the current session and not yet released (PUBREL), by packet ID;
	// released the last one released under each packet ID.
	awaitingRelease, released map[uint16]string
	clearSession              bool
	// plaintextPurge is the purge_properties_compression_format capability.
	plaintextPurge bool
	client         *mqtt.Client
	changed        chan struct{} // closed and replaced on every new record
}

func (a *Astarte) state(deviceID string) *deviceState {
	a.bmu.Lock()
	defer a.bmu.Unlock()
	if a.states == nil {
		a.states = map[string]*deviceState{}
	}
	st, ok := a.states[deviceID]
	if !ok {
		st = &deviceState{deviceProps: map[string]any{}, serverProps: map[string][]byte{}, changed: make(chan struct{})}
		a.states[deviceID] = st
	}
	return st
}

// record appends an event and wakes waiters.
func (st *deviceState) record(event string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.events = append(st.events, event)
	st.notify()
}

// notify wakes waiters; st.mu must be held.
func (st *deviceState) notify() {
	close(st.changed)
	st.changed = make(chan struct{})
}

// receive handles one device publish as Astarte's data updater does. It
// returns the §5.2 error name for invalid input, "" otherwise.
func (a *Astarte) receive(deviceID, rest string, payload []byte, qos byte) (string, error) {
	st := a.state(deviceID)
	switch {
	case rest == "":
		st.record("introspection")
		return a.setIntrospection(st, string(payload))
	case rest == "control/emptyCache":
		st.record("emptyCache")
		return a.emptyCache(deviceID, st)
	case rest == "control/producer/properties":
		st.record("producer/properties")
		return a.purgeDeviceProperties(st, payload)
	case strings.HasPrefix(rest, "control/"):
		return "unexpected_control_message", errors.New(rest)
	case rest == "capabilities":
		st.record("capabilities")
		return setCapabilities(st, payload)
	}
	name, path, _ := strings.Cut(rest, "/")
	st.record("data " + name + "/" + path)
	return a.receiveData(st, name, "/"+path, payload, qos)
}

// setIntrospection parses "name:major:minor;…" strictly (spec §3.6).
func (a *Astarte) setIntrospection(st *deviceState, text string) (string, error) {
	ifaces := map[string]*runtime.Interface{}
	if text != "" {
		for _, tok := range strings.Split(text, ";") {
			parts := strings.Split(tok, ":")
			if len(parts) != 3 || parts[0] == "" {
				return "invalid_introspection", fmt.Errorf("token %q", tok)
			}
			major, err1 := strconv.Atoi(parts[1])
			_, err2 := strconv.Atoi(parts[2])
			if err1 != nil || err2 != nil || major < 0 || strings.HasPrefix(parts[2], "-") {
				return "invalid_introspection", fmt.Errorf("token %q", tok)
			}
			if installed, ok := a.ifaces[parts[0]]; ok && installed.Major == major {
				ifaces[parts[0]] = installed
			} else {
				ifaces[parts[0]] = nil // listed but not installed: data on it fails
			}
		}
	}
	st.mu.Lock()
	st.introspection, st.rawIntro = ifaces, text
	st.mu.Unlock()
	return "", nil
}

// serverPropertyKeys lists the set server-owned properties of interfaces in
// the introspection.
func (st *deviceState) serverPropertyKeys() []string {
	var keys []string
	for key := range st.serverProps {
		name, _, _ := strings.Cut(key, "/")
		if iface := st.introspection[name]; iface != nil {
			keys = append(keys, key)
		}
	}
	slices.Sort(keys)
	return keys
}

// emptyCache sends consumer/properties then every set server property
// (spec §3.7). Without the device's subscriptions in place Astarte fails
// with device_session_not_found.
func (a *Astarte) emptyCache(deviceID string, st *deviceState) (string, error) {
	if !a.subscribed(deviceID, a.realm+"/"+deviceID+"/control/consumer/properties") {
		return "device_session_not_found", errors.New("no subscription to control/consumer/properties")
	}
	st.mu.Lock()
	keys := st.serverPropertyKeys()
	values := make([][]byte, len(keys))
	for i, k := range keys {
		values[i] = st.serverProps[k]
	}
	purge := runtime.EncodePurge(keys)
	if st.plaintextPurge {
		purge = []byte(strings.Join(keys, ";"))
	}
	st.mu.Unlock()
	if err := a.publish(deviceID, "control/consumer/properties", purge, 2); err != nil {
		return "empty_cache_error", err
	}
	for i, k := range keys {
		if !a.subscribed(deviceID, a.realm+"/"+deviceID+"/"+k) {
			return "resend_interface_properties_failed", fmt.Errorf("no subscription for %s", k)
		}
		if err := a.publish(deviceID, k, values[i], 2); err != nil {
			return "resend_interface_properties_failed", err
		}
	}
	return "", nil
}

// decodePurge reads a purge list: zlib with a 4-byte header, or the raw
// text after the plaintext capability.
func decodePurge(payload []byte, plaintext bool) ([]string, error) {
	if !plaintext {
		return runtime.DecodePurge(payload)
	}
	if !utf8.Valid(payload) {
		return nil, errors.New("plaintext purge list is not UTF-8")
	}
	if len(payload) == 0 {
		return nil, nil
	}
	return strings.Split(string(payload), ";"), nil
}

// purgeDeviceProperties keeps only the listed device-owned properties of
// the introspection's interfaces (spec §3.8).
func (a *Astarte) purgeDeviceProperties(st *deviceState, payload []byte) (string, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	entries, err := decodePurge(payload, st.plaintextPurge)
	if err != nil {
		return "purge_properties_error", err
	}
	for key := range st.deviceProps {
		name, _, _ := strings.Cut(key, "/")
		if st.introspection[name] != nil && !slices.Contains(entries, key) {
			delete(st.deviceProps, key)
		}
	}
	return "", nil
}

// receiveData validates and records a data message.
func (a *Astarte) receiveData(st *deviceState, name, path string, payload []byte, qos byte) (string, error) {
	st.mu.Lock()
	iface := st.introspection[name]
	st.mu.Unlock()
	if iface == nil {
		return "interface_loading_failed", fmt.Errorf("%s not in the introspection or not installed", name)
	}
	if iface.Ownership != runtime.OwnershipDevice {
		return "write_on_server_owned_interface", errors.New(name)
	}
	if strings.Contains(path, "//") {
		return "invalid_path", errors.New(path)
	}
	match, err := iface.Match(path)
	if err != nil && iface.Aggregation == runtime.Individual && prefixOfEndpoint(iface, path) {
		return "ambiguous_path", err
	}
	if err != nil {
		return "mapping_not_found", err
	}
	dec, err := runtime.DecodeDevicePayload(iface, match, payload)
	if err != nil {
		return decodeErrorName(iface, err), err
	}
	r := Received{Interface: name, Path: path, Timestamp: dec.Timestamp, Unset: dec.Unset, QoS: qos}
	if !iface.Mappings[match.Index].ExplicitTimestamp {
		r.Timestamp = time.Time{} // Astarte ignores t without explicit_timestamp
	}
	switch {
	case dec.Unset:
	case iface.Aggregation == runtime.Object:
		obj := map[string]any{}
		for _, f := range dec.Fields {
			obj[iface.Mappings[f.Mapping].LastLevel()] = f.Value.Any()
		}
		r.Value = obj
	default:
		r.Value = dec.Value.Any()
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if iface.Type == runtime.Properties {
		if dec.Unset {
			delete(st.deviceProps, name+path)
		} else {
			st.deviceProps[name+path] = r.Value
		}
	}
	st.received = append(st.received, r)
	st.receivedIn = append(st.receivedIn, st.sessions)
	st.payloads = append(st.payloads, slices.Clone(payload))
	st.notify()
	return "", nil
}

// prefixOfEndpoint reports whether path is a strict prefix of one of the
// interface's endpoints (Astarte's ambiguous_path).
func prefixOfEndpoint(iface *runtime.Interface, path string) bool {
	levels := strings.Split(strings.Trim(path, "/"), "/")
	for _, m := range iface.Mappings {
		ep := strings.Split(strings.Trim(m.Endpoint, "/"), "/")
		if len(levels) >= len(ep) {
			continue
		}
		if matchLevels(ep[:len(levels)], levels) {
			return true
		}
	}
	return false
}

// matchLevels matches path levels against endpoint levels (%{…} matches
// any level).
func matchLevels(endpoint, levels []string) bool {
	for i, l := range levels {
		if !strings.HasPrefix(endpoint[i], "%{") && endpoint[i] != l {
			return false
		}
	}
	return true
}

// setCapabilities stores a capabilities document (spec §3.9); a malformed
// one is refused and the old values kept.
func setCapabilities(st *deviceState, payload []byte) (string, error) {
	doc := bsoncore.Document(payload)
	if err := doc.Validate(); err != nil {
		return "malformed_capabilities_message", err
	}
	format := ""
	if v, err := doc.LookupErr("purge_properties_compression_format"); err == nil {
		s, ok := v.StringValueOK()
		if !ok || (s != "zlib" && s != "plaintext") {
			return "malformed_capabilities_message", fmt.Errorf("purge_properties_compression_format %s", v)
		}
		format = s
	}
	if format != "" {
		st.mu.Lock()
		st.plaintextPurge = format == "plaintext"
		st.mu.Unlock()
	}
	return "", nil
}

func decodeErrorName(iface *runtime.Interface, err error) string {
	switch {
	case errors.Is(err, runtime.ErrUnsetNotAllowed) && iface.Type == runtime.Datastream:
		return "unset_on_datastream"
	case errors.Is(err, runtime.ErrUnsetNotAllowed):
		return "unset_not_allowed"
	case strings.Contains(err.Error(), "not a BSON document"):
		return "undecodable_bson_payload"
	case strings.Contains(err.Error(), "unexpected object key"):
		return "unexpected_object_key"
	case strings.Contains(err.Error(), "exceeds"):
		return "value_size_exceeded"
	}
	return "unexpected_value_type"
}

// server-to-device controls

// serverMapping resolves a server-owned interface path of the given type.
func (a *Astarte) serverMapping(iface, path string, typ runtime.InterfaceType) (*runtime.Interface, runtime.Match, error) {
	i, ok := a.ifaces[iface]
	switch {
	case !ok:
		return nil, runtime.Match{}, fmt.Errorf("interface %s not installed", iface)
	case i.Ownership != runtime.OwnershipServer:
		return nil, runtime.Match{}, fmt.Errorf("%s is device-owned", iface)
	case i.Type != typ:
		return nil, runtime.Match{}, fmt.Errorf("%s is not a %s interface", iface, typ)
	}
	m, err := i.Match(path)
	return i, m, err
}

// serverMessage encodes value for a server-owned interface path, with t
// = ts when the mapping takes an explicit timestamp and ts is not zero.
func (a *Astarte) serverMessage(iface, path string, typ runtime.InterfaceType, value any, ts time.Time) (*runtime.Interface, runtime.Match, []byte, error) {
	i, m, err := a.serverMapping(iface, path, typ)
	if err != nil {
		return nil, m, nil, err
	}
	var p runtime.Payload
	p.Reset(i, m.Index)
	p.Any(value)
	if !i.Mappings[m.Index].ExplicitTimestamp {
		ts = time.Time{}
	}
	b, err := p.Finish(ts)
	return i, m, slices.Clone(b), err
}

// deviceError prefixes an error with the package and the device.
func deviceError(deviceID string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("astartetest: device %s: %w", deviceID, err)
}

// SendDatastream publishes a value on a server-owned datastream (an object
// as map[string]any), with the QoS of its mapping. A mapping with
// explicit_timestamp gets the current time; see SendDatastreamAt.
func (a *Astarte) SendDatastream(deviceID, iface, path string, value any) error {
	return a.SendDatastreamAt(deviceID, iface, path, value, time.Now())
}

// SendDatastreamAt is SendDatastream with the timestamp t of the message:
// sent when the mapping has explicit_timestamp and ts is not zero, left
// out otherwise (as Astarte does).
func (a *Astarte) SendDatastreamAt(deviceID, iface, path string, value any, ts time.Time) error {
	i, m, payload, err := a.serverMessage(iface, path, runtime.Datastream, value, ts)
	if err != nil {
		return deviceError(deviceID, err)
	}
	return deviceError(deviceID, a.publish(deviceID, iface+path, payload, i.QoS(&i.Mappings[m.Index])))
}

// SetProperty sets a server-owned property: Astarte stores it and publishes
// it (a device that is offline gets it at its next emptyCache).
func (a *Astarte) SetProperty(deviceID, iface, path string, value any) error {
	_, _, payload, err := a.serverMessage(iface, path, runtime.Properties, value, time.Time{})
	if err != nil {
		return deviceError(deviceID, err)
	}
	st := a.state(deviceID)
	st.mu.Lock()
	st.serverProps[iface+path] = payload
	st.mu.Unlock()
	return deviceError(deviceID, a.publish(deviceID, iface+path, payload, 2))
}

// UnsetProperty unsets a server-owned property (an empty payload, QoS 2).
// Like SetProperty it checks the interface and path, and the mapping must
// allow unset.
func (a *Astarte) UnsetProperty(deviceID, iface, path string) error {
	i, m, err := a.serverMapping(iface, path, runtime.Properties)
	if err != nil {
		return deviceError(deviceID, err)
	}
	if !i.Mappings[m.Index].AllowUnset {
		return deviceError(deviceID, fmt.Errorf("%w: %s%s", runtime.ErrUnsetNotAllowed, iface, path))
	}
	st := a.state(deviceID)
	st.mu.Lock()
	delete(st.serverProps, iface+path)
	st.mu.Unlock()
	return deviceError(deviceID, a.publish(deviceID, iface+path, nil, 2))
}

// SendPurge sends the device the list of server-owned properties Astarte
// holds (control/consumer/properties), keeping only those listed as keys
// "<interface><path>": the device deletes the others, as Astarte asks it
// to after an emptyCache.
func (a *Astarte) SendPurge(deviceID string, keys []string) error {
	st := a.state(deviceID)
	st.mu.Lock()
	for key := range st.serverProps {
		if !slices.Contains(keys, key) {
			delete(st.serverProps, key)
		}
	}
	purge := runtime.EncodePurge(keys)
	if st.plaintextPurge {
		purge = []byte(strings.Join(keys, ";"))
	}
	st.mu.Unlock()
	return deviceError(deviceID, a.publish(deviceID, "control/consumer/properties", purge, 2))
}

// SendRaw publishes arbitrary bytes on "<realm>/<device_id>/<suffix>", for
// tests of invalid server data.
func (a *Astarte) SendRaw(deviceID, suffix string, payload []byte, qos byte) error {
	return deviceError(deviceID, a.publish(deviceID, suffix, payload, qos))
}

// observation

// Received returns every data message accepted from the device, in order.
func (a *Astarte) Received(deviceID string) []Received {
	st := a.state(deviceID)
	st.mu.Lock()
	defer st.mu.Unlock()
	return slices.Clone(st.received)
}

// ReceivedSessions returns, for each message of Received, the MQTT session
// it arrived in: a number that grows each time the broker starts the
// device on a fresh session (first connection, session discarded, broker
// restarted). Two deliveries of one QoS 2 message within one session are
// the client's fault.
func (a *Astarte) ReceivedSessions(deviceID string) ([]Received, []int) {
	st := a.state(deviceID)
	st.mu.Lock()
	defer st.mu.Unlock()
	return slices.Clone(st.received), slices.Clone(st.receivedIn)
}

// ReceivedPayloads returns the payloads of Received(deviceID) as the device
// published them (BSON, or empty for an unset), in the same order.
func (a *Astarte) ReceivedPayloads(deviceID string) [][]byte {
	st := a.state(deviceID)
	st.mu.Lock()
	defer st.mu.Unlock()
	return slices.Clone(st.payloads)
}

// DeviceProperties returns the device-owned properties Astarte holds,
// keyed "<interface><path>".
func (a *Astarte) DeviceProperties(deviceID string) map[string]any {
	st := a.state(deviceID)
	st.mu.Lock()
	defer st.mu.Unlock()
	return maps.Clone(st.deviceProps)
}

// Introspection returns the last introspection the device published.
func (a *Astarte) Introspection(deviceID string) string {
	st := a.state(deviceID)
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.rawIntro
}

// Errors returns the error names (spec §5.2) of the device's invalid
// messages, in order.
func (a *Astarte) Errors(deviceID string) []string {
	st := a.state(deviceID)
	st.mu.Lock()
	defer st.mu.Unlock()
	return slices.Clone(st.errors)
}

// Connections returns how many times the device connected.
func (a *Astarte) Connections(deviceID string) int {
	st := a.state(deviceID)
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.connections
}

// Pubrels returns how many PUBREL packets the device sent (QoS 2 flows it
// completed, and releases it replayed after a restart).
func (a *Astarte) Pubrels(deviceID string) int {
	st := a.state(deviceID)
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.pubrels
}

// Events returns what the server saw from the device, in order:
// "subscribe <filter>", "introspection", "emptyCache", "producer/properties",
// "capabilities", "data <interface><path>", "error <name>".
func (a *Astarte) Events(deviceID string) []string {
	st := a.state(deviceID)
	st.mu.Lock()
	defer st.mu.Unlock()
	return slices.Clone(st.events)
}

// ReceivedCount returns how many data messages the device sent that
// Astarte accepted (cheaper than Received for large counts).
func (a *Astarte) ReceivedCount(deviceID string) int {
	st := a.state(deviceID)
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.received)
}
