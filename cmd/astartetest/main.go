// Command astartetest serves the fake Astarte of package
// runtime/astartetest on loopback for devices written in any language: an
// HTTPS Pairing API, an MQTT broker with mutual TLS, and a JSON control API
// (see astartetest.Astarte.ControlHandler) to send server data and read what
// devices published.
//
// Usage:
//
//	astartetest -interfaces DIR [-devices ID,...] [-out FILE]
//	            [-pairing-addr HOST:PORT] [-broker-addr HOST:PORT] [-control-addr HOST:PORT]
//
// It registers the listed devices and writes FILE (mode 0600): a JSON
// object with the realm, pairing_url, broker_url, control_url, ca_pem (the
// CA that signs the servers' and the devices' certificates) and devices
// (device_id and credentials_secret each). It runs until interrupted.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// errorf prints a message and returns the usage/I-O exit status.
func errorf(w io.Writer, format string, args ...any) int {
	fmt.Fprintf(w, "astartetest: "+format+"\n", args...)
	return 2
}
