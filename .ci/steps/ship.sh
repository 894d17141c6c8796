#!/usr/bin/env bash
# Shipping checks (issue 8), run by .ci/run before go test. Measured on 2
# busy cores: 75 s with a warm build cache and GoReleaser installed; 169 s on
# a fresh Debian 12, GoReleaser's install and cold cross builds included:
#  1. cross-compile the four release targets (catches a platform-specific break);
#  2. goreleaser check + a snapshot release (archives, checksums, .debs);
#  3. install the amd64 .deb with the real dpkg into a scratch root; run the
#     installed mosqprov, man, and the bash/zsh/fish completions from where
#     Debian's shells look for them; remove it again;
#  4. run the armv6 build under qemu-user emulating the Pi Zero/1's ARM1176 CPU;
#  5. print the sizes (bench/sizes.sh) and hold armv6 under 15 MiB.
set -euo pipefail
cd "$(dirname "$0")/../.."
PATH="$PATH:/usr/local/go/bin"
gopath=$(go env GOPATH)
export PATH="$PATH:$gopath/bin:/usr/sbin:/sbin"

say() { echo "ship: $*"; }
fail() {
  echo "ship: FAIL: $*" >&2
  exit 1
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 1. Cross-compile with the release's flags (-trimpath, CGO off), so the build
# cache is shared with the goreleaser run below.
targets=(amd64 arm64 armv7 armv6)
scripts/cross-build.sh "$work/bin"

# 2. GoReleaser, installed once per machine into $(go env GOPATH)/bin, which
# is the cache between runs: on a fresh Debian 12 with 2 cores `go install`
# took 111 s on its own. Only when it can't be installed (no module proxy) is the
# release checked without it, and loudly.
goreleaser=$(command -v goreleaser || true)
if [ -z "$goreleaser" ]; then
  say "installing GoReleaser v2.15.1 (once per machine)"
  go install github.com/goreleaser/goreleaser/v2@v2.15.1 || true
  goreleaser=$(command -v goreleaser || true)
fi
deb=
if [ -z "$goreleaser" ]; then
  cat >&2 <<'EOF'
################################################################################
ship: GORELEASER COULD NOT BE INSTALLED: SKIPPING goreleaser check, the
ship: snapshot release and the .deb install test. Install it with
ship:   go install github.com/goreleaser/goreleaser/v2@v2.15.1
################################################################################
EOF
else
  say "goreleaser check"
  "$goreleaser" check
  # GoReleaser reads the commit and its date only when the clone has a remote;
  # a clone without one would stamp "none" and year 1. Give it one through the
  # environment rather than editing .git/config.
  if [ -z "$(git remote)" ]; then
    export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=remote.origin.url \
      GIT_CONFIG_VALUE_0=https://github.com/mosqprov/mosqprov.git
  fi
  say "goreleaser release --snapshot --clean"
  "$goreleaser" release --snapshot --clean >"$work/goreleaser.log" 2>&1 ||
    { cat "$work/goreleaser.log"; fail "goreleaser release --snapshot failed"; }
  unset GIT_CONFIG_COUNT GIT_CONFIG_KEY_0 GIT_CONFIG_VALUE_0
  for t in "${targets[@]}"; do
    ls dist/mosqprov_*_linux_"$t".tar.gz >/dev/null || fail "no archive for $t"
    ls dist/mosqprov_*_"$t".deb >/dev/null || fail "no .deb for $t"
    # Raspberry Pi OS 32-bit is armhf whatever the CPU, and apt refuses a
    # package of another architecture (armel): the README's table says so.
    want=$t
    case $t in armv*) want=armhf ;; esac
    got=$(dpkg-deb -f dist/mosqprov_*_"$t".deb Architecture)
    [ "$got" = "$want" ] || fail "the $t .deb is for $got, not $want"
  done
  (cd dist && sha256sum --quiet -c checksums.txt) || fail "checksums.txt does not match dist/"
  # The before hook built the Ansible collection the release publishes.
  ls gen/ansible/mosqprov-mosquitto-*.tar.gz >/dev/null || fail "no Ansible collection tarball in gen/ansible"
  tar -tzf dist/mosqprov_*_linux_armv6.tar.gz >"$work/archive.txt"
  for f in mosqprov README.md LICENSE completions/mosqprov.bash completions/_mosqprov \
    completions/mosqprov.fish man/mosqprov.1.gz; do
    grep -qx "$f" "$work/archive.txt" || fail "armv6 archive lacks $f"
  done
  deb=$(ls dist/mosqprov_*_amd64.deb)
  version=$(dpkg-deb -f "$deb" Version)
fi

# 3. The real dpkg, installing into a scratch root with its own database: the
# package has no maintainer scripts, so nothing needs a chroot.
if [ -n "$deb" ]; then
  root=$work/root
  mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/triggers"
  touch "$root/var/lib/dpkg/status" "$root/var/lib/dpkg/available"
  say "dpkg --root SCRATCH -i $deb"
  dpkg --root="$root" -i "$deb" >/dev/null
  dpkg --root="$root" -s mosqprov | grep -qx 'Status: install ok installed' || fail "dpkg did not install mosqprov"
  dpkg --root="$root" -s mosqprov | grep -qx 'Recommends: mosquitto' || fail "the .deb does not recommend mosquitto"
  for f in /usr/bin/mosqprov /usr/share/bash-completion/completions/mosqprov \
    /usr/share/zsh/vendor-completions/_mosqprov /usr/share/fish/vendor_completions.d/mosqprov.fish \
    /usr/share/man/man1/mosqprov.1.gz /usr/share/doc/mosqprov/copyright; do
    dpkg --root="$root" -L mosqprov | grep -qx "$f" || fail "the .deb does not install $f"
  done

  out=$("$root/usr/bin/mosqprov" version)
  say "installed: $out"
  [[ $out == "mosqprov $version (commit "* ]] || fail "installed mosqprov version says '$out', package is $version"

  # man finds the page by name in the installed tree, and groff renders it
  # without a warning.
  page=$(MANWIDTH=80 man -M "$root/usr/share/man" --warnings mosqprov 2>"$work/man.err") ||
    fail "man mosqprov: $(cat "$work/man.err")"
  [ ! -s "$work/man.err" ] || fail "man mosqprov warns: $(cat "$work/man.err")"
  grep -q 'EXIT STATUS' <<<"$page" || fail "man mosqprov has no EXIT STATUS section"
  man -l "$root/usr/share/man/man1/mosqprov-version.1.gz" | grep -q 'mosqprov-version' ||
    fail "man -l mosqprov-version.1.gz"

  # Each shell finds the completion where the package put it, the way it
  # finds any packaged completion (XDG_DATA_DIRS / fpath), and completes.
  export XDG_DATA_DIRS=$root/usr/share PATH=$root/usr/bin:$PATH
  if [ -f /usr/share/bash-completion/bash_completion ]; then
    got=$(bash -c 'source /usr/share/bash-completion/bash_completion
      __load_completion mosqprov || exit 1
      COMP_WORDS=(mosqprov versi); COMP_CWORD=1; COMP_LINE="mosqprov versi"; COMP_POINT=14
      __start_mosqprov 2>/dev/null; printf "%s\n" "${COMPREPLY[@]}"')
    [ "$got" = version ] || fail "bash completion of 'mosqprov versi' gave '$got'"
  else
    say "bash-completion not installed: bash completion not exercised"
  fi
  if command -v fish >/dev/null; then
    fish -c 'complete -C"mosqprov ver"' | grep -q '^version' || fail "fish does not complete 'mosqprov ver'"
  else
    say "fish not installed: fish completion not exercised"
  fi
  if command -v zsh >/dev/null; then
    got=$(zsh -f -c "fpath=($root/usr/share/zsh/vendor-completions \$fpath); autoload -U compinit; compinit -u -D; print -r -- \${_comps[mosqprov]}")
    [ "$got" = _mosqprov ] || fail "zsh compinit does not bind _mosqprov to mosqprov (got '$got')"
  else
    say "zsh not installed: zsh completion not exercised"
  fi

  dpkg --root="$root" -r mosqprov >/dev/null
  [ ! -e "$root/usr/bin/mosqprov" ] || fail "dpkg -r left /usr/bin/mosqprov"
  say "the .deb installs, works and removes cleanly"
fi

# 4. The armv6 build on an emulated ARM1176 (Pi Zero, Pi 1), the Pi build
# most likely to break: an ARMv7 instruction in it would kill it with SIGILL.
qemu=$(command -v qemu-arm-static || command -v qemu-arm || true)
if [ -z "$qemu" ]; then
  fail "qemu-user is not installed (apt-get install qemu-user-static); .ci/run installs it"
fi
armv6=$work/bin/mosqprov-linux-armv6
if [ -n "$deb" ]; then armv6=$(ls dist/mosqprov_linux_arm_6/mosqprov); fi
pi() { "$qemu" -cpu arm1176 "$armv6" "$@"; }
out=$(pi version) || fail "armv6 mosqprov version under qemu (arm1176) failed"
say "armv6 on arm1176: $out"
[[ $out == *"linux/arm)" ]] || fail "armv6 version output: $out"
# The control: the armv7 build must die of SIGILL (exit 132) on that CPU, or
# the emulation proves nothing. (The braces keep bash's "Illegal instruction"
# job report out of the log.)
rc=0
{ "$qemu" -cpu arm1176 "$work/bin/mosqprov-linux-armv7" version >/dev/null 2>&1; } 2>/dev/null || rc=$?
[ $rc = 132 ] || fail "the armv7 build exited $rc on an emulated ARM1176, not SIGILL: the armv6 check is not checking"

commands=$(pi __complete '' 2>/dev/null | cut -f1)
piroot=$work/piroot
mkdir -p "$piroot"
if grep -qx user <<<"$commands"; then
  printf 'ci-only-password\n' | pi --root "$piroot" user add ci-device --password-stdin >/dev/null ||
    fail "armv6 user add under qemu failed"
  grep -q '^ci-device:\$7\$' "$piroot/etc/mosquitto/passwd" || fail "armv6 user add wrote no PBKDF2 entry"
  printf 'ci-only-password\n' | pi --root "$piroot" user add ci-device --password-stdin | grep -q unchanged ||
    fail "armv6 user add is not idempotent"
  # The host's real broker must accept the hash the ARM build computed (a
  # 32-bit-only arithmetic slip would give a hash no broker accepts).
  if command -v mosquitto >/dev/null && command -v mosquitto_pub >/dev/null; then
    b=$work/broker
    mkdir -p "$b" && chmod 0755 "$work" "$b"
    install -m 0600 -o mosquitto -g mosquitto "$piroot/etc/mosquitto/passwd" "$b/passwd"
    # Ports below Linux's ephemeral range (32768+), so no client socket of
    # another process holds one; a port taken in between the look and the
    # bind makes the broker exit, and the next try takes another.
    touch "$b/log" && chown mosquitto "$b/log"
    port= broker=
    for _ in $(seq 10); do
      p=$((20000 + RANDOM % 12000))
      (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
      printf 'listener %s 127.0.0.1\nallow_anonymous false\npassword_file %s\nlog_dest file %s\n' \
        "$p" "$b/passwd" "$b/log" >"$b/conf"
      mosquitto -c "$b/conf" &
      broker=$!
      for _ in $(seq 50); do
        (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null && { port=$p; break; }
        kill -0 "$broker" 2>/dev/null || break
        sleep 0.1
      done
      [ -n "$port" ] && break
      kill "$broker" 2>/dev/null; wait "$broker" 2>/dev/null || true
    done
    [ -n "$port" ] || fail "the broker did not start on any of 10 loopback ports: $(cat "$b/log")"
    # Test-only password, so argv is acceptable here; mosqprov itself never takes one there.
    ok=yes
    mosquitto_pub -h 127.0.0.1 -p "$port" -u ci-device -P ci-only-password -t ci/ship -m ok || ok=no
    bad=no
    mosquitto_pub -h 127.0.0.1 -p "$port" -u ci-device -P wrong-password -t ci/ship -m no 2>/dev/null && bad=yes
    kill "$broker" && wait "$broker" 2>/dev/null || true
    [ $ok = yes ] || fail "the broker refused the password the armv6 build hashed: $(cat "$b/log")"
    [ $bad = no ] || fail "the broker accepted a wrong password"
    say "armv6 user add under qemu: the real broker accepts its hash"
  else
    say "armv6 user add under qemu: ok (mosquitto not installed: hash not checked by a broker)"
  fi
else
  say "'user' is not a command yet: armv6 user add NOT exercised"
fi
if grep -qx cert <<<"$commands"; then
  mkdir -p "$piroot/etc" && echo ci-pi >"$piroot/etc/hostname"
  pi --root "$piroot" cert ca >/dev/null || fail "armv6 cert ca under qemu failed"
  pi --root "$piroot" cert server --name broker.ci.test >/dev/null || fail "armv6 cert server under qemu failed"
  openssl verify -CAfile "$piroot/etc/mosquitto/certs/ca.crt" -purpose sslserver \
    "$piroot/etc/mosquitto/certs/server.crt" >/dev/null || fail "armv6 server certificate does not chain to its CA"
  openssl x509 -in "$piroot/etc/mosquitto/certs/server.crt" -noout -checkhost broker.ci.test |
    grep -q 'does match' || fail "armv6 server certificate does not name broker.ci.test"
  say "armv6 cert ca + cert server under qemu: ok (openssl verifies the chain and the name)"
else
  say "'cert' is not a command yet: armv6 cert server NOT exercised"
fi

# 5. Sizes; the armv6 budget is the issue's (Pi Zero: 512 MB RAM, small SD cards).
bench/sizes.sh "$work/bin"
size=$(stat -c %s "$armv6")
((size < 15 * 1024 * 1024)) || fail "armv6 binary is $size bytes, over the 15 MiB budget"
say "done in $((SECONDS))s"
