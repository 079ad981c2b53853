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

const usage = `usage: astarte-gen validate [--json] PATH...
       astarte-gen [generate] -o DIR [-pkg NAME] [-check] PATH...
       astarte-gen breaking [--against REF] [--json] PATH...

Validates Astarte interface files (PATH: a file, or a directory searched
recursively for *.json) against Astarte's rules. Prints one line per problem,
file:pointer: message, or a JSON array with --json.
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
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	asJSON := fs.Bool("json", false, "print diagnostics as a JSON array")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() == 0 {
		fmt.Fprintf(stderr, "astarte-gen validate: no PATH given\n\n%s", usage)
		return exitUsage
	}
	res, err := schema.Load(fs.Args())
	if err != nil {
		fmt.Fprintf(stderr, "astarte-gen validate: %v\n", err)
		return exitUsage
	}
	if *asJSON {
		diags := res.Diagnostics
		if diags == nil {
			diags = []schema.Diagnostic{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(diags); err != nil {
			fmt.Fprintf(stderr, "astarte-gen validate: %v\n", err)
			return exitUsage
		}
	} else {
		for _, d := range res.Diagnostics {
			fmt.Fprintln(stdout, d)
		}
	}
	if len(res.Errors()) > 0 {
		return exitInvalid
	}
	return exitOK
}
