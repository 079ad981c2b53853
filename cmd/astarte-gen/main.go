// Command astarte-gen validates Astarte interface files the way an Astarte
// server does and generates typed Go code for them.
//
// Usage:
//
//	astarte-gen validate [--strict] [--json] PATH...
//	astarte-gen [generate] -o DIR [-pkg NAME] [-check] PATH...
//	astarte-gen breaking [--against REF] [--json] PATH...
//
// generate validates like validate (nothing is written if any file is
// invalid), then writes one Go file per interface plus astarte.go into DIR;
// -check writes nothing and exits 1 listing stale files.
//
// PATH is an interface file or a directory, searched recursively for *.json.
// Each problem is printed as "file:pointer: message" (warnings as
// "file:pointer: warning: message"), warnings included when the same file
// has errors; --json prints them as a JSON array instead. On success,
// validate prints "N interfaces valid". --strict turns warnings (unknown
// fields, legacy spellings, a file not named <interface_name>.json) into
// errors. The exit status is 0 when every file is valid, 1 when any is
// invalid, and 2 for usage or I/O errors.
//
// breaking compares every interface under PATH with its previous version —
// REF: a directory or file, or a git revision of the repository holding
// PATH; by default the merge base with the default branch — matched by
// name and major, and reports each change Astarte would refuse with the
// platform's error name and a fix, plus warnings and notes. It exits 0
// when nothing would be refused, 1 otherwise, 2 for usage or I/O errors.
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
