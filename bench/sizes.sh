#!/usr/bin/env bash
# sizes.sh [BINDIR]: the stripped size of mosqprov for each release target and
# the size of each .deb in dist/ (from `goreleaser release --snapshot --clean`).
# BINDIR holds mosqprov-linux-{amd64,arm64,armv7,armv6} (.ci/steps/ship.sh
# passes its cross builds); without it scripts/cross-build.sh builds them here.
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(amd64 arm64 armv7 armv6)
bindir=${1:-}
if [ -z "$bindir" ]; then
  bindir=$(mktemp -d)
  trap 'rm -rf "$bindir"' EXIT
  scripts/cross-build.sh "$bindir" >/dev/null
fi
mib() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1048576 }'; }
printf '%-24s %10s %8s\n' "stripped binary" bytes MiB
for t in "${targets[@]}"; do
  s=$(stat -c %s "$bindir/mosqprov-linux-$t")
  printf '%-24s %10d %8s\n' "linux/$t" "$s" "$(mib "$s")"
done
shopt -s nullglob
debs=(dist/*.deb)
if ((${#debs[@]})); then
  printf '\n%-44s %10s %8s %14s\n' ".deb" bytes MiB "installed KiB"
  for d in "${debs[@]}"; do
    s=$(stat -c %s "$d")
    printf '%-44s %10d %8s %14s\n' "$(basename "$d")" "$s" "$(mib "$s")" "$(dpkg-deb -f "$d" Installed-Size)"
  done
else
  echo "(no dist/*.deb: run goreleaser release --snapshot --clean for the .deb sizes)"
fi
