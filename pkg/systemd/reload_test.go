package systemd

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mosqprov/mosqprov/pkg/system"
)

// What the broker's log gets after a SIGHUP, as 2.0.11 and 2.1.2 write it
// (seen in TestApplyInRealSystemd, pkg/plan, and TestReloadRefusedRealBroker):
// a clean reload, one that stops at a conf.d file the mosquitto user can't
// read, a password file it can't open (2.1.2 exits) and a bad CRL.
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
		// 2.0 runs on without a password file it can't open.
		{"password file, 2.0", "1796307070: Reloading config.\n1796307070: Error: Unable to open pwfile \"/etc/mosquitto/passwd\".\n1796307070: Error opening password file \"/etc/mosquitto/passwd\".\n1796307072: New connection from 127.0.0.1:1 on port 1883.\n",
			[]string{`Error: Unable to open pwfile "/etc/mosquitto/passwd".`, `Error opening password file "/etc/mosquitto/passwd".`}},
		// 2.1.2 exits on it.
		{"password file, 2.1", "1796307071: Reloading config.\n1796307071: password-file: Error: Unable to open pwfile \"/etc/mosquitto/passwd\".\n1796307071: mosquitto version 2.1.2 terminating\n",
			[]string{`password-file: Error: Unable to open pwfile "/etc/mosquitto/passwd".`, "mosquitto version 2.1.2 terminating"}},
		// The reload's errors, each once; a new broker's start ends the reload.
		{"CRL, 2.1, started again", "1796307073: Reloading config.\n1796307073: Error: Unable to load certificate revocation file \"/c/crl.pem\". Check crlfile.\n1796307073: OpenSSL Error [0]: error:0480006C:PEM routines::no start line\n1796307073: Error when reloading certificate '/c/s.crt' or key '/c/s.key'.\n1796307073: Error: Unable to load certificate revocation file \"/c/crl.pem\". Check crlfile.\n1796307073: mosquitto version 2.1.2 terminating\n1796307074: mosquitto version 2.1.2 starting\n1796307074: Error: Unable to open pwfile \"/x\".\n",
			[]string{`Error: Unable to load certificate revocation file "/c/crl.pem". Check crlfile.`, "OpenSSL Error [0]: error:0480006C:PEM routines::no start line", "Error when reloading certificate '/c/s.crt' or key '/c/s.key'.", "mosquitto version 2.1.2 terminating"}},
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
			err = s.reloadRefused(m)
			if c.want == nil {
				if err != nil {
					t.Errorf("got %v, want no error", err)
				}
				return
			}
			want := errReloadRefused
			if strings.HasSuffix(c.want[len(c.want)-1], " terminating") {
				want = errReloadExited
			}
			if !errors.Is(err, want) || err.Error() != want.Error()+": "+strings.Join(c.want, " ") {
				t.Errorf("got %v\nwant %v: %s", err, want, strings.Join(c.want, " "))
			}
		})
	}
	// No log files: nothing to check, no wait.
	s.LogFiles = func() []string { return []string{"/var/log/mosquitto/missing.log"} }
	if m := s.markLogs(); m != nil || s.reloadRefused(m) != nil {
		t.Errorf("without log files: mark %v", m)
	}
}
