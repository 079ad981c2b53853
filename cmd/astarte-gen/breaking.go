package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/astarte-gen/astarte-gen/schema"
)

const breakingUsage = `usage: astarte-gen breaking [--against REF] [--json] PATH...

Compares every interface under PATH with its previous version and reports each
change Astarte would refuse (file:pointer: message (platform error); fix: …),
plus warnings and notes. Interfaces are matched by name and major.
REF is a directory or file of previous interfaces, or a git revision (main,
v1.2.0, HEAD~1) read from the repository that contains PATH. Without
--against, inside git: the merge base of HEAD with the default branch
(origin/HEAD, else main, else master).
Exit status: 0 nothing refused (warnings allowed), 1 a change would be
refused, 2 usage or I/O error.
`

// errNoGit: the git command is not installed.
var errNoGit = errors.New("git not found: install git, or give --against a directory of previous interfaces")

// runBreaking implements "astarte-gen breaking".
func runBreaking(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("breaking", breakingUsage, stderr)
	against := fs.String("against", "", "previous interfaces: a directory, a file or a git revision")
	asJSON := fs.Bool("json", false, "print findings as a JSON array")
	if code, ok := parsePaths(fs, args, breakingUsage, stderr); !ok {
		return code
	}
	current, err := schema.Load(fs.Args())
	if err != nil {
		fmt.Fprintf(stderr, "astarte-gen breaking: %v\n", err)
		return exitUsage
	}
	previous, ref, err := loadPrevious(*against, fs.Args(), stderr)
	if err != nil {
		fmt.Fprintf(stderr, "astarte-gen breaking: %v\n", err)
		return exitUsage
	}
	findings := compareWith(previous, current)
	if err := printAll(stdout, findings, *asJSON); err != nil {
		fmt.Fprintf(stderr, "astarte-gen breaking: %v\n", err)
		return exitUsage
	}
	if schema.Refused(findings) {
		fmt.Fprintf(stderr, "astarte-gen breaking: Astarte would refuse these interfaces (compared with %s)\n", ref)
		return exitInvalid
	}
	return exitOK
}

// compareWith reports the invalid files of current as they are, then
// compares its valid ones with previous. An invalid file hides which
// interface it holds, so "no longer here" notes are left out then.
func compareWith(previous []schema.Loaded, current *schema.Result) []schema.Finding {
	var findings []schema.Finding
	invalid := current.Errors()
	for _, d := range invalid {
		findings = append(findings, schema.Finding{Diagnostic: d})
	}
	for _, f := range schema.CompareSets(previous, current.Interfaces) {
		if len(invalid) == 0 || f.Rule != schema.RuleInterfaceRemoved {
			findings = append(findings, f)
		}
	}
	return findings
}

// loadPrevious loads the previous interfaces named by against (a path, or
// a git revision of the repository holding paths; the merge base with the
// default branch when empty). It returns them with a name for messages.
func loadPrevious(against string, paths []string, stderr io.Writer) ([]schema.Loaded, string, error) {
	if against != "" {
		if _, err := os.Stat(against); err == nil {
			res, err := schema.Load([]string{against})
			if err != nil {
				return nil, "", err
			}
			reportSkipped(stderr, res.Errors())
			return res.Interfaces, against, nil
		}
	}
	top, rels, err := repository(paths)
	if err != nil {
		if against != "" {
			return nil, "", fmt.Errorf("--against %s is not a file or directory, and it cannot be a git revision: %w", against, err)
		}
		return nil, "", fmt.Errorf("give --against (a directory or a git revision): %w", err)
	}
	ref := against
	if ref == "" {
		if ref, err = defaultBase(top); err != nil {
			return nil, "", err
		}
	}
	previous, err := gitLoad(top, ref, rels, stderr)
	return previous, ref, err
}

// reportSkipped says which previous files are left out because they are
// not valid interfaces (Astarte cannot have installed them).
func reportSkipped(stderr io.Writer, diags []schema.Diagnostic) {
	seen := map[string]bool{}
	for _, d := range diags {
		if !seen[d.File] {
			seen[d.File] = true
			fmt.Fprintf(stderr, "astarte-gen breaking: previous version %s is not a valid interface; left out\n", d.File)
		}
	}
}

// git runs git in dir and returns its standard output.
func git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	out, err := cmd.Output()
	if errors.Is(err, exec.ErrNotFound) {
		return "", errNoGit
	}
	if err != nil {
		msg := strings.TrimSpace(errOut.String())
		if msg == "" {
			msg = err.Error()
		}
		return "", fmt.Errorf("git %s: %s", strings.Join(args, " "), msg)
	}
	return string(out), nil
}

// repository returns the top directory of the git repository holding
// every path, and each path relative to it.
func repository(paths []string) (top string, rels []string, err error) {
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err == nil {
			abs, err = filepath.EvalSymlinks(abs)
		}
		if err != nil {
			return "", nil, err
		}
		dir := abs
		if st, err := os.Stat(abs); err == nil && !st.IsDir() {
			dir = filepath.Dir(abs)
		}
		out, err := git(dir, "rev-parse", "--show-toplevel")
		if errors.Is(err, errNoGit) {
			return "", nil, err
		}
		if err != nil {
			return "", nil, fmt.Errorf("%s is not inside a git repository", p)
		}
		t := strings.TrimSpace(out)
		if top != "" && t != top {
			return "", nil, fmt.Errorf("%s and %s are in different git repositories", paths[0], p)
		}
		top = t
		rel, err := filepath.Rel(top, abs)
		if err != nil {
			return "", nil, err
		}
		rels = append(rels, filepath.ToSlash(rel))
	}
	return top, rels, nil
}

// defaultBase returns the merge base of HEAD with the default branch:
// origin/HEAD, else main, else master.
func defaultBase(top string) (string, error) {
	branch := ""
	if out, err := git(top, "symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD"); err == nil {
		branch = strings.TrimSpace(out)
	} else {
		for _, b := range []string{"main", "master"} {
			if _, err := git(top, "rev-parse", "--verify", "--quiet", b+"^{commit}"); err == nil {
				branch = b
				break
			}
		}
	}
	if branch == "" {
		return "", fmt.Errorf("no default branch (origin/HEAD, main or master) in %s: give --against", top)
	}
	out, err := git(top, "merge-base", "HEAD", branch)
	if err != nil {
		return "", fmt.Errorf("no merge base of HEAD and %s: %w", branch, err)
	}
	base := strings.TrimSpace(out)
	if len(base) > 12 {
		base = base[:12] // shorter in messages; unique in any real repository
	}
	return base, nil
}

// gitLoad parses the *.json files under rels at revision ref of the
// repository at top, naming each "ref:path".
func gitLoad(top, ref string, rels []string, stderr io.Writer) ([]schema.Loaded, error) {
	commit, err := git(top, "rev-parse", "--verify", "--quiet", ref+"^{commit}")
	if err != nil {
		return nil, fmt.Errorf("%q is neither a file, a directory nor a git revision of %s", ref, top)
	}
	commit = strings.TrimSpace(commit)
	out, err := git(top, append([]string{"ls-tree", "-r", "-z", "--name-only", commit, "--"}, rels...)...)
	if err != nil {
		return nil, err
	}
	var previous []schema.Loaded
	var invalid []schema.Diagnostic
	for _, path := range strings.Split(out, "\x00") {
		if !strings.HasSuffix(path, ".json") {
			continue
		}
		data, err := git(top, "cat-file", "blob", commit+":"+path)
		if err != nil {
			return nil, err
		}
		name := ref + ":" + path
		iface, err := schema.Parse(name, []byte(data))
		if err != nil {
			var e *schema.Error
			if errors.As(err, &e) {
				invalid = append(invalid, e.Diagnostics...)
			}
			continue
		}
		previous = append(previous, schema.Loaded{File: name, Interface: iface})
	}
	reportSkipped(stderr, invalid)
	return previous, nil
}
