package systemd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mosqprov/mosqprov/pkg/system"
)

// What the broker's log gets after a SIGHUP, as 2.0.11 writes it (seen in
// TestApplyInRealSystemd, pkg/plan): a clean reload, and one that stops at
// a conf.d file the mosquitto user can't read.
func TestReloadRefused(t *testing.T) {
	root := t.TempDir()
	const log = "/var/log/mosquitto/mosquitto.log"
	if err := os.MkdirAll(filepath.Join(root, filepath.Dir(log)), 0o755); err != nil {
		t.Fatal(err)
	}
	before := "1796290784: mosquitto version 2.0.11 running\n" +
		// An earlier reload's error: before the mark, not this reload's.
		"1796290785: Reloading config.\n1796290785: Error: Unable to open config file /etc/mosquitto/conf.d/old.conf.\n1796290785: Error found at /etc/mosquitto/mosquitto.conf:13.\n"
	s := New(system.NewReal(root))
	s.LogFiles = func() []string { return []string{log, "/var/log/mosquitto/missing.log"} }
	for _, c := range []struct {
		name, after string
		want        []string
	}{
		{"clean", "1796290786: Reloading config.\n1796290786: Loading config file /etc/mosquitto/conf.d/mosqprov-bridges.conf\n1796290786: Loading config file /etc/mosquitto/conf.d/mosqprov.conf\n1796290786: New connection from 127.0.0.1:1 on port 1883.\n", nil},
		{"refused", "1796290786: Reloading config.\n1796290786: Loading config file /etc/mosquitto/conf.d/mosqprov-bridges.conf\n1796290786: Error: Unable to open config file /etc/mosquitto/conf.d/mosqprov-bridges.conf.\n1796290786: Error found at /etc/mosquitto/mosquitto.conf:13.\n1796290786: Client <unknown> closed its connection.\n",
			[]string{"Error: Unable to open config file /etc/mosquitto/conf.d/mosqprov-bridges.conf.", "Error found at /etc/mosquitto/mosquitto.conf:13."}},
		{"a client's error after a clean reload", "1796290786: Reloading config.\n1796290786: Loading config file /etc/mosquitto/conf.d/mosqprov.conf\n1796290786: New connection from 127.0.0.1:1 on port 1883.\n1796290787: Error: client sent a bad packet.\n", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(root, log), []byte(before), 0o644); err != nil {
				t.Fatal(err)
			}
			m := s.markLogs()
			if len(m) != 1 || m[log] != len(before) {
				t.Fatalf("mark %v", m)
			}
			f, err := os.OpenFile(filepath.Join(root, log), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString(c.after)
			f.Close()
			if got := s.reloadRefused(m); strings.Join(got, "|") != strings.Join(c.want, "|") {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
	// No log files: nothing to check, no wait.
	s.LogFiles = func() []string { return []string{"/var/log/mosquitto/missing.log"} }
	if m := s.markLogs(); m != nil || s.reloadRefused(m) != nil {
		t.Errorf("without log files: mark %v", m)
	}
}
