package testifaces_test

import (
	"testing"

	"github.com/astarte-gen/astarte-gen/internal/testifaces"
	"github.com/astarte-gen/astarte-gen/runtime/model"
)

// TestDescriptorsAreCopies: the exported descriptor accessors and
// Interfaces hand out copies, so a caller cannot change what the generated
// code sends with.
func TestDescriptorsAreCopies(t *testing.T) {
	i := testifaces.DeviceDatastreamInterface()
	want := i.Mappings[0]
	i.Mappings[0].Endpoint, i.Mappings[0].Type = "/elsewhere", model.String
	for _, j := range testifaces.Interfaces() {
		j.Name = "org.evil.Renamed"
	}
	if got := testifaces.DeviceDatastreamInterface().Mappings[0]; got != want {
		t.Errorf("descriptor changed through a returned copy: %+v, want %+v", got, want)
	}
	for _, j := range testifaces.Interfaces() {
		if j.Name == "org.evil.Renamed" {
			t.Error("Interfaces returned a shared descriptor")
		}
	}
}
