// Package testifaces is the code astarte-gen generates for
// testdata/interfaces, compiled and used by the end-to-end tests of the
// generated API.
package testifaces

//go:generate go run github.com/astarte-gen/astarte-gen/cmd/astarte-gen generate -o . -pkg testifaces ../../testdata/interfaces
