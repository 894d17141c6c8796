#!/usr/bin/env bash
# passwd.sh [N]: mosqprov against mosquitto_passwd on the password file.
#  1. import N users (default 10000) with `mosqprov user import` against a
#     `mosquitto_passwd -b` loop adding the same users: same hash, same
#     iterations. Debian 12's mosquitto_passwd (2.0.11) can only write 101
#     PBKDF2 iterations (no -I flag), so pbkdf2 is compared at 101; mosqprov's
#     default 1000 is timed on its own.
#  2. one more user into the N-user file: `mosqprov user add` against one
#     `mosquitto_passwd -b`.
# Throwaway passwords; `mosquitto_passwd -b` gets them in argv, which is
# exactly why mosqprov never does.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/mosqprov" ./cmd/mosqprov
mq=$tmp/mosqprov
for i in $(seq -f '%05g' 1 "$n"); do echo "user$i:pw-$i-$RANDOM"; done > "$tmp/users.txt"

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b / a }'; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }

echo "machine: $(nproc) cores, $(uname -m); mosquitto_passwd from $(dpkg-query -W -f='${Version}' mosquitto 2>/dev/null || echo '?')"
echo "users: $n"
printf '%-34s %12s %16s %7s\n' "hash" "mosqprov s" "mosquitto_passwd s" "m_p/mosqprov"

mqtt_loop() { # $1 = -H value, $2 = output file
  local first=1
  while IFS=: read -r u p; do
    if ((first)); then mosquitto_passwd -c -b -H "$1" "$2" "$u" "$p"; first=0
    else mosquitto_passwd -b -H "$1" "$2" "$u" "$p"; fi
  done < "$tmp/users.txt"
}

for row in "pbkdf2 101 sha512-pbkdf2" "sha512 0 sha512"; do
  set -- $row
  flags=(--hash "$1"); [ "$2" != 0 ] && flags+=(--iterations "$2")
  mkdir -p "$tmp/m-$1"
  t0=$(now); "$mq" --root "$tmp/m-$1" user import "${flags[@]}" --no-reload "$tmp/users.txt" >/dev/null 2>&1; t1=$(now)
  mkdir -p "$tmp/p-$1"
  t2=$(now); mqtt_loop "$3" "$tmp/p-$1/passwd"; t3=$(now)
  label="$1"; [ "$2" != 0 ] && label="$1 ($2 iterations)"
  printf '%-34s %12s %16s %6sx\n' "$label" "$(secs "$t0" "$t1")" "$(secs "$t2" "$t3")" "$(ratio "$(secs "$t0" "$t1")" "$(secs "$t2" "$t3")")"
  # Both files hold every user, and each verifies a sample with the other's tool.
  [ "$(grep -c '^user' "$tmp/m-$1/etc/mosquitto/passwd")" = "$n" ] || { echo "mosqprov file short"; exit 1; }
  [ "$(grep -c '^user' "$tmp/p-$1/passwd")" = "$n" ] || { echo "mosquitto_passwd file short"; exit 1; }
  u=$(sed -n '7p' "$tmp/users.txt")
  MOSQPROV_PASSWORD=${u#*:} "$mq" user verify "${u%%:*}" --file "$tmp/p-$1/passwd" >/dev/null
done
mkdir -p "$tmp/m-1000"
t0=$(now); "$mq" --root "$tmp/m-1000" user import --no-reload "$tmp/users.txt" >/dev/null 2>&1; t1=$(now)
printf '%-34s %12s %16s %7s\n' "pbkdf2 (1000, mosqprov's default)" "$(secs "$t0" "$t1")" "n/a (2.0.11: 101)" "-"

echo
echo "one more user into a file of $n (pbkdf2, 101 iterations; median of 5 runs, ms)"
mosqprov_add=() mqtt_add=()
for r in 1 2 3 4 5; do
  cp -a "$tmp/m-pbkdf2" "$tmp/a"
  t0=$(now); MOSQPROV_PASSWORD=newpw "$mq" --root "$tmp/a" user add newcomer --iterations 101 --no-reload >/dev/null 2>&1; t1=$(now)
  rm -rf "$tmp/a"
  cp "$tmp/p-pbkdf2/passwd" "$tmp/b"
  t2=$(now); mosquitto_passwd -b -H sha512-pbkdf2 "$tmp/b" newcomer newpw; t3=$(now)
  rm -f "$tmp/b"
  mosqprov_add+=("$(ms "$t0" "$t1")") mqtt_add+=("$(ms "$t2" "$t3")")
done
median() { printf '%s\n' "$@" | sort -n | sed -n 3p; }
a=$(median "${mosqprov_add[@]}") b=$(median "${mqtt_add[@]}")
printf '%-34s %12s %16s %6sx\n' "user add vs mosquitto_passwd -b" "$a" "$b" "$(ratio "$a" "$b")"

echo
echo "one user added then removed in a file of $n (pbkdf2, 101 iterations; median of 5 runs)"
echo "  wall ms, and CPU ms (user+sys, from /usr/bin/time: steadier on a shared machine)"
cpu() { /usr/bin/time -f "%U %S" -o "$tmp/cpu" "$@" >/dev/null 2>&1; awk '{printf "%d", ($1+$2)*1000}' "$tmp/cpu"; }
mw=() mc=() pw=() pc=() vw=()
for r in 1 2 3 4 5; do
  cp -a "$tmp/m-pbkdf2" "$tmp/a"; cp "$tmp/p-pbkdf2/passwd" "$tmp/b"
  t0=$(now); c1=$(MOSQPROV_PASSWORD=newpw cpu "$mq" --root "$tmp/a" user add newcomer --iterations 101 --no-reload)
  c2=$(cpu "$mq" --root "$tmp/a" user rm newcomer --no-reload); t1=$(now)
  t2=$(now); c3=$(cpu mosquitto_passwd -b -H sha512-pbkdf2 "$tmp/b" newcomer newpw)
  c4=$(cpu mosquitto_passwd -D "$tmp/b" newcomer); t3=$(now)
  t4=$(now); "$mq" version >/dev/null; "$mq" version >/dev/null; t5=$(now)
  rm -rf "$tmp/a" "$tmp/b"
  mw+=("$(ms "$t0" "$t1")") mc+=("$((c1 + c2))") pw+=("$(ms "$t2" "$t3")") pc+=("$((c3 + c4))") vw+=("$(ms "$t4" "$t5")")
done
printf '%-34s %12s %16s\n' "" "wall ms" "CPU ms"
printf '%-34s %12s %16s\n' "mosqprov user add + user rm" "$(median "${mw[@]}")" "$(median "${mc[@]}")"
printf '%-34s %12s %16s\n' "mosquitto_passwd -b + -D" "$(median "${pw[@]}")" "$(median "${pc[@]}")"
printf '%-34s %12s %16s\n' "two process starts (version x2)" "$(median "${vw[@]}")" "-"
