package main

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"

	"github.com/astarte-gen/astarte-gen/gen"
	"github.com/astarte-gen/astarte-gen/schema"
)

const generateUsage = `usage: astarte-gen [generate] -o DIR [-pkg NAME] [-check] PATH...

Validates the interface files (as validate does; nothing is written if any is
invalid) and writes one Go file per interface plus astarte.go into DIR.
-pkg defaults to the base name of DIR. -check writes nothing and exits 1,
listing the files that differ, when DIR is not up to date.
`

// runGenerate implements "astarte-gen generate" (and the bare form).
func runGenerate(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("generate", generateUsage, stderr)
	out := fs.String("o", "", "output directory")
	pkg := fs.String("pkg", "", "Go package name (default: base name of -o)")
	check := fs.Bool("check", false, "write nothing; exit 1 if the output is not up to date")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return exitOK
		}
		return exitUsage
	}
	if *out == "" || fs.NArg() == 0 {
		fmt.Fprint(stderr, generateUsage)
		return exitUsage
	}
	if *pkg == "" {
		abs, err := filepath.Abs(*out)
		if err != nil {
			fmt.Fprintf(stderr, "astarte-gen: %v\n", err)
			return exitUsage
		}
		*pkg = strings.NewReplacer("-", "", ".", "").Replace(filepath.Base(abs))
	}
	paths, err := schema.PackageFiles(fs.Args())
	if err == nil && len(paths) == 0 {
		err = fmt.Errorf("no *.json interface files in %s", strings.Join(fs.Args(), " "))
	}
	if err != nil {
		fmt.Fprintf(stderr, "astarte-gen: %v\n", err)
		return exitUsage
	}
	res, err := schema.LoadFiles(paths)
	if err != nil {
		fmt.Fprintf(stderr, "astarte-gen: %v\n", err)
		return exitUsage
	}
	for _, d := range res.Diagnostics {
		fmt.Fprintln(stderr, d)
	}
	if len(res.Errors()) > 0 {
		return exitInvalid
	}
	inputs := make([]gen.Input, len(res.Interfaces))
	for i, l := range res.Interfaces {
		src, err := gen.SourcePath(*out, l.File)
		if err != nil {
			fmt.Fprintf(stderr, "astarte-gen: %v\n", err)
			return exitUsage
		}
		inputs[i] = gen.Input{Source: src, Interface: l.Interface}
	}
	files, err := gen.Generate(gen.Config{Package: *pkg, Version: generatorVersion()}, inputs)
	if err != nil {
		fmt.Fprintf(stderr, "astarte-gen: %v\n", err)
		return exitInvalid
	}
	changed, err := gen.Write(*out, files, *check)
	if err != nil {
		fmt.Fprintf(stderr, "astarte-gen: %v\n", err)
		return exitUsage
	}
	if *check && len(changed) > 0 {
		for _, name := range changed {
			fmt.Fprintf(stdout, "%s is not up to date\n", filepath.Join(*out, name))
		}
		fmt.Fprintln(stderr, "astarte-gen: generated code is stale; run go generate")
		return exitInvalid
	}
	return exitOK
}

// generatorVersion is the version of the astarte-gen module this binary
// was built from: its release when it comes from a module download (go
// tool, go run pkg@version), "(devel)" when built inside a working tree,
// whose VCS-stamped pseudo-version would change the output at every
// commit.
func generatorVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "(devel)"
	}
	v := info.Main.Version
	if info.Main.Path != modulePath {
		for _, dep := range info.Deps {
			if dep.Path == modulePath {
				v = dep.Version
			}
		}
	}
	if v == "" || strings.Contains(v, "+") || pseudoVersion.MatchString(v) {
		return "(devel)"
	}
	return v
}

const modulePath = "github.com/astarte-gen/astarte-gen"

// pseudoVersion matches the time-and-commit suffix of a Go pseudo-version.
var pseudoVersion = regexp.MustCompile(`\d{14}-[0-9a-f]{12}$`)
