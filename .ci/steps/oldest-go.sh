#!/usr/bin/env bash
# The go directive in go.mod is the oldest Go the code builds with (Debian 13's
# and Raspberry Pi OS's own `golang-go` is 1.24). `go vet` with a newer Go
# already flags standard-library calls newer than the directive; this also
# type-checks every package and its tests with that exact toolchain, fetched
# from the Go module proxy (about 70 MB, once per machine), so a dependency
# or a language change that needs a newer Go fails here.
set -euo pipefail
oldest=$(go mod edit -json | python3 -c 'import json,sys; print(json.load(sys.stdin)["Go"])')
case "$oldest" in
  *.*.*) ;;
  *) oldest="$oldest.0" ;; # "go 1.24" means 1.24.0
esac
# `go get` raises the directive silently when a new dependency needs a newer
# Go; Debian 13's 1.24 would then refuse to build (or download another Go).
case "$oldest" in
  1.2[0-4].*) ;;
  *) echo "ci: go.mod says go $oldest; Debian 13's golang-go is 1.24: keep the directive at 1.24 (pick dependency versions that allow it)" >&2; exit 1 ;;
esac
echo "ci: go vet with go$oldest, the go directive of go.mod"
GOTOOLCHAIN="go$oldest" go vet ./...
