package schema

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/astarte-gen/astarte-gen/internal/testcorpus"
)

// TestCorpusValidates requires every real interface of the shared corpus to
// be accepted (warnings allowed).
func TestCorpusValidates(t *testing.T) {
	files := testcorpus.Files(t)
	if len(files) != 125 {
		t.Errorf("corpus has %d files, want 125", len(files))
	}
	warnings := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(testcorpus.Dir(t), f)
		_, warns, err := ParseWithWarnings(rel, data)
		if err != nil {
			t.Errorf("%v", err)
		}
		for _, w := range warns {
			t.Log(w)
		}
		warnings += len(warns)
	}
	t.Logf("%d corpus files valid, %d warnings", len(files), warnings)
}
