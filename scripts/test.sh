#!/usr/bin/env bash
# The project's test command (README "Testing"): formatting, vet,
# staticcheck and the whole test suite under the race detector. In CI
# (CI=true) it first installs Debian's mosquitto, which the integration
# suite needs and never skips there.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${CI:-}" = "true" ] && ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
	echo "--- installing mosquitto"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq mosquitto >/dev/null
fi
export PATH="$PATH:/usr/sbin"

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

echo "--- go test -race"
# The whole suite under the race detector (runtime changes must be tested
# under -race; users run their own tests with -race against astartetest).
go test -race -timeout 12m ./...
