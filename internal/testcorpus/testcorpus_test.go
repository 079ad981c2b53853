package testcorpus

import "testing"

func TestCorpusHas125Files(t *testing.T) {
	if n := len(Files(t)); n != 125 {
		t.Errorf("corpus has %d interface files, MANIFEST.md says 125", n)
	}
}
