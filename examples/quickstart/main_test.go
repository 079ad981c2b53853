package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/astarte-gen/astarte-gen/runtime"
)

// TestQuickstart runs the quickstart against its fake Astarte and checks
// that data went both ways.
func TestQuickstart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, runtime.Config{StoreDir: t.TempDir()}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{
		"→ reported configuration: firmware 1.0.0",
		"→ telemetry: kitchen 21.5 °C",
		"← desired configuration: sampling every 500 ms",
		"→ reported configuration: sampling every 500 ms",
		`← command c1: "reboot"`,
		`→ command c1 result: "done: reboot"`,
		"Astarte received 6 messages",
		"org.astartegen.quickstart.ReportedConfig/sampling_period_ms:500",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
