package main

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/astarte-gen/astarte-gen/runtime/astartetest"
	"github.com/astarte-gen/astarte-gen/runtime/model"
	"github.com/astarte-gen/astarte-gen/schema"
)

// Info is what the command writes to -out: everything a client needs.
type Info struct {
	Realm      string   `json:"realm"`
	PairingURL string   `json:"pairing_url"`
	BrokerURL  string   `json:"broker_url"`
	ControlURL string   `json:"control_url"`
	CAPEM      string   `json:"ca_pem"`
	Devices    []Device `json:"devices"`
}

// Device is one registered device.
type Device struct {
	DeviceID          string `json:"device_id"`
	CredentialsSecret string `json:"credentials_secret"`
}

// run serves until ctx ends; it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("astartetest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ifaceDirs := fs.String("interfaces", "", "interface files or directories, comma-separated (required)")
	devices := fs.String("devices", "", "device ids to register, comma-separated")
	out := fs.String("out", "astartetest.json", "file to write the connection details to (mode 0600)")
	pairingAddr := fs.String("pairing-addr", "", "Pairing API host:port (default: a free port on 127.0.0.1)")
	brokerAddr := fs.String("broker-addr", "", "MQTT broker host:port (default: a free port on 127.0.0.1)")
	controlAddr := fs.String("control-addr", "127.0.0.1:0", "control API host:port")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *ifaceDirs == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	ifaces, err := loadInterfaces(strings.Split(*ifaceDirs, ","))
	if err != nil {
		return errorf(stderr, "%v", err)
	}
	a, err := astartetest.StartWith(astartetest.Options{PairingAddr: *pairingAddr, BrokerAddr: *brokerAddr}, ifaces...)
	if err != nil {
		return errorf(stderr, "%v", err)
	}
	defer a.Close()
	ln, err := net.Listen("tcp", *controlAddr)
	if err != nil {
		return errorf(stderr, "control API: %v", err)
	}
	srv := &http.Server{Handler: a.ControlHandler()}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	info := Info{Realm: a.Realm(), PairingURL: a.PairingURL(), BrokerURL: a.BrokerURL(), ControlURL: "http://" + ln.Addr().String(),
		CAPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.CA().Certificate().Raw})), Devices: []Device{}}
	for id := range strings.SplitSeq(*devices, ",") {
		if id = strings.TrimSpace(id); id == "" {
			continue
		}
		cfg, err := a.DeviceConfig(id)
		if err != nil {
			return errorf(stderr, "%v", err)
		}
		info.Devices = append(info.Devices, Device{DeviceID: id, CredentialsSecret: cfg.CredentialsSecret})
	}
	if err := writeInfo(*out, info); err != nil {
		return errorf(stderr, "%v", err)
	}
	fmt.Fprintf(stdout, "astartetest: realm %s, pairing %s, broker %s, control %s; details in %s\n",
		info.Realm, info.PairingURL, info.BrokerURL, info.ControlURL, *out)
	<-ctx.Done()
	return 0
}

// loadInterfaces parses the interface files; any invalid file is an error.
func loadInterfaces(paths []string) ([]*model.Interface, error) {
	res, err := schema.Load(paths)
	if err != nil {
		return nil, err
	}
	if errs := res.Errors(); len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, d := range errs {
			msgs[i] = d.File + ":" + d.Pointer + ": " + d.Message
		}
		return nil, errors.New("invalid interfaces:\n" + strings.Join(msgs, "\n"))
	}
	if len(res.Interfaces) == 0 {
		return nil, fmt.Errorf("no interface files in %s", strings.Join(paths, ", "))
	}
	out := make([]*model.Interface, len(res.Interfaces))
	for i, l := range res.Interfaces {
		out[i] = l.Interface
	}
	return out, nil
}

// writeInfo writes the file atomically (a reader never sees half of it),
// mode 0600 since it holds credentials secrets.
func writeInfo(path string, info Info) error {
	data, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".astartetest-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
