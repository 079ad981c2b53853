// Command astarte-gen validates Astarte interface files the way an Astarte
// server does.
//
// Usage:
//
//	astarte-gen validate [--json] PATH...
//
// PATH is an interface file or a directory, searched recursively for *.json.
// Each problem is printed as "file:pointer: message" (warnings as
// "file:pointer: warning: message"); --json prints them as a JSON array
// instead. The exit status is 0 when every file is valid, 1 when any is
// invalid, and 2 for usage or I/O errors.
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
