#!/usr/bin/env bash
# Regenerates the GENERATED TEST FIXTURES in this folder with the real tools:
# Debian's mosquitto_passwd (2.0.11 on bookworm) and openssl. The passwords are
# throwaway test values, listed in passwords.txt; nothing here is a real secret.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

header='# GENERATED TEST FIXTURE (testdata/passwd/generate.sh): throwaway passwords, see passwords.txt'
# name:password, the import format; passwords may hold ':' and non-ASCII.
cat > passwords.txt <<'P'
# GENERATED TEST FIXTURE (testdata/passwd/generate.sh): the throwaway passwords of the fixtures here.
alice:correct horse
bob:b0b:with colon
zoë:pässwörd ✓
carol:x
dave:a much longer passphrase with spaces and symbols !@#$%^&*()_+-=[]{};'",.<>/?
crypt:secret6
P

# mosquitto_passwd -b puts the password in argv; fine for throwaway fixtures only.
pw() { grep -v '^#' passwords.txt | grep "^$1:" | cut -d: -f2-; }
printf '%s\n' "$header" > "$tmp/pbkdf2"
printf '%s\n' "$header" > "$tmp/sha512"
for u in alice bob zoë carol dave; do
  mosquitto_passwd -b -H sha512-pbkdf2 "$tmp/pbkdf2" "$u" "$(pw "$u")"
  mosquitto_passwd -b -H sha512 "$tmp/sha512" "$u" "$(pw "$u")"
done
cp "$tmp/pbkdf2" mosquitto_passwd-pbkdf2.passwd
cp "$tmp/sha512" mosquitto_passwd-sha512.passwd

# crypt(3) SHA-512, the format the broker REJECTS (openssl passwd -6 = glibc crypt).
{ printf '%s\n' "$header"; printf 'crypt:%s\n' "$(pw crypt | openssl passwd -6 -stdin)"; } > crypt-sha512.passwd
