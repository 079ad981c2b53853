// Package chaos runs a seeded chaos scenario against a runtime.Device and
// checks the invariants the runtime promises: goroutines send on every
// retention and reliability and set and unset properties while a Target
// (the fake Astarte, or mosquitto behind a proxy) drops connections,
// restarts its broker, refuses a message and blocks a handler, and the
// device is closed at a random moment. A run is reproducible from its seed
// as far as the random choices go (timing is the machine's).
//
// Environment: ASTARTE_CHAOS_SEEDS=n runs n seeds, ASTARTE_CHAOS_SEED=s
// reruns one, ASTARTE_CHAOS_DURATION=10s lengthens the chaos phase.
//
// It is test support shared by the runtime tests and the mosquitto suite;
// it is not part of the API.
package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/astarte-gen/astarte-gen/runtime"
	"github.com/astarte-gen/astarte-gen/runtime/model"
)

// Data has one mapping per retention × reliability, plus /poison, which
// targets that refuse data leave out of what they install.
var Data = &model.Interface{
	Name: "org.astartegen.chaos.Data", Major: 1, Minor: 1,
	Type: model.Datastream, Ownership: model.OwnershipDevice,
	Mappings: append(dataMappings(), model.Mapping{
		Endpoint: "/poison", Type: model.LongInteger, Reliability: model.Guaranteed, Retention: model.Stored,
	}),
}

// Installed is Data as the server knows it: an older minor without /poison.
var Installed = &model.Interface{
	Name: Data.Name, Major: 1, Minor: 0, Type: model.Datastream, Ownership: model.OwnershipDevice,
	Mappings: dataMappings(),
}

// Props are device properties set and unset during the run.
var Props = &model.Interface{
	Name: "org.astartegen.chaos.Props", Major: 1, Type: model.Properties, Ownership: model.OwnershipDevice,
	Mappings: []model.Mapping{{Endpoint: "/%{slot}/value", Type: model.Integer, AllowUnset: true}},
}

// Commands reach a handler that blocks.
var Commands = &model.Interface{
	Name: "org.astartegen.chaos.Commands", Major: 1, Type: model.Datastream, Ownership: model.OwnershipServer,
	Mappings: []model.Mapping{{Endpoint: "/block", Type: model.Integer, Reliability: model.Unique}},
}

var (
	retentions    = []model.Retention{model.Discard, model.Volatile, model.Stored}
	reliabilities = []model.Reliability{model.Unreliable, model.Guaranteed, model.Unique}
)

func dataMappings() []model.Mapping {
	var ms []model.Mapping
	for _, ret := range retentions {
		for _, rel := range reliabilities {
			ms = append(ms, model.Mapping{Endpoint: path(ret, rel), Type: model.LongInteger, Reliability: rel, Retention: ret})
		}
	}
	return ms
}

func path(ret model.Retention, rel model.Reliability) string {
	return fmt.Sprintf("/%s/qos%d", ret, int(rel))
}

// Delivery is one data message the server accepted from the device.
type Delivery struct {
	Interface string
	Path      string
	Value     any // nil for an unset
	// Session numbers the broker-side MQTT session it arrived in; two
	// deliveries of a QoS 2 message in one session are duplicates the
	// client caused.
	Session int
}

// Fault is one thing a Target can do to the device's connection.
type Fault struct {
	Name   string
	Weight int
	Do     func(rng *rand.Rand)
}

// Target is the server side of a run.
type Target interface {
	// Faults lists what the target can do; Run picks among them by weight.
	Faults() []Fault
	// Heal brings the broker back if a fault stopped it.
	Heal()
	// Deliveries returns every data message the server accepted, in order.
	Deliveries() []Delivery
	// Properties returns the device-owned properties the server holds,
	// keyed "<interface><path>".
	Properties() map[string]any
	// Command sends the handler-blocking command to the device.
	Command(v int32) error
	// RefusesPoison says whether the server refuses /poison (and drops the
	// connection with the session, as Astarte does).
	RefusesPoison() bool
}

// Seeds returns the seeds to run: ASTARTE_CHAOS_SEED alone (to rerun a
// failure), or ASTARTE_CHAOS_SEEDS seeds (default def) from a fixed base.
func Seeds(t *testing.T, def int) []uint64 {
	if s := os.Getenv("ASTARTE_CHAOS_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("ASTARTE_CHAOS_SEED: %v", err)
		}
		return []uint64{seed}
	}
	n := def
	if s := os.Getenv("ASTARTE_CHAOS_SEEDS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			t.Fatalf("ASTARTE_CHAOS_SEEDS: %v", err)
		}
	}
	seeds := make([]uint64, n)
	for i := range seeds {
		seeds[i] = uint64(1000 + i)
	}
	return seeds
}

// Duration returns the length of the chaos phase: ASTARTE_CHAOS_DURATION,
// or 3 s.
func Duration(t *testing.T) time.Duration {
	s := os.Getenv("ASTARTE_CHAOS_DURATION")
	if s == "" {
		return 3 * time.Second
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("ASTARTE_CHAOS_DURATION: %v", err)
	}
	return d
}

// Pauser is a Target with MQTT clients of its own (an observer), whose
// goroutines would look like the device's: Run pauses it while it checks
// that Close left no goroutine behind.
type Pauser interface {
	Pause()
	Resume()
}

// Options sizes a run.
type Options struct {
	Seed     uint64
	Duration time.Duration // of the chaos phase; 0 means 3 s
}

// send is the outcome of one call.
type send struct {
	path string
	seq  int64
	err  error
	// beforeFlush: the call returned before the mid-run Flush started.
	beforeFlush bool
}

// run is the state of one Run.
type run struct {
	t      *testing.T
	rng    *rand.Rand
	mu     sync.Mutex
	sends  []send
	slow   []string // calls that outlived their context by more than 1 s
	errs   []error  // what OnError received
	flushT time.Time
	quiet  atomic.Bool // data senders pause while set
}

// onError collects what the device reports.
func (r *run) onError(err error) {
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
}

// Run runs one seeded scenario and checks the invariants. cfg connects to
// the target and names the store directory, which the device reopens at
// the end; Run sets the volatile capacity (so that no volatile message is
// dropped by the capacity rule), the in-flight window and OnError.
func Run(t *testing.T, target Target, opts Options, cfg runtime.Config) {
	if opts.Duration == 0 {
		opts.Duration = 3 * time.Second
	}
	cfg.VolatileCapacity = 1 << 20
	cfg.MaxInFlight = 64
	newDevice := func(onError func(error)) (*runtime.Device, error) {
		c := cfg
		c.OnError = onError
		return runtime.New(c, Data, Props, Commands)
	}
	r := &run{t: t, rng: rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15))}
	t.Logf("chaos seed %d (rerun with ASTARTE_CHAOS_SEED=%d)", opts.Seed, opts.Seed)
	before := leakCandidates()

	d, err := newDevice(r.onError)
	if err != nil {
		t.Fatal(err)
	}
	blocked := make(chan struct{}, 1)
	if err := d.Handle(Commands, func(ctx context.Context, in *runtime.Incoming) error {
		ms, _ := in.Value.Integer()
		select { // a slow handler; Close cancels ctx
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-ctx.Done():
		}
		select {
		case blocked <- struct{}{}:
		default:
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Connect(ctx); err != nil {
		t.Fatal(err)
	}

	stopSenders := make(chan struct{})
	var senders sync.WaitGroup
	for _, ret := range retentions {
		for _, rel := range reliabilities {
			senders.Add(1)
			go r.sendLoop(&senders, d, path(ret, rel), rand.New(rand.NewPCG(r.rng.Uint64(), 1)), stopSenders)
		}
	}
	props := &propState{want: map[string]any{}}
	senders.Add(1)
	go r.propLoop(&senders, d, props, rand.New(rand.NewPCG(r.rng.Uint64(), 2)), stopSenders)

	// Chaos phase.
	poisoned := r.chaos(d, target, opts.Duration)

	// Quiet phase: everything queued must get through once connected.
	target.Heal()
	r.mu.Lock()
	r.flushT = time.Now()
	r.mu.Unlock()
	// Flush waits for everything queued; with senders adding more all the
	// time it could chase them for ever on a slow machine, so they pause.
	r.quiet.Store(true)
	props.pause()
	flushCtx, cancelFlush := context.WithTimeout(context.Background(), 20*time.Second)
	if err := d.Flush(flushCtx); err != nil {
		t.Errorf("Flush after the chaos: %v (state %v)", err, d.State())
	}
	cancelFlush()
	r.checkProperties(d, target, props)
	props.resume()
	r.quiet.Store(false)

	// Close at a random moment while the senders go on.
	time.Sleep(time.Duration(r.rng.IntN(300)) * time.Millisecond)
	closeCtx, cancelClose := context.WithTimeout(context.Background(), 10*time.Second)
	start := time.Now()
	if err := d.Close(closeCtx); err != nil {
		t.Errorf("Close: %v", err)
	}
	cancelClose()
	if took := time.Since(start); took > 11*time.Second {
		t.Errorf("Close took %v", took)
	}
	close(stopSenders)
	waitGroup(t, &senders, 10*time.Second, "senders after Close")
	if p, ok := target.(Pauser); ok {
		p.Pause()
		r.checkNoLeak(before)
		p.Resume()
	} else {
		r.checkNoLeak(before)
	}

	// The store must reopen, and deliver what stored retention kept.
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d2, err := newDevice(r.onError)
	if err != nil {
		t.Fatalf("reopening the device on its store: %v", err)
	}
	if err := d2.Connect(ctx); err != nil {
		t.Fatalf("reconnecting the reopened device: %v", err)
	}
	if err := d2.Flush(ctx); err != nil {
		t.Errorf("Flush of the reopened device: %v", err)
	}
	dead, err := d2.DeadLetters(ctx)
	if err != nil {
		t.Error(err)
	}
	if err := d2.Close(ctx); err != nil {
		t.Error(err)
	}
	r.check(target, poisoned, dead)
}

// sendLoop sends numbered values on one path until the device is closed.
func (r *run) sendLoop(wg *sync.WaitGroup, d *runtime.Device, p string, rng *rand.Rand, stop <-chan struct{}) {
	defer wg.Done()
	for seq := int64(1); ; seq++ {
		for r.quiet.Load() {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
		timeout := time.Duration(50+rng.IntN(950)) * time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		start := time.Now()
		err := d.Send(ctx, Data.Name, p, seq)
		cancel()
		r.record(p, seq, err, start, timeout)
		if errors.Is(err, runtime.ErrClosed) {
			return
		}
		select {
		case <-stop:
			return
		case <-time.After(time.Duration(rng.IntN(2000)) * time.Microsecond):
		}
	}
}

func (r *run) record(p string, seq int64, err error, start time.Time, timeout time.Duration) {
	took := time.Since(start)
	r.mu.Lock()
	defer r.mu.Unlock()
	if took > timeout+time.Second {
		r.slow = append(r.slow, fmt.Sprintf("%s #%d took %v with a %v context (%v)", p, seq, took, timeout, err))
	}
	r.sends = append(r.sends, send{path: p, seq: seq, err: err, beforeFlush: r.flushT.IsZero()})
}

// propState is what the device was last asked to hold, per property.
type propState struct {
	mu     sync.Mutex
	want   map[string]any
	paused bool
}

func (p *propState) pause()  { p.mu.Lock(); p.paused = true; p.mu.Unlock() }
func (p *propState) resume() { p.mu.Lock(); p.paused = false; p.mu.Unlock() }

// propLoop sets and unsets properties until the device is closed. The
// lock is held across each call, so that pause waits for the one running.
func (r *run) propLoop(wg *sync.WaitGroup, d *runtime.Device, props *propState, rng *rand.Rand, stop <-chan struct{}) {
	defer wg.Done()
	for seq := int64(1); ; seq++ {
		props.mu.Lock()
		if !props.paused {
			slot := fmt.Sprintf("/s%d/value", rng.IntN(6))
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			start := time.Now()
			var err error
			var v any
			if rng.IntN(4) == 0 {
				err = d.UnsetPath(ctx, Props.Name, slot)
			} else {
				v = int32(rng.IntN(1000))
				err = d.Send(ctx, Props.Name, slot, v)
			}
			cancel()
			r.record(slot, seq, err, start, time.Second)
			if err == nil {
				props.want[Props.Name+slot] = v
			}
			if errors.Is(err, runtime.ErrClosed) {
				props.mu.Unlock()
				return
			}
		}
		props.mu.Unlock()
		select {
		case <-stop:
			return
		case <-time.After(time.Duration(1+rng.IntN(20)) * time.Millisecond):
		}
	}
}

// chaos applies faults at random moments for the duration; it reports
// whether it sent the poison message (and its Send returned nil).
func (r *run) chaos(d *runtime.Device, target Target, dur time.Duration) (poisoned bool) {
	faults := target.Faults()
	total := 0
	for _, f := range faults {
		total += f.Weight
	}
	end := time.Now().Add(dur)
	for time.Now().Before(end) {
		time.Sleep(time.Duration(100+r.rng.IntN(300)) * time.Millisecond)
		switch n := r.rng.IntN(10); {
		case n == 0 && !poisoned && target.RefusesPoison():
			poisoned = d.Send(context.Background(), Data.Name, "/poison", int64(1)) == nil
			r.t.Logf("fault: poison message (queued: %v)", poisoned)
		case n == 1:
			ms := int32(200 + r.rng.IntN(800))
			r.t.Logf("fault: handler blocked %d ms", ms)
			if err := target.Command(ms); err != nil {
				r.t.Logf("command: %v", err)
			}
		default:
			pick := r.rng.IntN(total)
			for _, f := range faults {
				if pick < f.Weight {
					r.t.Logf("fault: %s", f.Name)
					f.Do(r.rng)
					break
				}
				pick -= f.Weight
			}
		}
	}
	return poisoned
}

// checkProperties compares what the server holds with what the device was
// asked to hold (and holds).
func (r *run) checkProperties(d *runtime.Device, target Target, props *propState) {
	server := target.Properties()
	props.mu.Lock()
	defer props.mu.Unlock()
	for key, want := range props.want {
		got, ok := server[key]
		if want == nil && ok {
			r.t.Errorf("property %s: unset on the device, %v on the server", key, got)
		}
		if want != nil && got != want {
			r.t.Errorf("property %s: %v on the device, %v (present %v) on the server", key, want, got, ok)
		}
		path := strings.TrimPrefix(key, Props.Name)
		dev, set, err := d.PropertyAt(Props.Name, path)
		if err != nil || (want == nil) == set || (set && dev != want) {
			r.t.Errorf("property %s: device holds %v (set %v, %v), last asked %v", key, dev, set, err, want)
		}
	}
}

// check verifies the delivery invariants.
func (r *run) check(target Target, poisoned bool, dead []runtime.DeadLetter) {
	t := r.t
	for _, s := range r.slow {
		t.Errorf("blocked past its context: %s", s)
	}
	type key struct {
		path string
		seq  int64
	}
	first := map[string][]int64{} // path → values in first-delivery order
	count := map[key]int{}
	sessions := map[key]map[int]int{}
	for _, dl := range target.Deliveries() {
		if dl.Interface != Data.Name {
			continue
		}
		v, _ := dl.Value.(int64)
		k := key{dl.Path, v}
		if count[k] == 0 {
			first[dl.Path] = append(first[dl.Path], v)
		}
		count[k]++
		if sessions[k] == nil {
			sessions[k] = map[int]int{}
		}
		sessions[k][dl.Session]++
	}
	dupes := map[string]int{}
	for _, s := range r.sends {
		k := key{s.path, s.seq}
		ret, rel := parsePath(s.path)
		if rel == model.Unique {
			for session, n := range sessions[k] {
				if n > 1 {
					t.Errorf("unique %s #%d delivered %d times within broker session %d", s.path, s.seq, n, session)
				}
			}
		}
		if count[k] > 1 {
			dupes[s.path] += count[k] - 1
		}
		if s.err != nil || rel == model.Unreliable {
			continue // QoS 0 may be lost on any connection drop
		}
		switch {
		case ret == model.Stored && count[k] == 0:
			t.Errorf("stored %s #%d: Send returned nil, never delivered", s.path, s.seq)
		case ret == model.Volatile && s.beforeFlush && count[k] == 0:
			t.Errorf("volatile %s #%d: Send returned nil before Flush, never delivered", s.path, s.seq)
		}
	}
	for p, vs := range first {
		// Unreliable (QoS 0) stored messages are resent if paho could not
		// write them, possibly after later ones: no order is promised.
		if ret, rel := parsePath(p); ret == model.Stored && rel != model.Unreliable && !slices.IsSorted(vs) {
			t.Errorf("stored %s first delivered out of order: %v", p, outOfOrder(vs))
		}
	}
	if len(dupes) > 0 {
		t.Logf("duplicates after session losses (allowed at QoS 1, and at QoS 2 across sessions): %v", dupes)
	}
	r.checkDeadLetters(poisoned, dead)
	n := 0
	for _, s := range r.sends {
		if s.err == nil {
			n++
		}
	}
	t.Logf("%d calls, %d returned nil; %d deliveries", len(r.sends), n, len(target.Deliveries()))
}

func (r *run) checkDeadLetters(poisoned bool, dead []runtime.DeadLetter) {
	t := r.t
	for _, dl := range dead {
		if dl.Path != "/poison" {
			t.Errorf("a valid message went to the dead letters: %+v", dl)
		}
	}
	if !poisoned {
		return
	}
	if len(dead) != 1 {
		t.Errorf("the refused message is not (only once) in the dead letters: %+v", dead)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, err := range r.errs {
		var e *runtime.Error
		if errors.As(err, &e) && errors.Is(err, runtime.ErrDeadLetter) && e.Interface == Data.Name && e.Path == "/poison" {
			return
		}
	}
	t.Errorf("OnError never reported the dead letter; it got %v", r.errs)
}

func outOfOrder(vs []int64) string {
	for i := 1; i < len(vs); i++ {
		if vs[i] < vs[i-1] {
			return fmt.Sprintf("%d after %d", vs[i], vs[i-1])
		}
	}
	return ""
}

func parsePath(p string) (model.Retention, model.Reliability) {
	for _, ret := range retentions {
		for _, rel := range reliabilities {
			if path(ret, rel) == p {
				return ret, rel
			}
		}
	}
	return model.Discard, model.Unreliable // properties: not checked here
}

func waitGroup(t *testing.T, wg *sync.WaitGroup, limit time.Duration, what string) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(limit):
		t.Fatalf("%s still running after %v", what, limit)
	}
}

// leakCandidates returns the goroutines that belong to a Device or its
// MQTT client, by stack.
func leakCandidates() map[string]bool {
	var b strings.Builder
	_ = pprof.Lookup("goroutine").WriteTo(&b, 2)
	out := map[string]bool{}
	for _, g := range strings.Split(b.String(), "\n\n") {
		if strings.Contains(g, "eclipse/paho.mqtt.golang") || strings.Contains(g, "astarte-gen/runtime.(*Device)") {
			header, _, _ := strings.Cut(g, " [")
			out[header] = true
		}
	}
	return out
}

// checkNoLeak fails if goroutines of the closed device remain.
func (r *run) checkNoLeak(before map[string]bool) {
	deadline := time.Now().Add(3 * time.Second)
	for {
		var left []string
		for g := range leakCandidates() {
			if !before[g] {
				left = append(left, g)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&b, 2)
			r.t.Errorf("%d goroutines of the device left after Close: %v\n%s", len(left), left, b.String())
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
