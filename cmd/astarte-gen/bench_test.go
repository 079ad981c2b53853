package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/astarte-gen/astarte-gen/internal/testcorpus"
)

// BenchmarkCLICorpus generates the whole interface corpus with the command,
// one process per package directory, as go generate runs it, and beside it
// in the same iterations starts the same command with --help as many
// times. It reports both per corpus and their ratio, gen/help: what
// generation costs beyond starting the command.
//
//   - go-run: through `go run github.com/astarte-gen/astarte-gen/cmd/astarte-gen`,
//     the //go:generate line README and the examples give, into output
//     directories a first run made (every go generate after the first);
//   - binary: the built command run directly, into those directories;
//   - binary-new-dirs: the built command into new directories, so that every
//     directory and file is created (a first go generate), which on some
//     filesystems costs more than generating; BenchmarkGenerateCorpus
//     reports that share.
func BenchmarkCLICorpus(b *testing.B) {
	dirs := testcorpus.SourceDirs(b)
	bin := filepath.Join(b.TempDir(), "astarte-gen")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	goRun := []string{"go", "run", "github.com/astarte-gen/astarte-gen/cmd/astarte-gen"}
	b.Run("go-run", func(b *testing.B) { benchCLI(b, goRun, dirs, false) })
	b.Run("binary", func(b *testing.B) { benchCLI(b, []string{bin}, dirs, false) })
	b.Run("binary-new-dirs", func(b *testing.B) { benchCLI(b, []string{bin}, dirs, true) })
}

// benchCLI runs command for each of dirs per iteration, into one output
// directory each (new ones per iteration when fresh), then command --help
// as many times.
func benchCLI(b *testing.B, command []string, dirs []string, fresh bool) {
	out := b.TempDir()
	generate := func(iter int) {
		for i, dir := range dirs {
			dst := filepath.Join(out, fmt.Sprintf("i%d", iter), fmt.Sprintf("p%d", i))
			runCommand(b, command, "-o", dst, "-pkg", "p", dir)
		}
	}
	if !fresh {
		generate(0) // the first run, which creates the files
	}
	var gen, help time.Duration
	iter := 0
	for b.Loop() {
		iter++
		start := time.Now()
		if fresh {
			generate(iter)
		} else {
			generate(0)
		}
		gen += time.Since(start)
		start = time.Now()
		for range dirs {
			runCommand(b, command, "--help")
		}
		help += time.Since(start)
	}
	b.ReportMetric(gen.Seconds()*1000/float64(iter), "gen-ms/corpus")
	b.ReportMetric(help.Seconds()*1000/float64(iter), "help-ms/corpus")
	b.ReportMetric(float64(gen)/float64(help), "gen/help")
}

func runCommand(b *testing.B, command []string, args ...string) {
	cmd := exec.Command(command[0], append(command[1:], args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%v %v: %v\n%s", command, args, err, out)
	}
}
