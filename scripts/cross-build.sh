#!/usr/bin/env bash
# cross-build.sh DIR: mosqprov for the four release targets, with the
# release's flags (CGO_ENABLED=0 -trimpath -ldflags "-s -w", as in
# .goreleaser.yaml), as DIR/mosqprov-linux-{amd64,arm64,armv7,armv6}.
# .ci/steps/ship.sh and bench/sizes.sh both build through it, so the two
# can't disagree about what a release binary is.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/cross-build.sh DIR}
mkdir -p "$out"
for t in amd64 arm64 armv7 armv6; do
  arch=$t arm=
  case $t in armv*) arch=arm arm=${t#armv} ;; esac
  echo "cross-build: linux/$t"
  CGO_ENABLED=0 GOOS=linux GOARCH=$arch GOARM=$arm go build -trimpath -ldflags "-s -w" \
    -o "$out/mosqprov-linux-$t" ./cmd/mosqprov
done
