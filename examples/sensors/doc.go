// Package sensors is an example of generated code: astarte-gen turns the
// interface files in ./interfaces into the typed API of this package.
package sensors

//go:generate go run github.com/astarte-gen/astarte-gen/cmd/astarte-gen -o . -pkg sensors ./interfaces
