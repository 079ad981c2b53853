package runtime

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/astarte-gen/astarte-gen/runtime/model"
	"github.com/astarte-gen/astarte-gen/runtime/store"
)

// Config configures a Device.
type Config struct {
	// Realm and DeviceID identify the device; the MQTT identity is
	// "<realm>/<device_id>".
	Realm    string
	DeviceID string
	// CredentialsSecret authenticates the device to the Pairing API. It is
	// never logged. Leave it empty for a device that registers itself (see
	// PairingToken).
	CredentialsSecret string
	// PairingToken lets a device without a CredentialsSecret register itself
	// on its first start: an agent JWT allowing POST::agent/devices. The
	// device then keeps the secret it obtained in StoreDir (0600, file
	// pairing.SecretFile) and never registers again while that file is
	// there; the token is not needed after the first start. Requires
	// StoreDir.
	PairingToken string
	// PairingRealmKey, instead of PairingToken, is the realm's private key
	// (PEM) to sign such a token. It grants every agent right: use it on a
	// provisioning station, not on devices in the field.
	PairingRealmKey []byte
	// OnRegister, when set, is called before the device registers itself,
	// to approve (nil) or refuse (an error, which Connect then returns,
	// wrapping pairing.ErrRegistrationRefused) or to observe provisioning.
	OnRegister func(ctx context.Context, deviceID string) error
	// PairingURL is the Pairing API base URL, e.g.
	// "https://api.astarte.example.com/pairing". http:// is refused unless
	// AllowInsecurePairing is set.
	PairingURL           string
	AllowInsecurePairing bool
	// StoreDir holds the private key, the certificate and the durable store
	// (properties, stored-retention queue). Empty: keep everything in memory
	// (credentials are then re-obtained at every start).
	StoreDir string
	// DamagedStore says what New does with a damaged store file: by
	// default it is moved aside and the device starts with an empty store,
	// reported at ERROR and through OnError (see DamagedStorePolicy).
	DamagedStore DamagedStorePolicy
	// KeepLoosePermissions keeps a store directory more open than 0700, or
	// a private key, kept credentials secret or store file more open than
	// 0600, reporting it in the log; by default New tightens them (and logs
	// that it did).
	KeepLoosePermissions bool
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
	// WriteTimeout bounds how long handing one packet to the connection may
	// take before the connection is considered stuck and replaced; 0 means
	// 5 s. It never delays a caller: sends are bounded by their context.
	WriteTimeout time.Duration
	// MaxRefusals is how many times in a row the server may drop the
	// connection right after the same stored message (the oldest it had not
	// acknowledged) before that message is moved to the dead letters and
	// reported through OnError; 0 means 3. See Device.DeadLetters.
	MaxRefusals int
	// VolatileCapacity bounds the volatile-retention queue (default 1000);
	// when full the oldest entry is dropped and counted.
	VolatileCapacity int
	// StoredCapacity bounds the stored-retention queue (default 1,000,000)
	// of the store StoreDir selects; when full, sends fail with ErrQueueFull.
	StoredCapacity int
	// StoredQueueFull says what a stored Send does when the queue is full
	// and none of it has expired (expired messages are always dropped
	// first): RefuseWhenFull (default) or DropOldestWhenFull.
	StoredQueueFull QueueFullPolicy
	// SyncInterval, when positive, lets a stored Send return once its
	// message is written to the store file, and flushes the file to the
	// disk at most that often instead of once per Send (for high-rate
	// producers: one goroutine reaches tens of thousands of messages per
	// second instead of hundreds). A crash of the process still loses
	// nothing; a power loss loses up to SyncInterval of stored messages and
	// property changes. Zero (the default): every stored Send is on the
	// disk when it returns. Only for the store StoreDir selects.
	SyncInterval time.Duration
	// Logger receives the runtime's logs; nil discards them.
	Logger *slog.Logger
	// OnStateChange, when set, receives the device's Status on every
	// connection state change and when the Pairing API reports the
	// credentials inhibited or no longer inhibited. It must not block.
	OnStateChange func(Status)
	// OnError, when set, receives errors that have no caller to return to,
	// each an *Error saying what failed (invalid data from the server, a
	// handler's error, a dead letter, a failed connection attempt). It must
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
	// status reports the certificate in use and whether the Pairing API
	// last said the credentials are inhibited.
	status() credentialStatus
}

// credentialStatus is what a credentialSource knows for Status.
type credentialStatus struct {
	expiry    time.Time // of the certificate in use; zero: none
	inhibited bool
}

// Status is a snapshot of a device's identity, connection and credentials.
type Status struct {
	DeviceID string
	State    State
	// Since is when the device entered State.
	Since time.Time
	// Paired says the device holds a client certificate; it expires at
	// CertificateExpiry.
	Paired            bool
	CertificateExpiry time.Time
	// Inhibited says the Pairing API's last answer was that an operator
	// inhibited the device's credentials: it keeps connecting with the
	// certificate it holds, but cannot obtain a new one.
	Inhibited bool
	// LastError is why the last connection ended or the last attempt to
	// connect failed (nil: none yet, or the device ended it itself).
	LastError error
}

// ifaceInfo is an interface with what the device precomputes about it.
type ifaceInfo struct {
	*model.Interface
	levels [][]model.Level // per mapping; for objects index 0 holds the prefix
	// topics holds the full topic of each mapping without parameters (for
	// objects, index 0: the prefix), so that sending on it allocates none;
	// nil for a server-owned interface, on which nothing is sent.
	topics []string
}

// Device is one Astarte device: its connection, interfaces, store and
// handlers. It is safe for concurrent use; see the package documentation
// for who owns what and how each method behaves in each state.
type Device struct {
	cfg  Config
	log  *slog.Logger
	base string // "<realm>/<device_id>", the topic root
	// reg is the interface set; AddInterfaces and RemoveInterfaces replace
	// it as a whole (introspection.go).
	reg     atomic.Pointer[registry]
	buffers sync.Pool // *msgBuf

	store     store.Store
	ownsStore bool
	// propMu serialises the read-modify-write of device properties in the
	// store (set, unset, and the acknowledgement that clears "unsent").
	propMu sync.Mutex
	creds  credentialSource

	// session is the MQTT session state shared by successive connections;
	// the owner loop is the only goroutine that publishes into it.
	session *session
	// wake tells the owner loop that senders queued something.
	wake chan struct{}
	// changes carries interface changes to the owner loop; changeMu lets
	// one at a time through.
	changes  chan *ifaceChange
	changeMu sync.Mutex
	// discards carries discard-retention messages to the connection's
	// writer (pointers: an idle device holds a small buffer).
	discards chan *outbound
	incoming *inbox
	counters queueCounters
	closing  chan struct{} // closed by Close
	// handlerCtx is the context handlers run with; Close cancels it.
	handlerCtx    context.Context
	cancelHandler context.CancelFunc
	// stopRun cancels the owner loop of the last Connect (nil: none yet);
	// guarded by mu.
	stopRun context.CancelFunc
	wg      sync.WaitGroup

	mu       sync.Mutex
	state    State
	started  bool // Connect succeeded or is running
	volatile ring
	dirty    map[store.PropertyKey]bool // device properties to publish; true: even if sent (nil until one is)
	handlers map[string]HandlerFunc     // nil until one is registered
	lastErr  error                      // cause of the last lost connection or failed attempt
	since    time.Time                  // when state was entered
	// progress is closed and replaced whenever queued data was settled or
	// the state changed, while Flush calls (flushers) wait on it.
	progress chan struct{}
	flushers atomic.Int32
	// busy counts messages taken from a queue and not yet handed to the
	// connection (Flush must not see them as gone).
	busy atomic.Int64
	// online mirrors state == Connected for the senders' fast path.
	online atomic.Bool
	// handing counts messages on their way to a connection's writer.
	handing atomic.Int64
	// floor is the persisted packet-identifier floor (sessionstate.go).
	floorMu sync.Mutex
	floor   uint16
	// floorRaise is closed when the raise in progress is durable (nil:
	// none); guarded by floorMu. floorWrite serialises the writes.
	floorRaise chan struct{}
	floorWrite sync.Mutex
}

// New validates cfg and the interfaces and returns a Device. It opens the
// store in cfg.StoreDir but does no network I/O.
func New(cfg Config, interfaces ...*model.Interface) (*Device, error) {
	if err := checkConfig(&cfg); err != nil {
		return nil, err
	}
	d := &Device{
		cfg:      cfg,
		log:      cfg.Logger,
		base:     cfg.Realm + "/" + cfg.DeviceID,
		session:  newSession(),
		wake:     make(chan struct{}, 1),
		changes:  make(chan *ifaceChange),
		discards: make(chan *outbound, 8),
		closing:  make(chan struct{}),
		volatile: ring{limit: cfg.VolatileCapacity},
		progress: make(chan struct{}),
		since:    time.Now(),
	}
	d.handlerCtx, d.cancelHandler = context.WithCancel(context.Background())
	d.incoming = newInbox(func() {
		d.wg.Add(1)
		go d.dispatchLoop()
	})
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	d.log = d.log.With("device", d.base)
	reg, err := newRegistry(d.base, interfaces)
	if err != nil {
		return nil, err
	}
	d.reg.Store(reg)
	d.buffers.New = func() any { return new(msgBuf) }
	if cfg.StoreDir != "" {
		if err := checkPermissions(cfg.StoreDir, cfg.KeepLoosePermissions, d.log); err != nil {
			return nil, err
		}
	}
	if err := d.openStore(); err != nil {
		return nil, err
	}
	if err := d.restoreSession(context.Background()); err != nil {
		d.closeStore()
		return nil, fmt.Errorf("restore MQTT session state: %w", err)
	}
	creds := cfg.credentials
	if creds == nil {
		var err error
		if creds, err = newPairingSource(&d.cfg, d.log, func() []*model.Interface { return d.ifaces().interfaces() }); err != nil {
			d.closeStore()
			return nil, err
		}
	}
	d.creds = creds
	return d, nil
}

func checkConfig(cfg *Config) error {
	if !realmPattern(cfg.Realm) {
		return fmt.Errorf("%w: realm %q must match [a-z][a-z0-9]{0,47}", ErrConfig, cfg.Realm)
	}
	if err := model.CheckParameter(cfg.DeviceID); err != nil || cfg.DeviceID == "" {
		return fmt.Errorf("%w: device ID %q", ErrConfig, cfg.DeviceID)
	}
	if cfg.CredentialsSecret == "" && (cfg.PairingToken != "" || len(cfg.PairingRealmKey) > 0) && cfg.StoreDir == "" {
		return fmt.Errorf("%w: a device that registers itself needs StoreDir to keep its credentials secret", ErrConfig)
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
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 5 * time.Second
	}
	if cfg.MaxRefusals <= 0 {
		cfg.MaxRefusals = 3
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

// buildInfo checks a descriptor enough that the runtime can rely on it
// (schema.Parse checks everything; hand-written descriptors may skip it)
// and precomputes what the device needs to send on its mappings. The device
// keeps its own copy: the caller's descriptor may change afterwards.
func buildInfo(base string, i *model.Interface) (*ifaceInfo, error) {
	if i == nil {
		return nil, fmt.Errorf("%w: nil interface", ErrConfig)
	}
	if len(i.Mappings) == 0 {
		return nil, fmt.Errorf("%w: interface %s has no mappings", ErrConfig, i.Name)
	}
	i = i.Clone()
	info := &ifaceInfo{Interface: i, levels: make([][]model.Level, len(i.Mappings))}
	for n := range i.Mappings {
		levels, err := model.ParseEndpoint(i.Mappings[n].Endpoint)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrConfig, i.Name, err)
		}
		if !i.Mappings[n].Type.Valid() {
			return nil, fmt.Errorf("%w: %s%s: invalid type", ErrConfig, i.Name, i.Mappings[n].Endpoint)
		}
		info.levels[n] = levels
	}
	if i.Aggregation == model.Object {
		info.levels[0] = info.levels[0][:len(info.levels[0])-1]
	}
	if i.Ownership != model.OwnershipDevice {
		return info, nil // nothing is sent on it: no topics to keep ready
	}
	info.topics = make([]string, len(i.Mappings))
	for n, levels := range info.levels {
		if topic, err := appendTopic(nil, base, i.Name, levels, nil); err == nil {
			info.topics[n] = string(topic)
		}
	}
	return info, nil
}

func (d *Device) openStore() error {
	switch {
	case d.cfg.Store != nil:
		d.store = d.cfg.Store
	case d.cfg.StoreDir != "":
		s, err := d.openBolt()
		if err != nil {
			return fmt.Errorf("open store: %w", err)
		}
		d.store, d.ownsStore = s, true
	default:
		d.store, d.ownsStore = store.NewMemory(store.WithCapacity(d.cfg.StoredCapacity)), true
	}
	if err := d.prune(context.Background(), d.ifaces()); err != nil {
		d.closeStore()
		return err
	}
	return nil
}

// prune drops the stored data (properties, queued messages) of interfaces
// reg does not have, or has with another major (spec §3.13, §3.14).
func (d *Device) prune(ctx context.Context, reg *registry) error {
	keep := make(map[string]int, len(reg.sorted))
	for _, i := range reg.sorted {
		keep[i.Name] = i.Major
	}
	props, msgs, err := d.store.Prune(ctx, keep)
	if err != nil {
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

// Interfaces returns copies of the device's interfaces, sorted by name.
func (d *Device) Interfaces() []*model.Interface {
	out := d.ifaces().interfaces()
	for n, i := range out {
		out[n] = i.Clone()
	}
	return out
}

// lookup finds the device's copy of iface: the same name, major and minor
// with as many mappings (generated code refers to mappings by index).
func (d *Device) lookup(iface *model.Interface) (*ifaceInfo, error) {
	if iface == nil {
		return nil, fmt.Errorf("%w: nil", ErrUnknownInterface)
	}
	info, ok := d.ifaces().lookup(iface.Name)
	switch {
	case !ok || info.Major != iface.Major:
		return nil, fmt.Errorf("%w: %s v%d", ErrUnknownInterface, iface.Name, iface.Major)
	case info.Minor != iface.Minor || len(info.Mappings) != len(iface.Mappings):
		return nil, fmt.Errorf("%w: %s: the device has v%d.%d, the caller was built for v%d.%d", ErrUnknownInterface, iface.Name, info.Major, info.Minor, iface.Major, iface.Minor)
	}
	return info, nil
}

// Handle registers h for a server-owned interface of the device, replacing
// any previous handler. Handlers run one at a time, in arrival order (see
// HandlerFunc). Registered after Connect, h first receives
// every server property of the interface already cached, as if it had just
// arrived, so that no handler misses state the server set before it was
// registered.
func (d *Device) Handle(iface *model.Interface, h HandlerFunc) error {
	if d.isClosed() {
		return ErrClosed
	}
	info, err := d.lookup(iface)
	if err != nil {
		return err
	}
	if info.Ownership != model.OwnershipServer {
		return fmt.Errorf("%w: %s is device-owned; only server-owned interfaces have handlers", ErrWrongOwnership, info.Name)
	}
	d.mu.Lock()
	if d.handlers == nil {
		d.handlers = map[string]HandlerFunc{}
	}
	d.handlers[info.Name] = h
	replay := d.started && info.Type == model.Properties
	d.mu.Unlock()
	if replay && !d.incoming.put(incoming{replay: info}, d.closing, nil) {
		return ErrClosed
	}
	return nil
}

// setState records a state change and reports it to the hook.
func (d *Device) setState(s State) {
	d.mu.Lock()
	changed := d.state != s && d.state != Closed
	if changed {
		d.state, d.since = s, time.Now()
		d.online.Store(s == Connected)
		d.progressed()
	}
	d.mu.Unlock()
	if changed {
		d.log.Info("connection state", "state", s.String())
		d.notifyStatus()
	}
}

// notifyStatus delivers the status to the state hook.
func (d *Device) notifyStatus() {
	if d.cfg.OnStateChange != nil {
		d.cfg.OnStateChange(d.Status())
	}
}

// DeviceID returns the device's ID.
func (d *Device) DeviceID() string { return d.cfg.DeviceID }

// Status returns the device's current status; it may be called at any
// time, also after Close.
func (d *Device) Status() Status {
	cs := d.creds.status()
	d.mu.Lock()
	defer d.mu.Unlock()
	return Status{
		DeviceID: d.cfg.DeviceID, State: d.state, Since: d.since,
		Paired: !cs.expiry.IsZero(), CertificateExpiry: cs.expiry, Inhibited: cs.inhibited,
		LastError: d.lastErr,
	}
}

// progressed wakes Flush waiters; d.mu must be held.
func (d *Device) progressed() {
	if d.flushers.Load() == 0 {
		return
	}
	close(d.progress)
	d.progress = make(chan struct{})
}

// State returns the current connection state.
func (d *Device) State() State {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.state
}

// report sends an error that has no caller to the log and OnError.
func (d *Device) report(err *Error) {
	d.log.Log(context.Background(), reportLevel(err), err.Op, "interface", err.Interface, "path", err.Path, "err", err.Err)
	if d.cfg.OnError != nil {
		d.cfg.OnError(err)
	}
}

func (d *Device) isClosed() bool {
	select {
	case <-d.closing:
		return true
	default:
		return false
	}
}

// Close disconnects, stops every goroutine of the device, cancels the
// handlers' context and releases the store. Data queued with stored
// retention and device properties stay in the store; volatile data is lost.
// The store is released even when ctx ends first; Close then returns an
// error naming what was still running (typically a handler that ignores its
// context), which exits on its own. A second Close returns ErrClosed.
func (d *Device) Close(ctx context.Context) error {
	d.mu.Lock()
	if d.state == Closed {
		d.mu.Unlock()
		return ErrClosed
	}
	d.state, d.since = Closed, time.Now()
	d.online.Store(false)
	d.progressed()
	stopRun := d.stopRun
	d.mu.Unlock()
	close(d.closing)
	d.cancelHandler()
	d.incoming.stop()
	if stopRun != nil {
		stopRun()
	}
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
		if serr := d.saveSession(ctx); serr != nil {
			d.log.Warn("saving the MQTT session state", "err", serr)
		}
	case <-ctx.Done():
		err = fmt.Errorf("astarte: close: %w: a handler or the connection was still running; the store was released anyway", ctx.Err())
	}
	d.closeStore()
	d.notifyStatus()
	return err
}
