package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/astarte-gen/astarte-gen/internal/testcorpus"
)

// BenchmarkCLICorpus generates the whole interface corpus the way users
// run the generator: the built command, one process per package directory
// (as go generate runs it), each into a new output directory so every
// file is written. Beside it, in the same iterations, it starts the same
// command with --help as many times. It reports both per corpus and their
// ratio, gen/help: what generation costs beyond starting the binary.
func BenchmarkCLICorpus(b *testing.B) {
	dirs := testcorpus.SourceDirs(b)
	bin := filepath.Join(b.TempDir(), "astarte-gen")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	out := b.TempDir()
	var gen, help time.Duration
	iter := 0
	for b.Loop() {
		iter++
		start := time.Now()
		for i, dir := range dirs {
			dst := filepath.Join(out, fmt.Sprintf("i%d", iter), fmt.Sprintf("p%d", i))
			runBin(b, bin, "-o", dst, "-pkg", "p", dir)
		}
		gen += time.Since(start)
		start = time.Now()
		for range dirs {
			runBin(b, bin, "--help")
		}
		help += time.Since(start)
	}
	b.ReportMetric(gen.Seconds()*1000/float64(iter), "gen-ms/corpus")
	b.ReportMetric(help.Seconds()*1000/float64(iter), "help-ms/corpus")
	b.ReportMetric(float64(gen)/float64(help), "gen/help")
}

func runBin(b *testing.B, bin string, args ...string) {
	cmd := exec.Command(bin, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%s %v: %v\n%s", bin, args, err, out)
	}
}
