// Package api is the typed API astarte-gen generates from the quickstart's
// interfaces (../interfaces).
package api

//go:generate go run github.com/astarte-gen/astarte-gen/cmd/astarte-gen -o . -pkg api ../interfaces
