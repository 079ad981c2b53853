package main

import (
	"os/exec"
	"strings"
	"testing"
)

// goListDeps returns the packages pkg links, as go list -deps sees them.
func goListDeps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

// TestGeneratorLinksNoDeviceCode keeps the generator free of the device
// side: it shares only the leaf model package with the runtime.
func TestGeneratorLinksNoDeviceCode(t *testing.T) {
	forbidden := []string{
		"github.com/eclipse/paho.mqtt.golang",
		"go.etcd.io/bbolt",
		"go.mongodb.org/mongo-driver",
		"github.com/mochi-mqtt",
		"github.com/astarte-gen/astarte-gen/runtime/pairing",
		"github.com/astarte-gen/astarte-gen/runtime/store",
	}
	deps := goListDeps(t, ".")
	for _, d := range deps {
		for _, f := range forbidden {
			if strings.HasPrefix(d, f) {
				t.Errorf("cmd/astarte-gen links %s", d)
			}
		}
		if d == "github.com/astarte-gen/astarte-gen/runtime" {
			t.Errorf("cmd/astarte-gen links the device runtime")
		}
	}
	if len(deps) < 10 {
		t.Fatalf("go list -deps returned %d packages: %v", len(deps), deps)
	}
}

// TestModelIsALeaf: the model package imports only the standard library.
func TestModelIsALeaf(t *testing.T) {
	for _, d := range goListDeps(t, "github.com/astarte-gen/astarte-gen/runtime/model") {
		if d == "github.com/astarte-gen/astarte-gen/runtime/model" {
			continue
		}
		if first, _, _ := strings.Cut(d, "/"); strings.Contains(first, ".") {
			t.Errorf("runtime/model imports %s, not in the standard library", d)
		}
	}
}
