// Command client is the other process of cmd/astartetest's test: a device
// that pairs with the standalone fake from the JSON file it wrote, sends
// one value and prints the first server message it receives.
package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/astarte-gen/astarte-gen/runtime"
	"github.com/astarte-gen/astarte-gen/runtime/model"
	"github.com/astarte-gen/astarte-gen/schema"
)

func main() {
	infoFile := flag.String("info", "", "file written by astartetest -out")
	dir := flag.String("interfaces", "", "interface directory")
	store := flag.String("store", "", "store directory")
	flag.Parse()
	var info struct {
		Realm      string `json:"realm"`
		PairingURL string `json:"pairing_url"`
		CAPEM      string `json:"ca_pem"`
		Devices    []struct {
			DeviceID          string `json:"device_id"`
			CredentialsSecret string `json:"credentials_secret"`
		} `json:"devices"`
	}
	data, err := os.ReadFile(*infoFile)
	if err != nil {
		log.Fatal(err)
	}
	roots := x509.NewCertPool()
	if err := json.Unmarshal(data, &info); err != nil || len(info.Devices) == 0 || !roots.AppendCertsFromPEM([]byte(info.CAPEM)) {
		log.Fatal("no device or CA in ", *infoFile, err)
	}
	res, err := schema.Load([]string{*dir})
	if err != nil || len(res.Errors()) > 0 {
		log.Fatal("interfaces: ", err, res.Errors())
	}
	var ifaces []*model.Interface
	for _, l := range res.Interfaces {
		ifaces = append(ifaces, l.Interface)
	}
	d, err := runtime.New(runtime.Config{Realm: info.Realm, DeviceID: info.Devices[0].DeviceID, CredentialsSecret: info.Devices[0].CredentialsSecret,
		PairingURL: info.PairingURL, RootCAs: roots, StoreDir: *store}, ifaces...)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	defer d.Close(context.Background())
	got := make(chan string, 1)
	for _, i := range ifaces {
		if i.Ownership == model.OwnershipServer {
			_ = d.Handle(i, func(_ context.Context, in *runtime.Incoming) error {
				s, _ := in.Value.String()
				got <- in.Interface + in.Path + "=" + s
				return nil
			})
		}
	}
	if err := d.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	if err := d.Send(ctx, "org.astartegen.standalone.Up", "/value", int32(42)); err != nil {
		log.Fatal(err)
	}
	select {
	case s := <-got:
		fmt.Println("received", s)
	case <-ctx.Done():
		log.Fatal("no server message")
	}
}
