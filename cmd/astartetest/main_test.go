package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	upIface = `{"interface_name": "org.astartegen.standalone.Up", "version_major": 1, "version_minor": 0,
 "type": "datastream", "ownership": "device",
 "mappings": [{"endpoint": "/value", "type": "integer", "reliability": "guaranteed"}]}`
	downIface = `{"interface_name": "org.astartegen.standalone.Down", "version_major": 1, "version_minor": 0,
 "type": "datastream", "ownership": "server",
 "mappings": [{"endpoint": "/cmd", "type": "string", "reliability": "guaranteed"}]}`
	deviceID = "AJInS0w3VpWpuOqkXhgZdA"
)

// goBuild builds a package of this module into dir and returns the binary.
func goBuild(t *testing.T, dir, pkg, name string) string {
	t.Helper()
	bin := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// TestStandaloneWithAnotherProcess runs the command and a device in
// another process (testdata/client, a Go program using the runtime): the
// device pairs and sends through the fake, the test reads what it sent and
// sends it a server message through the control API.
func TestStandaloneWithAnotherProcess(t *testing.T) {
	tmp := t.TempDir()
	ifaces := filepath.Join(tmp, "interfaces")
	must(t, os.Mkdir(ifaces, 0o755))
	must(t, os.WriteFile(filepath.Join(ifaces, "up.json"), []byte(upIface), 0o644))
	must(t, os.WriteFile(filepath.Join(ifaces, "down.json"), []byte(downIface), 0o644))
	fake := goBuild(t, tmp, ".", "astartetest")
	client := goBuild(t, tmp, "./testdata/client", "client")

	out := filepath.Join(tmp, "astartetest.json")
	srv := exec.Command(fake, "-interfaces", ifaces, "-devices", deviceID, "-out", out)
	var srvLog bytes.Buffer
	srv.Stdout, srv.Stderr = &srvLog, &srvLog
	must(t, srv.Start())
	t.Cleanup(func() {
		_ = srv.Process.Signal(os.Interrupt)
		_ = srv.Wait()
	})
	var info Info
	deadline := time.Now().Add(20 * time.Second)
	for {
		data, err := os.ReadFile(out)
		if err == nil {
			must(t, json.Unmarshal(data, &info))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 20 s; output: %s", out, srvLog.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st, err := os.Stat(out); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("%s mode %v (%v), want 0600: it holds secrets", out, st.Mode(), err)
	}
	if len(info.Devices) != 1 || info.Devices[0].DeviceID != deviceID || info.Devices[0].CredentialsSecret == "" ||
		!strings.HasPrefix(info.PairingURL, "https://127.0.0.1:") || !strings.HasPrefix(info.BrokerURL, "mqtts://127.0.0.1:") ||
		!strings.Contains(info.CAPEM, "BEGIN CERTIFICATE") {
		t.Fatalf("connection details: %+v", info)
	}

	dev := exec.Command(client, "-info", out, "-interfaces", ifaces, "-store", filepath.Join(tmp, "store"))
	var devOut bytes.Buffer
	dev.Stdout, dev.Stderr = &devOut, &devOut
	must(t, dev.Start())
	done := make(chan error, 1)
	go func() { done <- dev.Wait() }()

	// What the device published, read through the control API.
	var got []struct {
		Topic      string `json:"topic"`
		QoS        int    `json:"qos"`
		Value      any    `json:"value"`
		PayloadHex string `json:"payload_hex"`
	}
	deadline = time.Now().Add(20 * time.Second)
	for len(got) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("device sent nothing; device output: %s", devOut.String())
		}
		time.Sleep(20 * time.Millisecond)
		getJSON(t, info.ControlURL+"/devices/"+deviceID+"/received", &got)
	}
	want := "test/" + deviceID + "/org.astartegen.standalone.Up/value"
	if got[0].Topic != want || got[0].QoS != 1 || got[0].Value != 42.0 || got[0].PayloadHex != "0c000000107600"+"2a00000000" {
		t.Errorf("received %+v, want %s qos 1 value 42", got[0], want)
	}

	// A server datastream sent through the control API reaches the device.
	body := `{"interface": "org.astartegen.standalone.Down", "path": "/cmd", "value": "hello"}`
	resp, err := http.Post(info.ControlURL+"/devices/"+deviceID+"/datastream", "application/json", strings.NewReader(body))
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("control datastream: HTTP %d", resp.StatusCode)
	}
	select {
	case err := <-done:
		if err != nil || !strings.Contains(devOut.String(), "received org.astartegen.standalone.Down/cmd=hello") {
			t.Fatalf("device: %v\n%s", err, devOut.String())
		}
	case <-time.After(30 * time.Second):
		_ = dev.Process.Kill()
		t.Fatalf("device did not receive the server message; output: %s", devOut.String())
	}
	var events struct {
		Connections int      `json:"connections"`
		Errors      []string `json:"errors"`
	}
	getJSON(t, info.ControlURL+"/devices/"+deviceID+"/events", &events)
	if events.Connections != 1 || len(events.Errors) != 0 {
		t.Errorf("events: %+v", events)
	}
}

func getJSON(t *testing.T, url string, out any) {
	t.Helper()
	resp, err := http.Get(url)
	must(t, err)
	defer resp.Body.Close()
	must(t, json.NewDecoder(resp.Body).Decode(out))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
