#!/usr/bin/env bash
# passwd.sh [N] [one]: mosqprov against mosquitto_passwd on the password file.
#  1. import N users (default 10000) with `mosqprov user import` against a
#     `mosquitto_passwd -b` loop adding the same users: same hash, same
#     iterations. Debian 12's mosquitto_passwd (2.0.11) can only write 101
#     PBKDF2 iterations (no -I flag), so pbkdf2 is compared at 101; mosqprov's
#     default 1000 is timed on its own. The loop takes minutes (it rewrites
#     the whole file for each user); `one` skips this part.
#  2. one user added, then removed, in the N-user file: `mosqprov user add`
#     (--password-stdin) and `user rm` against `mosquitto_passwd -b` and
#     `-D`, whole processes side by side: wall and CPU time (user+sys, from
#     the shell's `time`), peak memory (max RSS) and page faults (from
#     /usr/bin/time), median of RUNS runs (default 9), next to the process
#     start alone (`mosqprov version`) and the edit alone (bench/passwd-edit:
#     the same pkg/passwd edit in a program that links nothing else). mosqprov
#     is built as it ships (static, -trimpath -s -w), or MOSQPROV=path names
#     another build.
# Throwaway passwords; `mosquitto_passwd -b` gets them in argv, which is
# exactly why mosqprov never does.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
only_one=${2:-}
runs=${RUNS:-9}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -n "${MOSQPROV:-}" ]; then
  cp "$MOSQPROV" "$tmp/mosqprov" # another build, to compare versions
else
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp/mosqprov" ./cmd/mosqprov
fi
mq=$tmp/mosqprov
# The same edit through pkg/passwd in a program that links nothing else:
# what the edit costs, without the rest of mosqprov's process start.
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp/passwd-edit" ./bench/passwd-edit
for i in $(seq -f '%05g' 1 "$n"); do echo "user$i:pw-$i-$RANDOM"; done > "$tmp/users.txt"

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b / a }'; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }

echo "machine: $(nproc) cores, $(uname -m); mosquitto_passwd from $(dpkg-query -W -f='${Version}' mosquitto 2>/dev/null || echo '?')"
echo "users: $n"
if [ "$only_one" != one ]; then
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

fi
# The N-user file both tools edit: mosqprov's import at 101 iterations
# (mosquitto_passwd reads and writes the same format).
if [ ! -d "$tmp/m-pbkdf2" ]; then
  mkdir -p "$tmp/m-pbkdf2"
  "$mq" --root "$tmp/m-pbkdf2" user import --hash pbkdf2 --iterations 101 --no-reload "$tmp/users.txt" >/dev/null 2>&1
fi
file=$tmp/m-pbkdf2/etc/mosquitto/passwd

echo
echo "one user added, then removed, in a file of $n users (PBKDF2, 101 iterations; whole process; median of $runs runs)"
# cpu CMD...: "wall_ms cpu_ms" of one run, from bash's `time` (getrusage of
# the child: microseconds, where /usr/bin/time rounds to 10 ms).
cpu() {
  local TIMEFORMAT='%3R %3U %3S' t
  t=$({ time "$@" >/dev/null 2>&1 <"$tmp/pw"; } 2>&1)
  awk '{printf "%.1f %.1f", $1 * 1000, ($2 + $3) * 1000}' <<<"$t"
}
# mem CMD...: "max_rss_kib page_faults" of one run.
mem() {
  /usr/bin/time -f '%M %R' -o "$tmp/mem" "$@" >/dev/null 2>&1 <"$tmp/pw"
  cat "$tmp/mem"
}
# fresh: both copies of the file, changed a tick of the kernel's clock
# before the run, as a password file is (a file changed in the same tick
# as a read is read again at its write: pkg/system readonce.go).
fresh() {
  rm -rf "$tmp/a" "$tmp/b"
  rm -rf "$tmp/e"
  mkdir -p "$tmp/a/etc/mosquitto" "$tmp/e/etc/mosquitto"
  cp -a "$file" "$tmp/a/etc/mosquitto/passwd"
  cp -a "$file" "$tmp/e/etc/mosquitto/passwd"
  cp "$file" "$tmp/b"
  sleep 0.05
}
echo newpw >"$tmp/pw"
add=("$mq" --root "$tmp/a" user add newcomer --password-stdin --iterations 101 --no-reload)
rm_=("$mq" --root "$tmp/a" user rm newcomer --no-reload)
badd=(mosquitto_passwd -b -H sha512-pbkdf2 "$tmp/b" newcomer newpw)
brm=(mosquitto_passwd -D "$tmp/b" newcomer)
eadd=("$tmp/passwd-edit" "$tmp/e" add newcomer 101)
erm=("$tmp/passwd-edit" "$tmp/e" rm newcomer)
declare -A col
for r in $(seq "$runs"); do
  fresh
  col[mq_add]+="$(cpu "${add[@]}")"$'\n'
  col[mq_rm]+="$(cpu "${rm_[@]}")"$'\n'
  col[mp_add]+="$(cpu "${badd[@]}")"$'\n'
  col[mp_rm]+="$(cpu "${brm[@]}")"$'\n'
  col[start]+="$(cpu "$mq" version)"$'\n'
  col[e_add]+="$(cpu "${eadd[@]}")"$'\n'
  col[e_rm]+="$(cpu "${erm[@]}")"$'\n'
  fresh
  col[mq_add_mem]+="$(mem "${add[@]}")"$'\n'
  col[mq_rm_mem]+="$(mem "${rm_[@]}")"$'\n'
  col[mp_add_mem]+="$(mem "${badd[@]}")"$'\n'
  col[mp_rm_mem]+="$(mem "${brm[@]}")"$'\n'
  col[start_mem]+="$(mem "$mq" version)"$'\n'
  col[e_add_mem]+="$(mem "${eadd[@]}")"$'\n'
  col[e_rm_mem]+="$(mem "${erm[@]}")"$'\n'
  grep -q '^newcomer:' "$tmp/b" && { echo "mosquitto_passwd -D left newcomer"; exit 1; }
  grep -q '^newcomer:' "$tmp/a/etc/mosquitto/passwd" && { echo "mosqprov user rm left newcomer"; exit 1; }
  grep -q '^newcomer:' "$tmp/e/etc/mosquitto/passwd" && { echo "passwd-edit rm left newcomer"; exit 1; }
done
# median FIELD of the lines in $1
median() { awk -v f="$2" 'NF {print $f}' <<<"$1" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
sum2() { paste -d' ' <(awk 'NF {print $'"$3"'}' <<<"$1") <(awk 'NF {print $'"$3"'}' <<<"$2") | awk '{print $1 + $2}' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '%-36s %9s %9s %13s %12s\n' "" "wall ms" "CPU ms" "max RSS KiB" "page faults"
row() { printf '%-36s %9s %9s %13s %12s\n' "$1" "$(median "${col[$2]}" 1)" "$(median "${col[$2]}" 2)" "$(median "${col[${2}_mem]}" 1)" "$(median "${col[${2}_mem]}" 2)"; }
row "mosqprov user add" mq_add
row "mosquitto_passwd -b" mp_add
row "mosqprov user rm" mq_rm
row "mosquitto_passwd -D" mp_rm
row "mosqprov version (process start)" start
row "passwd-edit add (the edit alone)" e_add
row "passwd-edit rm" e_rm
printf '%-36s %9s %9s %13s %12s\n' "mosqprov add + rm" "$(sum2 "${col[mq_add]}" "${col[mq_rm]}" 1)" "$(sum2 "${col[mq_add]}" "${col[mq_rm]}" 2)" "-" "$(sum2 "${col[mq_add_mem]}" "${col[mq_rm_mem]}" 2)"
printf '%-36s %9s %9s %13s %12s\n' "passwd-edit add + rm" "$(sum2 "${col[e_add]}" "${col[e_rm]}" 1)" "$(sum2 "${col[e_add]}" "${col[e_rm]}" 2)" "-" "$(sum2 "${col[e_add_mem]}" "${col[e_rm_mem]}" 2)"
printf '%-36s %9s %9s %13s %12s\n' "mosquitto_passwd -b + -D" "$(sum2 "${col[mp_add]}" "${col[mp_rm]}" 1)" "$(sum2 "${col[mp_add]}" "${col[mp_rm]}" 2)" "-" "$(sum2 "${col[mp_add_mem]}" "${col[mp_rm_mem]}" 2)"
