// Package gencheck lets a generated package test that it is up to date: it
// reruns the package's own //go:generate astarte-gen line with -check.
package gencheck

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const marker = "//go:generate go run github.com/astarte-gen/astarte-gen/cmd/astarte-gen "

// Check fails t if running the astarte-gen //go:generate line of the
// current directory's package with -check reports stale files.
func Check(t *testing.T) {
	t.Helper()
	args := generateArgs(t)
	cmd := exec.Command("go", append([]string{"run", "github.com/astarte-gen/astarte-gen/cmd/astarte-gen"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("generated code is not up to date (run go generate): %v\n%s", err, out)
	}
}

// generateArgs finds the astarte-gen //go:generate line and adds -check
// after the subcommand.
func generateArgs(t *testing.T) []string {
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), marker); ok {
				fh.Close()
				args := strings.Fields(rest)
				if len(args) > 0 && args[0] == "generate" {
					return append([]string{"generate", "-check"}, args[1:]...)
				}
				return append([]string{"-check"}, args...)
			}
		}
		fh.Close()
	}
	t.Fatal("no //go:generate astarte-gen line in this package")
	return nil
}
