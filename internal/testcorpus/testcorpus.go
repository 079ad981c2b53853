// Package testcorpus locates the third-party interface corpus that tests read
// in place (../shared/interfaces-corpus beside the repository, or the
// directory named by ASTARTE_CORPUS) and skips a test when it is absent.
package testcorpus

import (
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// Dir returns the corpus directory, or skips t with a message saying where
// it looked.
func Dir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("ASTARTE_CORPUS")
	if dir == "" {
		_, file, _, _ := runtime.Caller(0)
		// file is <root>/internal/testcorpus/testcorpus.go.
		root := filepath.Dir(filepath.Dir(filepath.Dir(file)))
		dir = filepath.Join(root, "..", "shared", "interfaces-corpus")
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		t.Skipf("interface corpus not found at %s (set ASTARTE_CORPUS to its path): skipping", dir)
	}
	return dir
}

// Files returns every interface file (*.json) of the corpus except the
// reference schema, sorted.
func Files(t testing.TB) []string {
	t.Helper()
	var files []string
	for _, d := range SourceDirs(t) {
		entries, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if !e.IsDir() && strings.HasSuffix(e.Name(), ".json") {
				files = append(files, filepath.Join(d, e.Name()))
			}
		}
	}
	slices.Sort(files)
	return files
}

// SourceDirs returns each directory of the corpus that directly holds
// interface files (one package's worth each), sorted, without the reference
// schema.
func SourceDirs(t testing.TB) []string {
	t.Helper()
	root := Dir(t)
	seen := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "reference-schema" {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".json") {
			seen[filepath.Dir(path)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	dirs := make([]string, 0, len(seen))
	for d := range seen {
		dirs = append(dirs, d)
	}
	slices.Sort(dirs)
	return dirs
}
