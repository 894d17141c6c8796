#!/usr/bin/env bash
# bench/memory.sh: peak memory (maximum resident set size, /usr/bin/time -v)
# of `plan`, `apply` and `user add` on hostile inputs, each of which must
# fail fast with one line or succeed, and stay under 100 MiB:
#   /dev/zero and a 100 MiB file as the spec, an alias bomb, the densest
#   spec under the cap, the largest valid spec (1,000 users, 1,000 rules),
#   a 2 GiB password on stdin, a password file of 16 MiB.
# Runs under a --root in a temp folder; touches nothing else.
#   bash bench/memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/mosqprov" ./cmd/mosqprov
bin=$work/mosqprov
root=$work/root
mkdir -p "$root/etc"
cp /etc/passwd /etc/group "$root/etc/"
base='listeners: [{type: mqtt, port: 18830}]
package: {install: false}
service: {enable: false}'

head -c $((100 << 20)) /dev/zero | tr '\0' 'a' >"$work/100m.yaml"
{
  echo "$base"
  printf 'acl:\n  - {user: u, read: &t [%s t]}\n' "$(printf 't%.0s,' $(seq 999))"
  for _ in $(seq 999); do echo '  - {user: u, read: *t}'; done
} >"$work/bomb.yaml"
{
  echo "$base"
  printf 'acl: [{user: a, read: ['
  awk 'BEGIN { for (i = 0; i < 127000; i++) printf "a," }'
  printf 'a]}]\n'
} >"$work/dense.yaml"
{
  echo "$base"
  echo 'users:'
  for i in $(seq -w 1 1000); do echo "  - {name: user$i, password_env: PW}"; done
  echo 'acl:'
  for i in $(seq -w 1 1000); do echo "  - {user: user$i, readwrite: [\"home/$i/#\"]}"; done
} >"$work/large.yaml"
export PW=secret-password

peak() { # label, stdin file, command...
  local label=$1 in=$2
  shift 2
  local out rc
  set +e
  out=$(/usr/bin/time -v "$@" <"$in" 2>&1 >/dev/null)
  rc=$?
  set -e
  local kb
  kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' <<<"$out")
  local err
  err=$(grep '^mosqprov:' <<<"$out" | head -1 | cut -c1-90 || true)
  printf '%-44s %6.1f MiB  exit %d  %s\n' "$label" "$(awk -v k="$kb" 'BEGIN {print k/1024}')" "$rc" "$err"
}

echo "machine: $(nproc) cores, $(uname -m); peak RSS of one mosqprov process"
peak "plan -f /dev/zero" /dev/null "$bin" --root "$root" plan -f /dev/zero
peak "plan -f 100 MiB file" /dev/null "$bin" --root "$root" plan -f "$work/100m.yaml"
peak "plan -f alias bomb ($(du -k "$work/bomb.yaml" | cut -f1) KiB)" /dev/null "$bin" --root "$root" plan -f "$work/bomb.yaml"
peak "apply -f alias bomb" /dev/null "$bin" --root "$root" apply --yes -f "$work/bomb.yaml"
peak "plan -f densest spec under the cap" /dev/null "$bin" --root "$root" plan -f "$work/dense.yaml"
peak "plan -f 1,000 users + 1,000 rules" /dev/null "$bin" --root "$root" plan -f "$work/large.yaml"
peak "apply -f 1,000 users + 1,000 rules" /dev/null "$bin" --root "$root" apply --yes -f "$work/large.yaml"
# 2 GiB without a newline, as a pipe would give it (a sparse file reads as NULs).
truncate -s 2G "$work/2g"
peak "user add --password-stdin (2 GiB line)" "$work/2g" "$bin" --root "$root" user add bob --password-stdin --no-reload
rm -f "$work/2g"
# A password file of 6 MiB (the cap on managed files) and one past it.
mkdir -p "$root/etc/mosquitto"
awk 'BEGIN { h = sprintf("%086d", 0); n = 0; for (i = 0; n + 120 <= 6 * 1048576; i++) { l = sprintf("u%06d:$6$abcdefghabcdefgh$%s==\n", i, h); n += length(l); printf "%s", l } }' >"$root/etc/mosquitto/passwd"
echo "$PW" >"$work/pw"
peak "user add, 6 MiB password file" "$work/pw" "$bin" --root "$root" user add bob --password-stdin --no-reload --hash sha512
head -c $((1 << 20)) /dev/zero | tr '\0' '#' >>"$root/etc/mosquitto/passwd"
peak "user add, password file past the cap" "$work/pw" "$bin" --root "$root" user add carol --password-stdin --no-reload --hash sha512
