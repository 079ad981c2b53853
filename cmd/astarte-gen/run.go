package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/astarte-gen/astarte-gen/schema"
)

// Exit statuses.
const (
	exitOK      = 0
	exitInvalid = 1
	exitUsage   = 2
)

const usage = `usage: astarte-gen validate [--strict] [--json] PATH...
       astarte-gen [generate] -o DIR [-pkg NAME] [-check] PATH...
       astarte-gen breaking [--against REF] [--json] PATH...

Validates Astarte interface files (PATH: a file, or a directory searched
recursively for *.json) against Astarte's rules. Prints one line per problem,
file:pointer: message, or a JSON array with --json, then "N interfaces valid"
on success. Warnings (ignored fields, legacy spellings, a file name other than
<interface_name>.json) are printed with the errors; --strict makes them errors.
Exit status: 0 all valid, 1 some invalid, 2 usage or I/O error.
breaking reports the changes Astarte would refuse against a previous version
(astarte-gen breaking -h).
`

// run is the whole command, testable with buffers.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	switch {
	case args[0] == "validate":
		return runValidate(args[1:], stdout, stderr)
	case args[0] == "generate":
		return runGenerate(args[1:], stdout, stderr)
	case args[0] == "breaking":
		return runBreaking(args[1:], stdout, stderr)
	case strings.HasPrefix(args[0], "-"):
		return runGenerate(args, stdout, stderr)
	}
	fmt.Fprintf(stderr, "astarte-gen: unknown command %q\n\n%s", args[0], usage)
	return exitUsage
}

func runValidate(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("validate", usage, stderr)
	asJSON := fs.Bool("json", false, "print diagnostics as a JSON array")
	strict := fs.Bool("strict", false, "treat warnings as errors")
	if code, ok := parsePaths(fs, args, usage, stderr); !ok {
		return code
	}
	res, err := schema.Load(fs.Args())
	if err != nil {
		fmt.Fprintf(stderr, "astarte-gen validate: %v\n", err)
		return exitUsage
	}
	if *strict {
		res.Strict()
	}
	if err := printAll(stdout, res.Diagnostics, *asJSON); err != nil {
		fmt.Fprintf(stderr, "astarte-gen validate: %v\n", err)
		return exitUsage
	}
	if len(res.Errors()) > 0 {
		return exitInvalid
	}
	if !*asJSON {
		fmt.Fprintln(stdout, summary(len(res.Interfaces), len(res.Diagnostics)))
	}
	return exitOK
}

// summary is the line validate prints on success.
func summary(valid, warnings int) string {
	s := fmt.Sprintf("%d interfaces valid", valid)
	if valid == 1 {
		s = "1 interface valid"
	}
	switch warnings {
	case 0:
		return s
	case 1:
		return s + ", 1 warning"
	}
	return fmt.Sprintf("%s, %d warnings", s, warnings)
}

// newFlagSet returns the flag set of a subcommand, which prints usage on
// -h and on bad flags.
func newFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	return fs
}

// parsePaths parses the flags of a subcommand that needs at least one
// PATH. When ok is false the command is over and exits with code.
func parsePaths(fs *flag.FlagSet, args []string, usage string, stderr io.Writer) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return exitOK, false
		}
		return exitUsage, false
	}
	if fs.NArg() == 0 {
		fmt.Fprintf(stderr, "astarte-gen %s: no PATH given\n\n%s", fs.Name(), usage)
		return exitUsage, false
	}
	return exitOK, true
}

// printAll writes items one per line, or as an indented JSON array
// (empty, never null, when there are none).
func printAll[T fmt.Stringer](w io.Writer, items []T, asJSON bool) error {
	if !asJSON {
		for _, item := range items {
			fmt.Fprintln(w, item)
		}
		return nil
	}
	if items == nil {
		items = []T{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(items)
}
