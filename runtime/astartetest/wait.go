package astartetest

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// DefaultWaitTimeout is how long the Wait methods wait unless
// SetWaitTimeout says otherwise.
const DefaultWaitTimeout = 10 * time.Second

// SetWaitTimeout sets how long the Wait methods wait before failing the
// test.
func (a *Astarte) SetWaitTimeout(d time.Duration) {
	a.bmu.Lock()
	defer a.bmu.Unlock()
	a.waitTimeout = d
}

func (a *Astarte) timeout() time.Duration {
	a.bmu.Lock()
	defer a.bmu.Unlock()
	if a.waitTimeout > 0 {
		return a.waitTimeout
	}
	return DefaultWaitTimeout
}

// waitState waits until done, called with st.mu held, reports true; it is
// re-checked whenever the device's state changes. It fails the test with
// what() on timeout.
func (a *Astarte) waitState(t testing.TB, deviceID string, done func(st *deviceState) bool, what func() string) bool {
	t.Helper()
	st := a.state(deviceID)
	deadline := time.After(a.timeout())
	for {
		st.mu.Lock()
		ok, changed := done(st), st.changed
		st.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("astartetest: device %s: %s after %v; events: %q", deviceID, what(), a.timeout(), a.Events(deviceID))
			return false
		}
	}
}

// WaitReceived waits until the device has sent at least n accepted data
// messages and returns all of them; it fails the test after the wait
// timeout (DefaultWaitTimeout unless SetWaitTimeout).
func (a *Astarte) WaitReceived(t testing.TB, deviceID string, n int) []Received {
	t.Helper()
	a.waitState(t, deviceID, func(st *deviceState) bool { return len(st.received) >= n },
		func() string {
			return "received " + strconv.Itoa(a.ReceivedCount(deviceID)) + " of " + strconv.Itoa(n) + " expected messages"
		})
	return a.Received(deviceID)
}

// WaitEvent waits until the device has more than after events that start
// with prefix (see Events) and returns the one following the first after
// of them: WaitEvent(t, id, "error ", len(a.Errors(id))) returns the next
// error. It fails the test after the wait timeout.
func (a *Astarte) WaitEvent(t testing.TB, deviceID, prefix string, after int) string {
	t.Helper()
	var found string
	a.waitState(t, deviceID, func(st *deviceState) bool {
		n := 0
		for _, e := range st.events {
			if strings.HasPrefix(e, prefix) {
				if n == after {
					found = e
					return true
				}
				n++
			}
		}
		return false
	}, func() string { return "no event " + strconv.Itoa(after+1) + " starting with " + strconv.Quote(prefix) })
	return found
}

// WaitConnections waits until the device has connected at least n times
// (see Connections) and returns the count; it fails the test after the
// wait timeout.
func (a *Astarte) WaitConnections(t testing.TB, deviceID string, n int) int {
	t.Helper()
	a.waitState(t, deviceID, func(st *deviceState) bool { return st.connections >= n },
		func() string {
			return "connected " + strconv.Itoa(a.Connections(deviceID)) + " times, want " + strconv.Itoa(n)
		})
	return a.Connections(deviceID)
}

// WaitFor polls cond until it reports true, for conditions outside the
// fake (a device's state, a callback's records); it fails the test with
// what after the wait timeout.
func (a *Astarte) WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(a.timeout())
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("astartetest: %s: not met after %v", what, a.timeout())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
