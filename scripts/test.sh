#!/usr/bin/env bash
# The project's test command (README "Testing"): formatting, vet,
# staticcheck and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "--- gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "--- go vet"
go vet ./...

echo "--- staticcheck"
if ! command -v staticcheck >/dev/null 2>&1; then
	GOBIN="$(go env GOPATH)/bin" go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
	PATH="$(go env GOPATH)/bin:$PATH"
fi
staticcheck ./...

echo "--- go test"
go test -timeout 8m ./...
