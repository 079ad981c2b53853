//go:build unix

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSpecialFilesRefused: in a repository, a *.json symlink to /dev/zero,
// a FIFO, a directory and an oversized file are each an error naming the
// file and the rule; nothing is read from them (no growth until out of
// memory, no hang), and the valid file beside them is still checked.
func TestSpecialFilesRefused(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "org.x.A.json", valid) // named as its interface: no warning
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "zero.json")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.json"), 0o644); err != nil {
		t.Skipf("no FIFO here: %v", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "dir.json"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, dir, "dir.json/org.x.B.json", strings.Replace(valid, "org.x.A", "org.x.B", 1))
	write(t, dir, "huge.json", valid+strings.Repeat(" ", 4<<20))
	for _, cmd := range []string{"validate", "generate"} {
		args := []string{cmd, dir}
		if cmd == "generate" {
			args = []string{cmd, "-o", t.TempDir(), "-pkg", "x", dir}
		}
		type result struct {
			code      int
			out, errs string
		}
		done := make(chan result, 1)
		go func() {
			code, out, errs := runCmd(args...)
			done <- result{code, out, errs}
		}()
		var r result
		select {
		case r = <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s hung on a special file", cmd)
		}
		if r.code != exitInvalid {
			t.Errorf("%s: exit %d, want %d\n%s%s", cmd, r.code, exitInvalid, r.out, r.errs)
		}
		for _, want := range []string{
			"zero.json:: not a regular file (a character device)",
			"fifo.json:: not a regular file (a FIFO)",
			fmt.Sprintf("huge.json:: file of %d bytes exceeds the 4194304-byte limit", len(valid)+4<<20),
		} {
			if !strings.Contains(r.out+r.errs, want) {
				t.Errorf("%s: no %q in output:\n%s%s", cmd, want, r.out, r.errs)
			}
		}
		if strings.Contains(r.out+r.errs, "org.x.A.json") || strings.Contains(r.out+r.errs, "org.x.B.json") {
			t.Errorf("%s: a valid file was reported:\n%s%s", cmd, r.out, r.errs)
		}
	}
}
