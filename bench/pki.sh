#!/usr/bin/env bash
# bench/pki.sh: time mosqprov making a CA plus a server certificate against
# the article's openssl command sequence (seeds/000: `openssl req -x509` for
# the CA, `genrsa`, `req -new`, `x509 -req` for the server), with the same
# key type, for rsa-2048 and ecdsa-p256. Prints the mean per run and the
# ratio. Usage: bench/pki.sh [RUNS]   (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
export PATH="$PATH:/usr/local/go/bin"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/mosqprov" ./cmd/mosqprov
mkdir -p "$work/etc" && echo raspberrypi > "$work/etc/hostname"

article() { # $1 = key type, $2 = folder
  local d=$2
  if [ "$1" = rsa-2048 ]; then
    openssl req -new -x509 -days 3650 -nodes -newkey rsa:2048 -keyout "$d/ca.key" -out "$d/ca.crt" -subj "/CN=MQTT CA" 2>/dev/null
    openssl genrsa -out "$d/server.key" 2048 2>/dev/null
  else
    openssl req -new -x509 -days 3650 -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout "$d/ca.key" -out "$d/ca.crt" -subj "/CN=MQTT CA" 2>/dev/null
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/server.key" 2>/dev/null
  fi
  openssl req -new -key "$d/server.key" -out "$d/server.csr" -subj "/CN=raspberrypi.local" 2>/dev/null
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -out "$d/server.crt" -days 365 2>/dev/null
}

ours() { # $1 = key type, $2 = root
  cp -r "$work/etc" "$2/"
  "$work/mosqprov" --root "$2" cert ca --key-type "$1" >/dev/null
  "$work/mosqprov" --root "$2" cert server --key-type "$1" >/dev/null
}

ms() { echo $(( $(date +%s%N) / 1000000 )); }

printf '%-11s %6s %14s %14s %7s\n' "key type" runs "article (ms)" "mosqprov (ms)" ratio
for kt in rsa-2048 ecdsa-p256; do
  # Interleaved, so a busy machine slows both sides alike.
  a=0; m=0
  for i in $(seq "$runs"); do
    d="$work/a-$kt-$i"; mkdir "$d"; t0=$(ms); article "$kt" "$d"; t1=$(ms)
    d="$work/m-$kt-$i"; mkdir "$d"; ours "$kt" "$d"; t2=$(ms)
    a=$((a + t1 - t0)); m=$((m + t2 - t1))
  done
  awk -v kt="$kt" -v n="$runs" -v a="$a" -v m="$m" 'BEGIN { printf "%-11s %6d %14.1f %14.1f %6.2fx\n", kt, n, a/n, m/n, m/a }'
done
echo "ratio = mosqprov time / article time (below 1: mosqprov is faster)."
echo "mosqprov's run also writes the broker's ca.crt, sets owners and modes, and its certificate carries SANs; the article's does none of that."
