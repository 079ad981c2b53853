package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// sensors returns an interface file of org.x.S with the given version and
// mappings (JSON objects, comma-separated).
func sensors(major, minor, mappings string) string {
	return `{"interface_name": "org.x.S", "version_major": ` + major + `, "version_minor": ` + minor +
		`, "type": "datastream", "ownership": "device", "mappings": [` + mappings + `]}`
}

const (
	mapV = `{"endpoint": "/v", "type": "double"}`
	mapW = `{"endpoint": "/w", "type": "string"}`
)

func TestBreakingDirectory(t *testing.T) {
	prev, cur := t.TempDir(), t.TempDir()
	write(t, prev, "s.json", sensors("1", "0", mapV+","+mapW))
	write(t, prev, "a.json", valid)
	f := write(t, cur, "s.json", sensors("1", "0", strings.Replace(mapV, "double", "integer", 1)))
	write(t, cur, "a.json", valid)

	code, out, errOut := runCmd("breaking", "--against", prev, cur)
	want := f + ":/mappings/0/type: type of /v changed from double to integer: within a major only doc, description, explicit_timestamp, " +
		"retention and expiry may change (incompatible_endpoint_change); fix: bump the major, or set type back to double\n" +
		f + ":/mappings: mapping /w was removed: devices and data already use it (missing_endpoints); fix: bump the major, or restore the mapping /w\n" +
		f + ":/version_minor: the content changed (/mappings/0/type) but version_minor is still 0 (minor_version_not_increased); fix: raise version_minor to 1\n"
	if code != exitInvalid {
		t.Errorf("exit %d, want %d", code, exitInvalid)
	}
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
	if !strings.Contains(errOut, "Astarte would refuse these interfaces (compared with "+prev+")") {
		t.Errorf("stderr: %q", errOut)
	}

	// A compatible change with a new major ≥ 1 beside it: warnings only.
	write(t, cur, "s.json", sensors("1", "1", mapV+","+mapW+`,{"endpoint": "/x", "type": "double"}`))
	n := write(t, cur, "n.json", strings.Replace(valid, "org.x.A", "org.x.N", 1))
	code, out, _ = runCmd("breaking", "--against", prev, cur)
	want = n + ":/version_major: warning: org.x.N major 1 is new: once installed, Astarte can never delete it (only major 0 can be deleted) (major_not_deletable); fix: keep major 0 while the interface is a draft; release major 1 when it is final\n"
	if code != exitOK || out != want {
		t.Errorf("compatible: exit %d, output:\n%s\nwant:\n%s", code, out, want)
	}

	// Against a single file.
	if code, out, _ := runCmd("breaking", "--against", filepath.Join(prev, "a.json"), filepath.Join(cur, "a.json")); code != exitOK || out != "" {
		t.Errorf("file against file: exit %d, %q", code, out)
	}
}

func TestBreakingInvalidFiles(t *testing.T) {
	prev, cur := t.TempDir(), t.TempDir()
	write(t, prev, "a.json", valid)
	write(t, prev, "broken.json", `{`)
	bad := write(t, cur, "a.json", `{"interface_name": "org.x.A"}`)
	code, out, errOut := runCmd("breaking", "--against", prev, cur)
	if code != exitInvalid || out != bad+":: missing required field: 'version_major', 'version_minor', 'type', 'mappings'\n" {
		t.Errorf("invalid new file: exit %d, output %q", code, out)
	}
	if !strings.Contains(errOut, "previous version "+filepath.Join(prev, "broken.json")+" is not a valid interface; left out") {
		t.Errorf("invalid previous file not reported: %q", errOut)
	}
}

func TestBreakingJSON(t *testing.T) {
	prev, cur := t.TempDir(), t.TempDir()
	write(t, prev, "s.json", sensors("0", "1", mapV+","+mapW))
	write(t, prev, "gone.json", valid)
	f := write(t, cur, "s.json", sensors("0", "2", mapV))
	code, out, _ := runCmd("breaking", "--json", "--against", prev, cur)
	var got []map[string]string
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("--json output is not JSON: %v\n%s", err, out)
	}
	want := []map[string]string{
		{"file": f, "pointer": "/mappings", "severity": "error", "rule": "missing_endpoints",
			"message": "mapping /w was removed: devices and data already use it", "fix": "bump the major, or restore the mapping /w"},
		{"file": filepath.Join(prev, "gone.json"), "pointer": "", "severity": "note", "rule": "interface_removed",
			"message": "org.x.A major 1 is no longer here: Astarte keeps it installed",
			"fix":     "nothing to do: it stays installed, and devices that declare it keep working"},
	}
	if code != exitInvalid {
		t.Errorf("exit %d", code)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("--json (-want +got):\n%s", diff)
	}
	code, out, _ = runCmd("breaking", "--json", "--against", filepath.Join(prev, "s.json"), filepath.Join(prev, "s.json"))
	if code != exitOK || out != "[]\n" {
		t.Errorf("clean: exit %d, %q", code, out)
	}
}

func TestBreakingUsage(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.json", valid)
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no path", []string{"breaking"}, exitUsage, "no PATH given"},
		{"help", []string{"breaking", "-h"}, exitOK, "usage: astarte-gen breaking [--against REF]"},
		{"missing path", []string{"breaking", "--against", dir, "no/such/dir"}, exitUsage, "no such file"},
		{"not a repository", []string{"breaking", dir}, exitUsage, dir + " is not inside a git repository"},
		{"revision outside a repository", []string{"breaking", "--against", "main", dir}, exitUsage,
			"--against main is not a file or directory, and it cannot be a git revision: " + dir + " is not inside a git repository"},
		{"unknown flag", []string{"breaking", "--frob", dir}, exitUsage, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runCmd(tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.msg) {
				t.Errorf("exit %d (want %d), stderr %q, want it to contain %q", code, tt.code, errOut, tt.msg)
			}
		})
	}
	t.Run("no git", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		code, _, errOut := runCmd("breaking", dir)
		if code != exitUsage || !strings.Contains(errOut, "git not found") {
			t.Errorf("exit %d, %q", code, errOut)
		}
	})
}

// gitRepo creates a repository in a temporary directory whose main branch
// holds interfaces/s.json (v1.0, mappings /v and /w) and
// interfaces/a.json, and returns its directory.
func gitRepo(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	dir := t.TempDir()
	t.Setenv("GIT_CONFIG_GLOBAL", filepath.Join(dir, "no-global-config"))
	gitRun(t, dir, "init", "-q", "-b", "main")
	write(t, dir, "interfaces/s.json", sensors("1", "0", mapV+","+mapW))
	write(t, dir, "interfaces/a.json", valid)
	write(t, dir, "README", "not an interface")
	gitRun(t, dir, "add", ".")
	gitRun(t, dir, "commit", "-q", "-m", "first")
	return dir
}

func gitRun(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=Test", "-c", "user.email=test@example.org"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestBreakingGit(t *testing.T) {
	dir := gitRepo(t)
	ifaces := filepath.Join(dir, "interfaces")
	gitRun(t, dir, "checkout", "-q", "-b", "feature")
	s := write(t, dir, "interfaces/s.json", sensors("1", "1", mapV))
	gitRun(t, dir, "rm", "-q", "interfaces/a.json")
	gitRun(t, dir, "commit", "-q", "-am", "second: drop /w and org.x.A")
	base := gitRun(t, dir, "rev-parse", "main")[:12]

	removed := s + ":/mappings: mapping /w was removed: devices and data already use it (missing_endpoints); fix: bump the major, or restore the mapping /w\n"
	note := func(ref string) string {
		return ref + ":interfaces/a.json:: note: org.x.A major 1 is no longer here: Astarte keeps it installed (interface_removed); " +
			"fix: nothing to do: it stays installed, and devices that declare it keep working\n"
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		out, err string
	}{
		{"previous commit", []string{"--against", "HEAD~1", ifaces}, exitInvalid, removed + note("HEAD~1"), "compared with HEAD~1"},
		{"branch", []string{"--against", "main", ifaces}, exitInvalid, removed + note("main"), "compared with main"},
		{"one file", []string{"--against", "main", s}, exitInvalid, removed, ""},
		{"default: merge base with main", []string{ifaces}, exitInvalid, removed + note(base), "compared with " + base},
		{"same commit", []string{"--against", "HEAD", ifaces}, exitOK, "", ""},
		{"unknown revision", []string{"--against", "nosuch", ifaces}, exitUsage, "",
			`"nosuch" is neither a file, a directory nor a git revision of `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCmd(append([]string{"breaking"}, tt.args...)...)
			if code != tt.code || !strings.Contains(errOut, tt.err) {
				t.Errorf("exit %d (want %d), stderr %q, want it to contain %q", code, tt.code, errOut, tt.err)
			}
			if diff := cmp.Diff(tt.out, out); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
		})
	}

	// The working tree counts, not only commits: an uncommitted change of
	// type is refused against HEAD.
	write(t, dir, "interfaces/s.json", sensors("1", "2", strings.Replace(mapV, "double", "integer", 1)))
	if code, out, _ := runCmd("breaking", "--against", "HEAD", ifaces); code != exitInvalid || !strings.Contains(out, "(incompatible_endpoint_change)") {
		t.Errorf("uncommitted change: exit %d, %q", code, out)
	}
}

func TestBreakingGitDefaultBranch(t *testing.T) {
	dir := gitRepo(t)
	gitRun(t, dir, "branch", "-m", "main", "trunk")
	code, _, errOut := runCmd("breaking", filepath.Join(dir, "interfaces"))
	if code != exitUsage || !strings.Contains(errOut, "no default branch (origin/HEAD, main or master) in ") {
		t.Errorf("no default branch: exit %d, %q", code, errOut)
	}
	// A clone knows its default branch from origin/HEAD.
	clone := filepath.Join(t.TempDir(), "clone")
	gitRun(t, dir, "clone", "-q", dir, clone)
	write(t, clone, "interfaces/s.json", sensors("1", "0", mapV))
	code, out, errOut := runCmd("breaking", filepath.Join(clone, "interfaces"))
	if code != exitInvalid || !strings.Contains(out, "(missing_endpoints)") || !strings.Contains(errOut, "compared with "+gitRun(t, dir, "rev-parse", "trunk")[:12]) {
		t.Errorf("clone: exit %d, %q, %q", code, out, errOut)
	}
}
