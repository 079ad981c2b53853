#!/usr/bin/env bash
# The project's test command (README "Testing"): formatting, vet,
# staticcheck, a build of every target of README "Platforms", the whole
# test suite under the race detector, and again on 32-bit (GOARCH=386). In CI
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

echo "--- cross-build"
# Every target of README "Platforms", without cgo: go build compiles every
# package and links the commands, go vet type-checks every package with its
# tests at the target's word size and byte order (and its build-tagged
# files), and go list -test -export compiles every test package with the
# real compiler. All three are cached; test binaries are linked and run on
# amd64 and 386 only.
for target in linux/arm/6 linux/arm/7 linux/arm64 linux/mipsle linux/mips linux/riscv64 linux/386 windows/amd64 darwin/arm64; do
	IFS=/ read -r goos goarch goarm <<<"$target"
	echo "$target"
	CGO_ENABLED=0 GOOS="$goos" GOARCH="$goarch" GOARM="${goarm:-}" go build ./...
	CGO_ENABLED=0 GOOS="$goos" GOARCH="$goarch" GOARM="${goarm:-}" go vet ./...
	CGO_ENABLED=0 GOOS="$goos" GOARCH="$goarch" GOARM="${goarm:-}" go list -test -export ./... >/dev/null
done

echo "--- go test -race"
# The whole suite under the race detector (runtime changes must be tested
# under -race; users run their own tests with -race against astartetest).
go test -race -timeout 12m ./...

echo "--- go test (GOARCH=386)"
# The unit and end-to-end tests on a 32-bit target, which runs natively
# on amd64 (the race detector does not support 386).
CGO_ENABLED=0 GOARCH=386 go test -timeout 12m ./...
