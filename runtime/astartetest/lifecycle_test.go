package astartetest_test

import (
	"sync"
	"testing"

	"github.com/astarte-gen/astarte-gen/runtime/astartetest"
)

// TestStartCloseManyWithClients starts and closes fakes while clients are
// connecting and connected, the pattern of a user package with many tests:
// under go test -race it must report nothing (mochi v2.7.9's own TCP
// listener lets Close race a connection goroutine's WaitGroup.Add).
func TestStartCloseManyWithClients(t *testing.T) {
	for range 15 {
		a, err := astartetest.Start(values)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := a.IssueCertificate(devA)
		if err != nil {
			t.Fatal(err)
		}
		if c, err := dial(a, "test/"+devA, cert); err != nil {
			t.Fatalf("connect: %v", err)
		} else {
			defer c.Disconnect(0)
		}
		var wg sync.WaitGroup
		for range 4 { // connections arriving while the fake closes
			wg.Go(func() {
				if c, err := dialClean(a, "", true, cert); err == nil {
					c.Disconnect(0)
				}
			})
		}
		a.Close()
		wg.Wait()
	}
}
