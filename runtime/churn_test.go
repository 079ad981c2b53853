package runtime_test

// Regression tests for the defects of issue 11 ("the Device under churn"),
// one test per defect. Each drives the real runtime against astartetest (a
// TLS MQTT broker and Pairing API) and asserts what a user sees: what the
// fake Astarte received, errors returned, the store on disk.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/astarte-gen/astarte-gen/runtime"
	"github.com/astarte-gen/astarte-gen/runtime/astartetest"
	"github.com/astarte-gen/astarte-gen/runtime/model"
	"github.com/astarte-gen/astarte-gen/runtime/pairing"
)

const churnID = "Q2h1cm5EZXZpY2UwMDAwMA"

// churnIface has one mapping per retention × reliability the tests need.
var churnIface = &model.Interface{
	Name: "org.astartegen.e2e.Churn", Major: 1, Minor: 0,
	Type: model.Datastream, Ownership: model.OwnershipDevice,
	Mappings: []model.Mapping{
		{Endpoint: "/stored", Type: model.LongInteger, Reliability: model.Guaranteed, Retention: model.Stored},
		{Endpoint: "/unique", Type: model.LongInteger, Reliability: model.Unique, Retention: model.Stored},
		{Endpoint: "/volatile0", Type: model.LongInteger, Retention: model.Volatile},
		{Endpoint: "/volatile1", Type: model.LongInteger, Reliability: model.Guaranteed, Retention: model.Volatile},
		{Endpoint: "/discard0", Type: model.LongInteger},
		{Endpoint: "/discard1", Type: model.LongInteger, Reliability: model.Guaranteed},
	},
}

// churnIfaces is what both the fake and the device know in most tests.
var churnIfaces = []*model.Interface{churnIface, serverStreamIface, serverProps, deviceProps}

// churnDevice starts a fake Astarte with churnIfaces and a connected device;
// tune adjusts the configuration first.
func churnDevice(t *testing.T, tune func(*runtime.Config)) (*astartetest.Astarte, *runtime.Device, runtime.Config) {
	t.Helper()
	a := astartetest.New(t, churnIfaces...)
	cfg := testConfig(t, a, churnID)
	if tune != nil {
		tune(&cfg)
	}
	return a, newDevice(t, a, cfg, churnIfaces...), cfg
}

// valuesOn returns the int64 values the fake received on path, in order.
func valuesOn(a *astartetest.Astarte, path string) []int64 {
	var out []int64
	for _, r := range a.Received(churnID) {
		if r.Interface == churnIface.Name && r.Path == path {
			out = append(out, r.Value.(int64))
		}
	}
	return out
}

// dropEvery drops the device's connection every period until the returned
// function is called (which waits for the dropper to stop).
func dropEvery(a *astartetest.Astarte, period time.Duration) (stop func()) {
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				a.DropConnection(churnID)
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); <-stopped }) }
}

// Defect 1: a Send racing Close crashed with a nil-pointer dereference
// (Close cleared the connection but left the device "synced"), also when
// a handler sends while the program closes the device.
func TestChurnSendRacingClose(t *testing.T) {
	a := astartetest.New(t, churnIfaces...)
	cfg := testConfig(t, a, churnID) // one store reused by every round
	for round := range 20 {
		d := newDevice(t, a, cfg, churnIfaces...)
		var closed atomic.Bool
		bad := make(chan error, 8)
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for i := int64(0); ; i++ {
					after := closed.Load()
					err := d.Send(context.Background(), churnIface.Name, "/stored", int64(g)<<32|i)
					switch {
					case err == nil && !after:
						continue
					case err == nil:
						bad <- fmt.Errorf("round %d: Send after Close returned nil", round)
					case !errors.Is(err, runtime.ErrClosed):
						bad <- fmt.Errorf("round %d: Send racing Close: %v, want nil or ErrClosed", round, err)
					}
					return
				}
			})
		}
		time.Sleep(5 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := d.Close(ctx); err != nil {
			t.Errorf("round %d: Close: %v", round, err)
		}
		cancel()
		closed.Store(true)
		wg.Wait()
		close(bad)
		for err := range bad {
			t.Error(err)
		}
		if t.Failed() {
			return
		}
	}

	// A command handler answering (sending stored data) while the program
	// closes the device.
	d := newDevice(t, a, cfg, churnIfaces...)
	sending := make(chan struct{})
	last := make(chan error, 1)
	if err := d.Handle(serverStreamIface, func(ctx context.Context, in *runtime.Incoming) error {
		close(sending)
		var err error
		for i := int64(0); err == nil && i < 1_000_000; i++ {
			err = d.Send(ctx, churnIface.Name, "/stored", i)
		}
		last <- err
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sendCommand(t, a, sending)
	time.Sleep(5 * time.Millisecond)
	if err := d.Close(ctxT(t)); err != nil {
		t.Errorf("Close while a handler sends: %v", err)
	}
	select {
	case err := <-last:
		if !errors.Is(err, runtime.ErrClosed) {
			t.Errorf("a handler's Send after Close: %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the handler's Send never failed after Close")
	}
}

// boundedSend runs d.Send with a context of timeout and reports an error
// when it returns later than that plus a second; it does not wait for a
// Send stuck longer (the test fails instead of hanging).
func boundedSend(d *runtime.Device, timeout time.Duration, path string, v int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- d.Send(ctx, churnIface.Name, path, v) }()
	select {
	case <-done:
		return nil
	case <-time.After(timeout + time.Second):
		return fmt.Errorf("Send on %s with a %v context still blocked after %v", path, timeout, time.Since(start).Round(time.Millisecond))
	}
}

// Defect 2: volatile and discard sends ignored their context: with the
// connection dropping, or after Close, a send blocked for paho's 30 s
// write timeout.
func TestChurnSendsBoundedByContext(t *testing.T) {
	a, d, _ := churnDevice(t, nil)
	const timeout = 300 * time.Millisecond
	paths := []string{"/volatile0", "/volatile1", "/discard0", "/discard1"}
	stopDrops := dropEvery(a, 15*time.Millisecond)
	defer stopDrops()
	var (
		mu   sync.Mutex
		late []error
		sent atomic.Int64
	)
	end := time.Now().Add(1500 * time.Millisecond)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := int64(0); time.Now().Before(end); i++ {
				if err := boundedSend(d, timeout, paths[g%len(paths)], i); err != nil {
					mu.Lock()
					late = append(late, err)
					mu.Unlock()
					return
				}
				sent.Add(1)
			}
		})
	}
	// Close while senders are busy and connections drop; Close too must
	// respect its context.
	time.Sleep(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	closeDone := make(chan error, 1)
	go func() { closeDone <- d.Close(ctx) }()
	select {
	case <-closeDone:
	case <-time.After(timeout + time.Second):
		t.Errorf("Close with a %v context still blocked after %v", timeout, timeout+time.Second)
	}
	wg.Wait()
	for _, err := range late {
		t.Error(err)
	}
	if sent.Load() < 100 {
		t.Errorf("only %d sends completed: the test exercised nothing", sent.Load())
	}
}

// Defect 3: after a drop, the old connection's failed volatile publishes
// marked the volatile path not live after the new connection had drained:
// new volatile sends returned nil and reached nobody, Flush never returned.
func TestChurnVolatileQueueNotStuck(t *testing.T) {
	// A capacity no burst reaches: every loss would be the runtime's.
	a, d, _ := churnDevice(t, func(c *runtime.Config) { c.VolatileCapacity = 100_000 })
	ctx := ctxT(t)
	var next atomic.Int64
	send := func() {
		if err := d.Send(ctx, churnIface.Name, "/volatile1", next.Add(1)); err != nil {
			t.Error(err)
		}
	}
	stopDrops := dropEvery(a, 20*time.Millisecond)
	var wg sync.WaitGroup
	end := time.Now().Add(time.Second)
	for range 4 {
		wg.Go(func() {
			for time.Now().Before(end) {
				send()
				time.Sleep(time.Millisecond)
			}
		})
	}
	wg.Wait()
	stopDrops()
	waitFor(t, func() bool { return d.State() == runtime.Connected })
	for range 50 {
		send()
	}
	fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Flush(fctx); err != nil {
		t.Fatalf("Flush after the drops: %v (volatile queue stuck?)", err)
	}
	got := map[int64]bool{}
	for _, v := range valuesOn(a, "/volatile1") {
		got[v] = true
	}
	var lost []int64
	for v := int64(1); v <= next.Load(); v++ {
		if !got[v] {
			lost = append(lost, v)
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d of %d volatile values never reached Astarte (the session was kept): %v", len(lost), next.Load(), lost)
	}
	if s := d.State(); s != runtime.Connected {
		t.Errorf("state %v, want connected", s)
	}
	if a.Connections(churnID) < 2 {
		t.Errorf("only %d connection: the drops did not happen", a.Connections(churnID))
	}
}

// Found while writing TestChurnVolatileQueueNotStuck: when the broker
// drops the connection while the owner loop hands paho a publish, paho's
// Publish waits WriteTimeout (5 s) for a writer that is gone; meanwhile
// State says connected and the device neither publishes nor reconnects.
func TestChurnReconnectsPromptlyAfterDrop(t *testing.T) {
	a, d, _ := churnDevice(t, func(c *runtime.Config) { c.VolatileCapacity = 100_000 })
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	for range 4 {
		wg.Go(func() {
			for i := int64(0); ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
				_ = d.Send(context.Background(), churnIface.Name, "/volatile1", i)
			}
		})
	}
	for round := range 30 {
		time.Sleep(30 * time.Millisecond)
		before := a.Connections(churnID)
		a.DropConnection(churnID)
		start := time.Now()
		for a.Connections(churnID) == before {
			if time.Since(start) > 2*time.Second {
				t.Fatalf("round %d: not reconnected 2 s after the broker dropped the connection (ReconnectMax 200 ms); State() = %v", round, d.State())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// Defect 4: a handler that blocks made Close return at its deadline before
// closing the store; a second Close returned nil and runtime.New on the
// same directory failed with "open store: timeout". After Close, methods
// must say the device is closed.
func TestChurnCloseReleasesStore(t *testing.T) {
	a, d, cfg := churnDevice(t, nil)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	called := make(chan struct{}, 1)
	if err := d.Handle(serverStreamIface, func(context.Context, *runtime.Incoming) error {
		called <- struct{}{}
		<-release // ignores its context
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sendCommand(t, a, called)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := d.Close(ctx); err == nil {
		t.Error("Close with a blocked handler returned nil, want an error saying what was still running")
	}
	if el := time.Since(start); el > 1200*time.Millisecond {
		t.Errorf("Close with a 200 ms context took %v", el)
	}
	// The store is released: a new Device (a restarted program) opens it.
	if d2, err := runtime.New(cfg, churnIfaces...); err != nil {
		t.Errorf("New on the closed device's store: %v", err)
	} else if err := d2.Close(context.Background()); err != nil {
		t.Errorf("closing the second device: %v", err)
	}
	if err := d.Close(context.Background()); !errors.Is(err, runtime.ErrClosed) {
		t.Errorf("second Close: %v, want ErrClosed", err)
	}
	bg := context.Background()
	_, _, propErr := runtime.GeneratedProperty(d, serverProps, 1)
	_, _, propAtErr := d.PropertyAt(deviceProps.Name, "/name")
	m := runtime.GeneratedMessage(d, deviceProps, 1)
	m.String("x")
	for name, err := range map[string]error{
		"Send stored":   d.Send(bg, churnIface.Name, "/stored", int64(1)),
		"Send volatile": d.Send(bg, churnIface.Name, "/volatile1", int64(1)),
		"Send discard":  d.Send(bg, churnIface.Name, "/discard0", int64(1)),
		"Message.Send":  m.Send(bg, time.Time{}),
		"Unset":         runtime.GeneratedUnset(bg, d, deviceProps, 0, "l1"),
		"Property":      propErr,
		"PropertyAt":    propAtErr,
		"Flush":         d.Flush(bg),
		"Connect":       d.Connect(bg),
		"Handle":        d.Handle(serverProps, func(context.Context, *runtime.Incoming) error { return nil }),
	} {
		if !errors.Is(err, runtime.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}

// Defect 5: unique (QoS 2) stored data was lost or duplicated across
// reconnections: a fresh paho client reused packet identifiers of the
// persistent session. The broker drops the connection at the first PUBREL
// of 50 connections, keeping the session; every value must arrive once.
func TestChurnUniqueExactlyOnceAcrossDrops(t *testing.T) {
	a, d, _ := churnDevice(t, nil)
	const n, drops = 1000, 50
	a.DropOnPacket(churnID, astartetest.PacketPubrel, drops)
	ctx := ctxT(t)
	for i := range int64(n) {
		if err := d.Send(ctx, churnIface.Name, "/unique", i); err != nil {
			t.Fatal(err)
		}
	}
	flushErr := d.Flush(ctx)
	if flushErr != nil {
		t.Errorf("Flush: %v", flushErr)
	}
	times := map[int64]int{}
	for _, v := range valuesOn(a, "/unique") {
		times[v]++
	}
	var lost, dup []int64
	for i := range int64(n) {
		switch {
		case times[i] == 0 && flushErr == nil:
			lost = append(lost, i)
		case times[i] > 1:
			dup = append(dup, i)
		}
	}
	if len(lost)+len(dup) > 0 {
		t.Errorf("unique messages: %d lost %v, %d delivered more than once %v", len(lost), lost, len(dup), dup)
	}
	if got := count(a.Events(churnID), "dropped at packet type"); got != drops {
		t.Errorf("the broker dropped %d connections at PUBREL, want %d: the test exercised less than intended", got, drops)
	}
}

// churnEvolved is churnEvolving as the device knows it: minor 1 adds a
// mapping the realm (which has minor 0) does not have, so the server
// refuses data on it by disconnecting the device.
var (
	churnEvolving = &model.Interface{
		Name: "org.astartegen.e2e.ChurnEvolving", Major: 1, Minor: 0,
		Type: model.Datastream, Ownership: model.OwnershipDevice,
		Mappings: []model.Mapping{
			{Endpoint: "/known", Type: model.LongInteger, Reliability: model.Guaranteed, Retention: model.Stored},
		},
	}
	churnEvolved = &model.Interface{
		Name: churnEvolving.Name, Major: 1, Minor: 1,
		Type: model.Datastream, Ownership: model.OwnershipDevice,
		Mappings: []model.Mapping{
			{Endpoint: "/known", Type: model.LongInteger, Reliability: model.Guaranteed, Retention: model.Stored},
			{Endpoint: "/extra", Type: model.LongInteger, Reliability: model.Guaranteed, Retention: model.Stored},
		},
	}
)

// Defect 6: a stored message the server refuses stalled the whole queue:
// the device reconnected and resent it forever, nothing behind it was
// delivered, and the error hook was never called.
func TestChurnPoisonMessageMovedAside(t *testing.T) {
	a := astartetest.New(t, churnEvolving)
	cfg := testConfig(t, a, churnID)
	cfg.MaxRefusals = 3
	seen := &errorsSeen{}
	cfg.OnError = seen.add
	d := newDevice(t, a, cfg, churnEvolved)
	ctx := ctxT(t)
	if err := d.Send(ctx, churnEvolved.Name, "/extra", int64(-1)); err != nil {
		t.Fatal(err)
	}
	for i := range int64(10) {
		if err := d.Send(ctx, churnEvolved.Name, "/known", i); err != nil {
			t.Fatal(err)
		}
	}
	got := a.WaitReceived(t, churnID, 10)
	var known []any
	for _, r := range got {
		if r.Path == "/known" {
			known = append(known, r.Value)
		}
	}
	for i := range int64(10) {
		if !slices.Contains(known, any(i)) {
			t.Errorf("value %d behind the refused message was not delivered (got %v)", i, known)
		}
	}
	var dead *runtime.Error
	waitFor(t, func() bool {
		for _, err := range seen.list() {
			if errors.As(err, &dead) && errors.Is(err, runtime.ErrDeadLetter) {
				return true
			}
		}
		return false
	})
	if dead.Interface != churnEvolved.Name || dead.Path != "/extra" {
		t.Errorf("dead-letter report names %q %q, want %s /extra: %v", dead.Interface, dead.Path, churnEvolved.Name, dead)
	}
	letters, err := d.DeadLetters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(letters) != 1 || letters[0].Interface != churnEvolved.Name || letters[0].Path != "/extra" || letters[0].Value != int64(-1) {
		t.Fatalf("dead letters = %+v, want the /extra message", letters)
	}
	if err := d.DeleteDeadLetter(ctx, letters[0].ID); err != nil {
		t.Fatal(err)
	}
	if letters, err := d.DeadLetters(ctx); err != nil || len(letters) != 0 {
		t.Errorf("after DeleteDeadLetter: %+v, %v", letters, err)
	}
	time.Sleep(200 * time.Millisecond) // a device still looping would reconnect meanwhile
	if n := a.Connections(churnID) - 1; n > cfg.MaxRefusals+2 {
		t.Errorf("the device reconnected %d times, want at most MaxRefusals+2 = %d; Astarte saw %q", n, cfg.MaxRefusals+2, a.Events(churnID))
	}
	if s := d.State(); s != runtime.Connected {
		t.Errorf("state %v, want connected", s)
	}
}

// Defect 7: a stored Send whose context ended while it waited for an
// in-flight slot returned an error although the message was queued (and
// delivered later): a caller that retries creates duplicates. Send must
// return nil exactly for the messages that will be delivered.
func TestChurnStoredSendResultMatchesDelivery(t *testing.T) {
	a, d, _ := churnDevice(t, func(c *runtime.Config) { c.MaxInFlight = 1 })
	var mu sync.Mutex
	accepted := map[int64]bool{}
	refused := 0
	var wg sync.WaitGroup
	for g := range int64(4) {
		wg.Go(func() {
			for i := range int64(100) {
				v := g*1000 + i
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Millisecond)
				err := d.Send(ctx, churnIface.Name, "/stored", v)
				cancel()
				mu.Lock()
				if err == nil {
					accepted[v] = true
				} else {
					refused++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	// What was delivered is checked even if Flush fails; what was lost
	// only once everything was flushed.
	flushErr := d.Flush(ctxT(t))
	if flushErr != nil {
		t.Errorf("Flush: %v", flushErr)
	}
	delivered := map[int64]bool{}
	for _, v := range valuesOn(a, "/stored") {
		delivered[v] = true
		if !accepted[v] {
			t.Errorf("value %d was delivered although its Send returned an error", v)
		}
	}
	for v := range accepted {
		if flushErr == nil && !delivered[v] {
			t.Errorf("value %d was lost although its Send returned nil", v)
		}
	}
	t.Logf("%d sends returned nil, %d an error", len(accepted), refused)
}

// Defect 8: a certificate whose renewal point had passed when it was
// issued caused a renewal storm (a new certificate and a reconnection
// every few hundred milliseconds).
func TestChurnNoRenewalStorm(t *testing.T) {
	a := astartetest.New(t, churnIfaces...)
	// The fake backdates NotBefore by a minute: with 10 s of validity left
	// the 0.8 renewal point is already past when the certificate is issued.
	a.SetCertificateLifetime(10 * time.Second)
	cfg := testConfig(t, a, churnID)
	d := newDevice(t, a, cfg, churnIfaces...)
	end := time.Now().Add(3 * time.Second)
	for time.Now().Before(end) {
		if n := a.PairingRequests(churnID)["credentials"]; n > 2 {
			t.Fatalf("%d certificates issued within 3 s of connecting: renewal storm", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s := d.State(); s != runtime.Connected {
		t.Errorf("state %v, want connected", s)
	}
	if n := a.Connections(churnID); n > 2 {
		t.Errorf("%d connections in 3 s, want at most 2", n)
	}
}

// Defect 9: handlers got a context Close never cancelled; a handler
// registered after Connect never saw server properties set before; a
// handler's own error was reported as invalid server data.
func TestChurnHandlers(t *testing.T) {
	t.Run("context cancelled by Close", func(t *testing.T) {
		a, d, _ := churnDevice(t, nil)
		release := make(chan struct{}) // only for a runtime that never cancels
		t.Cleanup(func() { close(release) })
		waiting, returned := make(chan struct{}), make(chan struct{})
		if err := d.Handle(serverStreamIface, func(ctx context.Context, _ *runtime.Incoming) error {
			close(waiting)
			select {
			case <-ctx.Done():
			case <-release:
			}
			close(returned)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		sendCommand(t, a, waiting)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := d.Close(ctx); err != nil {
			t.Errorf("Close with a handler waiting on its context: %v, want nil", err)
		}
		select {
		case <-returned:
		default:
			t.Error("the handler had not returned when Close did")
		}
	})

	t.Run("late handler gets cached properties", func(t *testing.T) {
		a, d, _ := churnDevice(t, nil)
		if err := a.SetProperty(churnID, serverProps.Name, "/l7/target", 0.5); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { _, ok, _ := runtime.GeneratedProperty(d, serverProps, 0, "l7"); return ok })
		got := make(chan *runtime.Incoming, 4)
		if err := d.Handle(serverProps, func(_ context.Context, in *runtime.Incoming) error { got <- in; return nil }); err != nil {
			t.Fatal(err)
		}
		select {
		case in := <-got:
			if in.Path != "/l7/target" || in.Unset || in.Value.Any() != 0.5 {
				t.Errorf("replayed %s unset=%v value=%v, want /l7/target 0.5", in.Path, in.Unset, in.Value.Any())
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a handler registered after Connect never saw the property the server set before")
		}
	})

	t.Run("handler error reported as the application's", func(t *testing.T) {
		seen := &errorsSeen{}
		a, d, _ := churnDevice(t, func(c *runtime.Config) { c.OnError = seen.add })
		boom := errors.New("actuator jammed")
		if err := d.Handle(serverStreamIface, func(context.Context, *runtime.Incoming) error { return boom }); err != nil {
			t.Fatal(err)
		}
		if err := a.SendDatastream(churnID, serverStreamIface.Name, "/s1/double", 2.5); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return len(seen.list()) > 0 })
		err := seen.list()[0]
		var e *runtime.Error
		if !errors.As(err, &e) {
			t.Fatalf("OnError got %T %v, want *runtime.Error", err, err)
		}
		if !errors.Is(err, runtime.ErrHandler) || errors.Is(err, runtime.ErrServerData) || !errors.Is(err, boom) {
			t.Errorf("OnError got kind %v (%v), want ErrHandler wrapping the handler's error", e.Kind, err)
		}
		if e.Interface != serverStreamIface.Name || e.Path != "/s1/double" {
			t.Errorf("error names %q %q, want %s /s1/double", e.Interface, e.Path, serverStreamIface.Name)
		}
		msg := err.Error()
		if n := strings.Count(msg, serverStreamIface.Name); n != 1 || strings.Contains(strings.ToLower(msg), "invalid") {
			t.Errorf("message %q: names the interface %d times or calls it invalid data", msg, n)
		}
	})
}

// Defect 10: Connect that gave up returned only "context deadline
// exceeded", hiding the cause; a Pairing API 404 (wrong URL) was reported
// as "device not registered".
func TestChurnConnectErrorsSayWhy(t *testing.T) {
	t.Run("broker refuses connections", func(t *testing.T) {
		a := astartetest.New(t, churnIfaces...)
		a.SetBrokerURL("mqtts://127.0.0.1:1/")
		d, err := runtime.New(testConfig(t, a, churnID), churnIfaces...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Close(context.Background()) })
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		err = d.Connect(ctx)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "refused") {
			t.Errorf("Connect: %v; want context.DeadlineExceeded and the cause (connection refused)", err)
		}
		if el := time.Since(start); el > 2*time.Second {
			t.Errorf("Connect with a 1 s context took %v", el)
		}
	})
	t.Run("wrong pairing URL", func(t *testing.T) {
		a := astartetest.New(t, churnIfaces...)
		cfg := testConfig(t, a, churnID)
		cfg.PairingURL += "/wrong"
		d, err := runtime.New(cfg, churnIfaces...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Close(context.Background()) })
		err = d.Connect(ctxT(t))
		if !errors.Is(err, pairing.ErrNotFound) || errors.Is(err, pairing.ErrDeviceNotFound) {
			t.Errorf("Connect with a wrong pairing URL: %v; want pairing.ErrNotFound, not ErrDeviceNotFound", err)
		}
	})
}

// sendCommand sends a server datastream to the churn device and waits
// until its handler says (on called) that it runs.
func sendCommand(t *testing.T, a *astartetest.Astarte, called <-chan struct{}) {
	t.Helper()
	if err := a.SendDatastream(churnID, serverStreamIface.Name, "/cmd/double", 1.0); err != nil {
		t.Fatal(err)
	}
	select {
	case <-called:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler was not called")
	}
}
