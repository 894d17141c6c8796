// Package e2e holds mosqprov's end-to-end tests in a real systemd: a Debian
// bookworm container booted with systemd as PID 1 (internal/nspawn), where
// the mosqprov binary installs mosquitto with apt and drives its unit with
// systemctl. The tests need root and systemd-nspawn; elsewhere they skip
// loudly, and with CI=true they fail.
package e2e
