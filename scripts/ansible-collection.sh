#!/usr/bin/env bash
# ansible-collection.sh VERSION OUTDIR: builds the mosqprov.mosquitto Ansible
# collection (ansible/ansible_collections/mosqprov/mosquitto) into
# OUTDIR/mosqprov-mosquitto-VERSION.tar.gz with ansible-galaxy (Debian's
# ansible-core), its galaxy.yml stamped with the release's version.
# GoReleaser's before hook runs it; the release publishes the tarball.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:?usage: ansible-collection.sh VERSION OUTDIR}
out=${2:?usage: ansible-collection.sh VERSION OUTDIR}
command -v ansible-galaxy >/dev/null || { echo "ansible-collection: ansible-galaxy not found (apt-get install ansible-core)" >&2; exit 1; }
# Galaxy takes semantic versions only: a snapshot's "1.2.3-SNAPSHOT-abc" is one.
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$ ]] || { echo "ansible-collection: $version is not a semantic version" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r ansible/ansible_collections/mosqprov/mosquitto "$work/mosquitto"
sed -i "s/^version: .*/version: $version/" "$work/mosquitto/galaxy.yml"
mkdir -p "$out"
ansible-galaxy collection build --force --output-path "$out" "$work/mosquitto" >/dev/null
ls "$out/mosqprov-mosquitto-$version.tar.gz" >/dev/null
