package schema_test

import (
	"fmt"

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
