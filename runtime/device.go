package runtime

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/astarte-gen/astarte-gen/runtime/store"
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
	// Store overrides the store that StoreDir would select (tests, custom
	// backends). The Device does not close a Store it was given.
	Store store.Store
	// RootCAs verify the Pairing API and the broker; nil means the system
	// roots. InsecureSkipVerify disables verification, for test instances
	// only.
	RootCAs            *x509.CertPool
	InsecureSkipVerify bool
	// RenewFraction is the fraction of a certificate's validity after which
	// the device obtains a new one and reconnects with it; 0 means 0.8.
	RenewFraction float64
	// KeepAlive is the MQTT keep-alive; 0 means 30 s.
	KeepAlive time.Duration
	// ReconnectMin and ReconnectMax bound the jittered exponential backoff
	// between connection attempts; 0 means 1 s and 2 min.
	ReconnectMin, ReconnectMax time.Duration
	// MaxInFlight bounds the QoS 1 and 2 messages awaiting acknowledgement;
	// 0 means 512. paho does not bound them itself.
	MaxInFlight int
	// VolatileCapacity bounds the volatile-retention queue (default 1000);
	// when full the oldest entry is dropped and counted.
	VolatileCapacity int
	// StoredCapacity bounds the stored-retention queue (default 1,000,000)
	// of the store StoreDir selects; when full, sends fail with ErrQueueFull.
	StoredCapacity int
	// Logger receives the runtime's logs; nil discards them.
	Logger *slog.Logger
	// OnStateChange, when set, is called on every connection state change.
	// It must not block.
	OnStateChange func(State)
	// OnError, when set, receives errors that have no caller to return to:
	// invalid data from the server, handler errors, failed resends. It must
	// not block.
	OnError func(error)

	// credentials replaces pairing (tests of the runtime alone).
	credentials credentialSource
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

// String names the state.
func (s State) String() string {
	switch s {
	case Disconnected:
		return "disconnected"
	case Connecting:
		return "connecting"
	case Connected:
		return "connected"
	case Closed:
		return "closed"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// ErrConfig wraps every configuration error of New.
var ErrConfig = errors.New("invalid device configuration")

// credentialSource gives the device a client certificate and the broker URL.
type credentialSource interface {
	// credentials returns a certificate and broker URL to connect with.
	credentials(ctx context.Context) (tls.Certificate, string, error)
	// rejected is called when the broker refused the certificate: the
	// source checks it with the Pairing API and replaces it if it must.
	rejected(ctx context.Context, cause error) error
	// renewAt says when the current certificate should be replaced (zero:
	// never); renew replaces it.
	renewAt() time.Time
	renew(ctx context.Context) error
}

// ifaceInfo is an interface with what the device precomputes about it.
type ifaceInfo struct {
	*Interface
	levels [][]Level // per mapping; for objects index 0 holds the prefix
	// topics holds the full topic of each mapping without parameters (for
	// objects, index 0: the prefix), so that sending on it allocates none.
	topics []string
}

// Device is one Astarte device: its connection, interfaces, store and
// handlers. It is safe for concurrent use.
type Device struct {
	cfg           Config
	log           *slog.Logger
	base          string // "<realm>/<device_id>", the topic root
	byPtr         map[*Interface]*ifaceInfo
	byName        map[string]*ifaceInfo
	sorted        []*ifaceInfo
	introspection string
	messages      sync.Pool // *Message

	store     store.Store
	ownsStore bool
	// propMu serialises the read-modify-write of device properties in the
	// store (set, unset, and the acknowledgement that clears "unsent").
	propMu   sync.Mutex
	creds    credentialSource
	window   chan struct{} // a slot per unacknowledged publish
	tracked  chan inflight
	incoming chan incoming
	closing  chan struct{}
	wg       sync.WaitGroup

	mu       sync.Mutex
	state    State
	conn     *conn
	synced   bool // the current connection finished its sync
	backlog  backlog
	volatile ring
	handlers map[string]HandlerFunc
	started  bool
	loops    sync.Once
}

// New validates cfg and the interfaces and returns a Device. It opens the
// store in cfg.StoreDir but does no network I/O.
func New(cfg Config, interfaces ...*Interface) (*Device, error) {
	if err := checkConfig(&cfg); err != nil {
		return nil, err
	}
	d := &Device{
		cfg:      cfg,
		log:      cfg.Logger,
		base:     cfg.Realm + "/" + cfg.DeviceID,
		byPtr:    map[*Interface]*ifaceInfo{},
		byName:   map[string]*ifaceInfo{},
		closing:  make(chan struct{}),
		window:   make(chan struct{}, cfg.MaxInFlight),
		tracked:  make(chan inflight, cfg.MaxInFlight),
		incoming: make(chan incoming, 256),
		handlers: map[string]HandlerFunc{},
		volatile: ring{limit: cfg.VolatileCapacity},
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	d.log = d.log.With("device", d.base)
	for _, i := range interfaces {
		if err := d.addInterface(i); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(d.sorted, func(a, b *ifaceInfo) int { return compareStrings(a.Name, b.Name) })
	all := make([]*Interface, len(d.sorted))
	for n, i := range d.sorted {
		all[n] = i.Interface
	}
	d.introspection = Introspection(all)
	d.messages.New = func() any { return &Message{d: d} }
	if err := d.openStore(); err != nil {
		return nil, err
	}
	creds := cfg.credentials
	if creds == nil {
		var err error
		if creds, err = newPairingSource(cfg, d.log); err != nil {
			d.closeStore()
			return nil, err
		}
	}
	d.creds = creds
	return d, nil
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func checkConfig(cfg *Config) error {
	if !realmPattern(cfg.Realm) {
		return fmt.Errorf("%w: realm %q must match [a-z][a-z0-9]{0,47}", ErrConfig, cfg.Realm)
	}
	if err := CheckParameter(cfg.DeviceID); err != nil || cfg.DeviceID == "" {
		return fmt.Errorf("%w: device ID %q", ErrConfig, cfg.DeviceID)
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = 30 * time.Second
	}
	if cfg.ReconnectMin == 0 {
		cfg.ReconnectMin = time.Second
	}
	if cfg.ReconnectMax == 0 {
		cfg.ReconnectMax = 2 * time.Minute
	}
	if cfg.ReconnectMax < cfg.ReconnectMin {
		cfg.ReconnectMax = cfg.ReconnectMin
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 512
	}
	if cfg.VolatileCapacity <= 0 {
		cfg.VolatileCapacity = 1000
	}
	if cfg.StoredCapacity <= 0 {
		cfg.StoredCapacity = 1_000_000
	}
	return nil
}

func realmPattern(s string) bool {
	if len(s) == 0 || len(s) > 48 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if (s[i] < 'a' || s[i] > 'z') && (s[i] < '0' || s[i] > '9') {
			return false
		}
	}
	return true
}

// addInterface checks a descriptor enough that the runtime can rely on it
// (schema.Parse checks everything; hand-written descriptors may skip it).
func (d *Device) addInterface(i *Interface) error {
	if i == nil {
		return fmt.Errorf("%w: nil interface", ErrConfig)
	}
	if _, dup := d.byName[i.Name]; dup {
		return fmt.Errorf("%w: interface %s given twice", ErrConfig, i.Name)
	}
	if len(i.Mappings) == 0 {
		return fmt.Errorf("%w: interface %s has no mappings", ErrConfig, i.Name)
	}
	info := &ifaceInfo{Interface: i, levels: make([][]Level, len(i.Mappings))}
	for n := range i.Mappings {
		levels, err := ParseEndpoint(i.Mappings[n].Endpoint)
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrConfig, i.Name, err)
		}
		if !i.Mappings[n].Type.Valid() {
			return fmt.Errorf("%w: %s%s: invalid type", ErrConfig, i.Name, i.Mappings[n].Endpoint)
		}
		info.levels[n] = levels
	}
	if i.Aggregation == Object {
		info.levels[0] = info.levels[0][:len(info.levels[0])-1]
	}
	info.topics = make([]string, len(i.Mappings))
	for n, levels := range info.levels {
		if topic, err := appendTopic(nil, d.base, i.Name, levels, nil); err == nil {
			info.topics[n] = string(topic)
		}
	}
	d.byPtr[i] = info
	d.byName[i.Name] = info
	d.sorted = append(d.sorted, info)
	return nil
}

func (d *Device) openStore() error {
	switch {
	case d.cfg.Store != nil:
		d.store = d.cfg.Store
	case d.cfg.StoreDir != "":
		s, err := store.OpenBolt(d.cfg.StoreDir, store.WithCapacity(d.cfg.StoredCapacity))
		if err != nil {
			return fmt.Errorf("open store: %w", err)
		}
		d.store, d.ownsStore = s, true
	default:
		d.store, d.ownsStore = store.NewMemory(store.WithCapacity(d.cfg.StoredCapacity)), true
	}
	keep := make(map[string]int, len(d.sorted))
	for _, i := range d.sorted {
		keep[i.Name] = i.Major
	}
	props, msgs, err := d.store.Prune(context.Background(), keep)
	if err != nil {
		d.closeStore()
		return fmt.Errorf("prune store: %w", err)
	}
	if props+msgs > 0 {
		d.log.Info("dropped stored data of removed interfaces or other majors", "properties", props, "messages", msgs)
	}
	return nil
}

func (d *Device) closeStore() {
	if d.ownsStore {
		if err := d.store.Close(); err != nil {
			d.log.Warn("closing store", "err", err)
		}
	}
}

// Interfaces returns the device's interfaces sorted by name.
func (d *Device) Interfaces() []*Interface {
	out := make([]*Interface, len(d.sorted))
	for n, i := range d.sorted {
		out[n] = i.Interface
	}
	return out
}

// lookup finds the device's record of iface (by pointer, then by name for
// an equal descriptor declared elsewhere).
func (d *Device) lookup(iface *Interface) (*ifaceInfo, error) {
	if info, ok := d.byPtr[iface]; ok {
		return info, nil
	}
	if iface != nil {
		if info, ok := d.byName[iface.Name]; ok && info.Major == iface.Major {
			return info, nil
		}
		return nil, fmt.Errorf("%w: %s", ErrUnknownInterface, iface.Name)
	}
	return nil, fmt.Errorf("%w: nil", ErrUnknownInterface)
}

// Handle registers h for a server-owned interface of the device, replacing
// any previous handler. Messages arriving before a handler is registered are
// still validated and cached (properties) but not delivered.
func (d *Device) Handle(iface *Interface, h HandlerFunc) error {
	info, err := d.lookup(iface)
	if err != nil {
		return err
	}
	if info.Ownership != OwnershipServer {
		return fmt.Errorf("%w: %s is device-owned; only server-owned interfaces have handlers", ErrWrongOwnership, info.Name)
	}
	d.mu.Lock()
	d.handlers[info.Name] = h
	d.mu.Unlock()
	return nil
}

func (d *Device) setState(s State) {
	d.mu.Lock()
	changed := d.state != s && d.state != Closed
	if changed {
		d.state = s
	}
	d.mu.Unlock()
	if changed {
		d.log.Info("connection state", "state", s.String())
		if d.cfg.OnStateChange != nil {
			d.cfg.OnStateChange(s)
		}
	}
}

// State returns the current connection state.
func (d *Device) State() State {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.state
}

// report sends an error that has no caller to the log and OnError.
func (d *Device) report(msg string, err error, attrs ...any) {
	d.log.Warn(msg, append(attrs, "err", err)...)
	if d.cfg.OnError != nil {
		d.cfg.OnError(fmt.Errorf("%s: %w", msg, err))
	}
}

// Close disconnects and releases the store. Data queued with stored
// retention stays on disk; volatile data is lost.
func (d *Device) Close(ctx context.Context) error {
	d.mu.Lock()
	if d.state == Closed {
		d.mu.Unlock()
		return nil
	}
	d.state = Closed
	c := d.conn
	d.conn = nil
	d.mu.Unlock()
	close(d.closing)
	if c != nil {
		c.close()
	}
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	d.closeStore()
	if d.cfg.OnStateChange != nil {
		d.cfg.OnStateChange(Closed)
	}
	return nil
}
