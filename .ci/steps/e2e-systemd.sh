#!/usr/bin/env bash
# Says up front whether the end-to-end tests in a real systemd
# (internal/nspawn, internal/e2e, pkg/plan, pkg/doctor) will run: `go test
# ./...` prints nothing about a skipped test in a package that passes, so a
# skip would go unseen.
set -euo pipefail
missing=()
[ "$(id -u)" = 0 ] || missing+=("root")
for bin in systemd-nspawn debootstrap zstd nsenter; do
  command -v "$bin" >/dev/null || missing+=("$bin")
done
if ((${#missing[@]})); then
  echo "ci: WARNING: end-to-end tests in a real systemd will NOT run (missing: ${missing[*]})"
  if [ "${CI:-}" = true ]; then echo "ci: CI=true, so they will fail"; fi
else
  cache=${MOSQPROV_E2E_CACHE:-/var/cache/mosqprov-e2e}
  cached=$(cd "$cache" 2>/dev/null && ls *.tar.zst 2>/dev/null | tr '\n' ' ' || true)
  echo "ci: end-to-end tests in a real systemd will run on bookworm and trixie, and mosquitto 2.1 in a sid chroot; trees cached in $cache: ${cached:-none yet (each is built once with debootstrap, minutes)}"
fi
