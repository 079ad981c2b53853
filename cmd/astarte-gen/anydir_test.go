package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// readDir returns the files of dir by name.
func readDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = string(data)
	}
	return files
}

// TestGenerateFromAnyDirectory: generating from the module root, from the
// package directory (where go generate runs), and with absolute paths
// gives the same bytes, with the source relative to the output directory;
// -check passes in all four ways.
func TestGenerateFromAnyDirectory(t *testing.T) {
	root := t.TempDir()
	write(t, root, "interfaces/org.x.A.json", valid)
	api := filepath.Join(root, "api")
	ways := []struct {
		name, cwd string
		args      []string
	}{
		{"module root, relative", root, []string{"-o", "api", "-pkg", "api", "interfaces"}},
		{"package dir, relative", api, []string{"-o", ".", "-pkg", "api", "../interfaces"}},
		{"absolute paths", t.TempDir(), []string{"-o", api, "-pkg", "api", filepath.Join(root, "interfaces")}},
		{"package dir, absolute input", api, []string{"-o", ".", "-pkg", "api", filepath.Join(root, "interfaces", "org.x.A.json")}},
	}
	var first map[string]string
	for _, w := range ways {
		if err := os.RemoveAll(api); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(api, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Chdir(w.cwd)
		if code, _, errOut := runCmd(append([]string{"generate"}, w.args...)...); code != exitOK {
			t.Fatalf("%s: exit %d: %s", w.name, code, errOut)
		}
		got := readDir(t, api)
		if first == nil {
			first = got
			src := got["org_x_a.go"]
			if !strings.Contains(src, "\n// Source: ../interfaces/org.x.A.json\n") || strings.Contains(src, root) {
				t.Errorf("header does not name the source relative to the output:\n%s", src[:200])
			}
			if !strings.Contains(src, "\n// Generator: astarte-gen ") {
				t.Errorf("header does not name the generator version:\n%s", src[:200])
			}
		} else if diff := cmp.Diff(first, got); diff != "" {
			t.Errorf("%s: output differs from the first way (-first +this):\n%s", w.name, diff)
		}
	}
	for _, w := range ways {
		t.Chdir(w.cwd)
		if code, out, errOut := runCmd(append([]string{"generate", "-check"}, w.args...)...); code != exitOK {
			t.Errorf("%s: -check: exit %d: %s%s", w.name, code, out, errOut)
		}
	}
}
