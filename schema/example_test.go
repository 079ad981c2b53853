package schema_test

import (
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/astarte-gen/astarte-gen/schema"
)

// ExampleCompare checks a new version of an interface against the one
// installed: the mapping's type changed and the minor did not go up.
func ExampleCompare() {
	parse := func(name, minor, typ string) schema.Loaded {
		iface, err := schema.Parse(name, []byte(`{"interface_name": "org.example.Sensors", "version_major": 1,
			"version_minor": `+minor+`, "type": "datastream", "ownership": "device",
			"mappings": [{"endpoint": "/%{sensor}/temperature", "type": "`+typ+`"}]}`))
		if err != nil {
			panic(err)
		}
		return schema.Loaded{File: name, Interface: iface}
	}
	old := parse("v1.2.json", "2", "double")
	findings := schema.Compare(old, parse("sensors.json", "2", "integer"))
	for _, f := range findings {
		fmt.Println(f.Rule, f.Pointer)
	}
	fmt.Println("refused:", schema.Refused(findings))
	// Output:
	// incompatible_endpoint_change /mappings/0/type
	// minor_version_not_increased /version_minor
	// refused: true
}

// A program that receives interface files at run time (with a firmware
// module, say) validates them as astarte-gen validate does and adds them
// to its device with Device.AddInterfaces.
func ExampleLoadInterfaces() {
	dir, err := os.MkdirTemp("", "interfaces-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "org.example.Module.json")
	if err := os.WriteFile(file, []byte(`{"interface_name": "org.example.Module", "version_major": 1, "version_minor": 0,
		"type": "datastream", "ownership": "device",
		"mappings": [{"endpoint": "/%{id}/level", "type": "integer"}]}`), 0o644); err != nil {
		log.Fatal(err)
	}
	ifaces, err := schema.LoadInterfaces(dir)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ifaces[0].Name, ifaces[0].Mappings[0].Endpoint)
	// then: err = device.AddInterfaces(ctx, ifaces...)

	if err := os.WriteFile(file, []byte(`{"interface_name": "org.example.Module", "version_major": 0, "version_minor": 0,
		"type": "datastream", "ownership": "device", "mappings": [{"endpoint": "/level", "type": "integer"}]}`), 0o644); err != nil {
		log.Fatal(err)
	}
	_, err = schema.LoadInterfaces(dir)
	fmt.Println(errors.Is(err, schema.ErrInvalid))
	// Output:
	// org.example.Module /%{id}/level
	// true
}
