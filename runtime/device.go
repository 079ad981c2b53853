package runtime

// SKELETON: signatures are the contract for generated code; bodies come with
// the runtime core.

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"time"
)

// Config configures a Device.
type Config struct {
	// Realm and DeviceID identify the device; the MQTT identity is
	// "<realm>/<device_id>".
	Realm    string
	DeviceID string
	// CredentialsSecret authenticates the device to the Pairing API. It is
	// never logged.
	CredentialsSecret string
	// PairingURL is the Pairing API base URL, e.g.
	// "https://api.astarte.example.com/pairing". http:// is refused unless
	// AllowInsecurePairing is set.
	PairingURL           string
	AllowInsecurePairing bool
	// StoreDir holds the private key, the certificate and the durable store
	// (properties, stored-retention queue). Empty: keep everything in memory
	// (credentials are then re-obtained at every start).
	StoreDir string
	// RootCAs verify the Pairing API and the broker; nil means the system
	// roots. InsecureSkipVerify disables verification, for test instances
	// only.
	RootCAs            *x509.CertPool
	InsecureSkipVerify bool
	// KeepAlive is the MQTT keep-alive; 0 means 30 s.
	KeepAlive time.Duration
	// VolatileCapacity bounds the volatile-retention queue (default 1000);
	// when full the oldest entry is dropped and counted.
	VolatileCapacity int
	// StoredCapacity bounds the stored-retention queue (default 1,000,000);
	// when full, sends fail with ErrQueueFull.
	StoredCapacity int
	// Logger receives the runtime's logs; nil discards them.
	Logger *slog.Logger
	// OnStateChange, when set, is called on every connection state change.
	OnStateChange func(State)
	// OnError, when set, receives errors that have no caller to return to:
	// invalid data from the server, handler errors, failed resends.
	OnError func(error)
}

// State is the connection state of a Device.
type State int

// Connection states.
const (
	Disconnected State = iota
	Connecting
	Connected
	Closed
)

// Device is one Astarte device: its connection, interfaces, store and
// handlers. It is safe for concurrent use.
type Device struct {
	cfg    Config
	ifaces map[string]*Interface
}

var errNotImplemented = errors.New("not implemented yet")

// New validates cfg and the interfaces and returns a Device; it does no I/O.
func New(cfg Config, interfaces ...*Interface) (*Device, error) {
	d := &Device{cfg: cfg, ifaces: map[string]*Interface{}}
	for _, i := range interfaces {
		d.ifaces[i.Name] = i
	}
	return d, nil
}

// Connect pairs if needed, connects, and returns once the device is
// connected and synchronised (spec §3.11), or with the error. After a
// successful Connect the device reconnects by itself until Close.
func (d *Device) Connect(ctx context.Context) error { return errNotImplemented }

// Close disconnects and releases the store. Queued stored data stays on disk.
func (d *Device) Close(ctx context.Context) error { return nil }

// Flush waits until every queued message has been acknowledged by the broker.
func (d *Device) Flush(ctx context.Context) error { return errNotImplemented }

// Message starts a message on mapping index mapping of a device-owned
// interface, with the path parameters in endpoint order. For an object
// aggregation, pass any mapping index (generated code passes 0) and select
// fields with Field. The Message is returned to a pool by Send.
func (d *Device) Message(iface *Interface, mapping int, params ...string) *Message {
	m := &Message{d: d}
	m.Reset(iface, mapping)
	return m
}

// Message is a data message being built; see Device.Message.
type Message struct {
	Payload
	d *Device
}

// Send publishes the message (datastream value or property set) with the
// QoS, retention and expiry of its mapping. ts is the explicit timestamp; pass
// the zero time for mappings without explicit_timestamp. It returns once the
// message has the durability its retention requires.
func (m *Message) Send(ctx context.Context, ts time.Time) error { return errNotImplemented }

// Unset unsets a device-owned property whose mapping has allow_unset.
func (d *Device) Unset(ctx context.Context, iface *Interface, mapping int, params ...string) error {
	return errNotImplemented
}

// Property returns the stored value of a property (device-owned: the last
// set value; server-owned: the last value received), and whether it is set.
func (d *Device) Property(iface *Interface, mapping int, params ...string) (Value, bool, error) {
	return Value{}, false, errNotImplemented
}

// Incoming is one message received from the server, validated against its
// interface.
type Incoming struct {
	Interface *Interface
	// Path is the concrete path; Mapping and Params come from matching it.
	Path    string
	Mapping int
	Params  []string
	Decoded
}

// Field returns the object field of mapping index mapping, if present.
func (in *Incoming) Field(mapping int) (Value, bool) {
	for _, f := range in.Fields {
		if f.Mapping == mapping {
			return f.Value, true
		}
	}
	return Value{}, false
}

// HandlerFunc handles messages of one server-owned interface. An error is
// reported through Config.OnError and the log; it never disconnects.
type HandlerFunc func(ctx context.Context, in *Incoming) error

// Handle registers h for a server-owned interface of the device, replacing
// any previous handler.
func (d *Device) Handle(iface *Interface, h HandlerFunc) error { return errNotImplemented }

// SendOption modifies a dynamic Send.
type SendOption func(*sendOptions)

type sendOptions struct{ timestamp time.Time }

// WithTimestamp sets the explicit timestamp of a dynamic Send.
func WithTimestamp(t time.Time) SendOption { return func(o *sendOptions) { o.timestamp = t } }

// Send is the dynamic API, for programs that load interfaces at run time: it
// resolves interfaceName and path, checks value (see Payload.Any), and sends
// a datastream value or sets a property.
func (d *Device) Send(ctx context.Context, interfaceName, path string, value any, opts ...SendOption) error {
	return errNotImplemented
}

// UnsetPath is the dynamic counterpart of Unset.
func (d *Device) UnsetPath(ctx context.Context, interfaceName, path string) error {
	return errNotImplemented
}
