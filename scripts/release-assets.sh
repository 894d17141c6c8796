#!/usr/bin/env bash
# release-assets.sh [VERSION COMMIT DATE]: shell completions and man pages for
# the archives and the .deb, generated from the command tree of a host build of
# the same source, so they always match the commands that exist.
# GoReleaser's before hook runs it (.goreleaser.yaml); output goes to gen/,
# with the .deb's Debian files (changelog, lintian overrides) in gen/deb.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:-} commit=${2:-} date=${3:-}
out=gen
rm -rf "$out"
mkdir -p "$out/completions" "$out/man"
pkg=github.com/mosqprov/mosqprov/pkg/cli
# Same -X values as the release binaries: the man pages' footer names the
# version and is dated by the commit, so a rebuild gives the same bytes.
ldflags="-X $pkg.version=$version -X $pkg.commit=$commit -X $pkg.date=$date"
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/mosqprov" ./cmd/mosqprov
"$out/mosqprov" completion bash >"$out/completions/mosqprov.bash"
"$out/mosqprov" completion zsh >"$out/completions/_mosqprov"
"$out/mosqprov" completion fish >"$out/completions/mosqprov.fish"
# The man pages come from a program of their own (internal/cmd/gen-docs), so
# mosqprov doesn't link the renderers: the same command tree, one page per
# visible command.
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/gen-docs" ./internal/cmd/gen-docs
"$out/gen-docs" --dir "$out/man" --gzip >/dev/null
rm "$out/mosqprov" "$out/gen-docs"

# Debian's /usr/share/doc/mosqprov/changelog.gz, pointing at the release notes;
# gzip -n keeps the bytes free of a name and time.
mkdir -p "$out/deb"
when=$(date -R -u -d "${date:-now}" 2>/dev/null || date -R -u)
cat >"$out/deb/changelog" <<CHANGES
mosqprov (${version:-0.0.0}) unstable; urgency=medium

  * Release notes: https://github.com/mosqprov/mosqprov/releases

 -- mosqprov maintainers <mosqprov@users.noreply.github.com>  $when
CHANGES
gzip -n -9 "$out/deb/changelog"
# Static on purpose (CGO_ENABLED=0: one file for every Debian and Pi OS release).
echo 'mosqprov: statically-linked-binary [usr/bin/mosqprov]' >"$out/deb/lintian-overrides"
for f in "$out"/completions/*; do
  [ -s "$f" ] || { echo "release-assets: $f is empty" >&2; exit 1; }
done
ls "$out"/man/mosqprov.1.gz >/dev/null
