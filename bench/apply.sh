#!/usr/bin/env bash
# A converged `mosqprov apply` of the article's spec with 50 more users: wall
# time and files written (must be 0), against the same converged run through
# the Ansible example (examples/ansible/playbook.yml) when ansible-playbook is
# installed. Runs under a --root in a temp folder; touches nothing else.
#   bash bench/apply.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
export PATH="$PATH:/usr/local/go/bin"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root/etc"
# The target's accounts, so files get the broker's owner as on a real Pi.
cp /etc/passwd /etc/group "$root/etc/"
go build -o "$work/mosqprov" ./cmd/mosqprov
bin=$work/mosqprov

echo "bot-secret" >"$work/bot"
sed "s|/run/secrets/telegram-bot-mqtt|$work/bot|" examples/broker.yaml >"$work/broker.yaml"
export MQTT_BLINDS_PASSWORD=blinds-secret
for i in $(seq -w 0 49); do
  echo "  - {name: sensor-$i, password_env: MQTT_SENSOR_$i}" >>"$work/users"
  export "MQTT_SENSOR_$i=sensor-secret-$i"
done
# Append the users right after the example's own.
awk -v users="$work/users" '{print} /name: android-app/ {while ((getline l < users) > 0) print l}' \
  "$work/broker.yaml" >"$work/broker50.yaml"
spec=$work/broker50.yaml
grep -c 'name: sensor-' "$spec" | grep -qx 50

apply() { "$bin" apply --yes --root "$root" -f "$spec" "$@"; }

t0=$(date +%s.%N)
apply >/dev/null
t1=$(date +%s.%N)
printf 'first apply (creates CA, certificate, 53 users): %.2f s\n' "$(echo "$t1 - $t0" | bc)"

# Converged runs: wall time, and every write the process makes under the root.
times=()
for _ in $(seq "$runs"); do
  t0=$(date +%s.%N)
  out=$(apply)
  t1=$(date +%s.%N)
  times+=("$(echo "$t1 - $t0" | bc)")
  grep -q '^No changes' <<<"$out" || { echo "not converged:"; echo "$out"; exit 1; }
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf 'converged apply: median %.3f s over %d runs (%s)\n' "$(median "${times[@]}")" "$runs" "$(printf '%.3f ' "${times[@]}")"

# The floor: the process start (`mosqprov version`) plus verifying the 53
# stored PBKDF2 hashes (1000 iterations) spread over the cores, the one
# piece of work a converged apply can't skip.
vtimes=()
for _ in $(seq "$runs"); do
  t0=$(date +%s.%N); "$bin" version >/dev/null; t1=$(date +%s.%N)
  vtimes+=("$(echo "$t1 - $t0" | bc)")
done
verify_ns=$(go test ./pkg/passwd -run '^$' -bench '^BenchmarkVerify$' -benchtime 100x | awk '/^BenchmarkVerify/ {print $3}')
start=$(median "${vtimes[@]}")
floor=$(echo "$start + 53 * $verify_ns / 1000000000 / $(nproc)" | bc -l)
printf 'floor: process start %.3f s + 53 verifications of %.2f ms over %d cores = %.3f s; converged apply / floor = %.2f\n' \
  "$start" "$(echo "$verify_ns / 1000000" | bc -l)" "$(nproc)" "$floor" "$(echo "$(median "${times[@]}") / $floor" | bc -l)"

# The same in CPU time (user+sys of the process, from the shell's `time`),
# which other jobs on the machine distort far less than wall time: the
# converged apply against the process start plus the 53 verifications.
cpu_ms() {
  local TIMEFORMAT='%3U %3S' t
  t=$({ time "$@" >/dev/null 2>&1; } 2>&1)
  awk '{printf "%.1f", ($1 + $2) * 1000}' <<<"$t"
}
go test -c -o "$work/passwd.test" ./pkg/passwd
acpu=() vcpu=() hcpu=()
for _ in $(seq "$runs"); do
  acpu+=("$(cpu_ms "$bin" apply --yes --root "$root" -f "$spec")")
  vcpu+=("$(cpu_ms "$bin" version)")
  # 500 verifications in one process: the CPU time of one, start included.
  hcpu+=("$(cpu_ms "$work/passwd.test" -test.run '^$' -test.bench '^BenchmarkVerify$' -test.benchtime 500x)")
done
verify_cpu=$(echo "$(median "${hcpu[@]}") / 500" | bc -l)
cfloor=$(echo "$(median "${vcpu[@]}") + 53 * $verify_cpu" | bc -l)
printf 'CPU: converged apply %.1f ms; floor: process start %.1f ms + 53 verifications of %.2f ms = %.1f ms; converged apply / floor = %.2f\n' \
  "$(median "${acpu[@]}")" "$(median "${vcpu[@]}")" "$verify_cpu" "$cfloor" "$(echo "$(median "${acpu[@]}") / $cfloor" | bc -l)"

touch "$work/marker"
sleep 0.01
if command -v strace >/dev/null; then
  strace -f -qq -o "$work/trace" -e trace=openat,rename,renameat,renameat2,unlink,unlinkat,mkdir,mkdirat,chmod,fchmod,fchmodat,chown,fchown,fchownat \
    "$bin" apply --yes --root "$root" -f "$spec" >/dev/null
  writes=$(grep -F "$root" "$work/trace" | grep -Ec 'O_WRONLY|O_RDWR|O_CREAT|rename|unlink|mkdir|chmod|chown' || true)
  echo "converged apply: $writes write system calls under the root (strace)"
else
  apply >/dev/null
fi
changed=$(find "$root" -newer "$work/marker" | wc -l)
echo "converged apply: $changed files or folders modified (find -newer)"
[ "$changed" -eq 0 ] || { find "$root" -newer "$work/marker"; exit 1; }

t0=$(date +%s.%N)
"$bin" plan --root "$root" -f "$spec" >/dev/null
t1=$(date +%s.%N)
printf 'converged plan: %.3f s\n' "$(echo "$t1 - $t0" | bc)"

if command -v ansible-playbook >/dev/null; then
  aroot=$work/aroot
  mkdir -p "$aroot/etc"
  cp /etc/passwd /etc/group "$aroot/etc/"
  sed "s|$work/bot|$work/abot|" "$spec" >"$work/broker-ansible.yaml"
  play() {
    ANSIBLE_COLLECTIONS_PATH=$PWD/ansible ANSIBLE_NOCOLOR=1 ANSIBLE_LOCAL_TEMP=$work/ansible-tmp ANSIBLE_REMOTE_TEMP=$work/ansible-tmp \
      ansible-playbook -i localhost, -c local examples/ansible/playbook.yml \
      -e "mosqprov_bin=$bin" -e "mosqprov_root=$aroot" -e "mosqprov_spec_src=$work/broker-ansible.yaml" \
      -e "mosqprov_bot_secret=$work/abot" -e "mqtt_blinds_password=$MQTT_BLINDS_PASSWORD" -e "mqtt_bot_password=bot-secret"
  }
  play >/dev/null
  atimes=()
  for _ in $(seq "$runs"); do
    t0=$(date +%s.%N)
    out=$(play)
    t1=$(date +%s.%N)
    atimes+=("$(echo "$t1 - $t0" | bc)")
    grep -Eq 'localhost +: ok=[0-9]+ +changed=0 ' <<<"$out" || { echo "ansible run not converged:"; echo "$out"; exit 1; }
  done
  printf 'converged ansible-playbook (same apply, through Ansible): median %.3f s over %d runs (%s)\n' \
    "$(median "${atimes[@]}")" "$runs" "$(printf '%.3f ' "${atimes[@]}")"
else
  echo "ansible-playbook not installed: Ansible comparison skipped (apt-get install -y ansible-core)"
fi
