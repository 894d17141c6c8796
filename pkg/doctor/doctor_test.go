package doctor

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/pki"
	"github.com/mosqprov/mosqprov/pkg/spec"
	"github.com/mosqprov/mosqprov/pkg/state"
	"github.com/mosqprov/mosqprov/pkg/system"
	"github.com/mosqprov/mosqprov/pkg/systemd"
)

// install is a broker installation under a temp root, laid out the way
// mosqprov lays it out, with certificates made here (generated fixtures).
type install struct {
	t        *testing.T
	root     string
	sys      *system.Real
	runner   *system.Recorder
	uid, gid int
	spec     *spec.Spec
	ca       *pki.CA
}

const debianConf = `# Place your local configuration in /etc/mosquitto/conf.d/
pid_file /run/mosquitto/mosquitto.pid
persistence true
persistence_location /var/lib/mosquitto/
log_dest file /var/log/mosquitto/mosquitto.log
include_dir /etc/mosquitto/conf.d
`

func newInstall(t *testing.T) *install {
	t.Helper()
	return newInstallAt(t, t.TempDir())
}

func newInstallAt(t *testing.T, root string) *install {
	t.Helper()
	in := &install{t: t, root: root, runner: &system.Recorder{}}
	in.sys = system.NewReal(in.root, system.WithRunner(in.runner))
	acct, err := in.sys.LookupUser(layout.BrokerUser)
	if err != nil {
		t.Fatalf("the mosquitto user is needed (apt-get install -y mosquitto): %v", err)
	}
	in.uid, in.gid = acct.UID, acct.GID
	in.runner.On("dpkg-query", system.Output{Stdout: []byte("mosquitto\tinstalled\t2.0.11-1.2+deb12u1\n")}, nil)

	now := time.Now()
	caIss, err := pki.NewCA(rand.Reader, now, pki.CARequest{CommonName: "doctor test CA", KeyType: pki.ECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	in.ca = &pki.CA{Cert: caIss.Cert, Key: caIss.Key}
	in.write(layout.CAKey, caIss.KeyPEM, 0o600, 0, 0)
	in.write(layout.CACert, caIss.CertPEM, 0o644, 0, 0)
	in.write(layout.BrokerCACert, caIss.CertPEM, 0o644, 0, 0)
	in.serverCert(now, 825, []string{"pi.home.arpa", "localhost"}, []string{"127.0.0.1", "192.0.2.10"})
	in.write(layout.MosquittoConf, []byte(debianConf), 0o644, 0, 0)
	in.write(layout.DropIn, []byte(`# managed by mosqprov
per_listener_settings false
allow_anonymous false
password_file /etc/mosquitto/passwd
acl_file /etc/mosquitto/acl
listener 1883 127.0.0.1
listener 8883
certfile /etc/mosquitto/certs/server.crt
keyfile /etc/mosquitto/certs/server.key
listener 9443
protocol websockets
certfile /etc/mosquitto/certs/server.crt
keyfile /etc/mosquitto/certs/server.key
`), 0o644, 0, 0)
	in.write(layout.PasswordFile, []byte("alice:"+mosquittoHash(t, "alice", "pw-alice")+"\n"), 0o600, in.uid, in.gid)
	in.write(layout.ACLFile, []byte("user alice\ntopic readwrite home/#\n"), 0o600, in.uid, in.gid)
	in.spec, err = spec.Parse("broker.yaml", []byte(`hostname: pi.home.arpa
ips: [192.0.2.10]
listeners:
  - {type: mqtt, bind: 127.0.0.1}
  - {type: mqtts}
  - {type: wss}
`))
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func (in *install) serverCert(now time.Time, days int, names, ips []string) {
	in.t.Helper()
	srv, err := pki.IssueServer(rand.Reader, now, in.ca, pki.ServerRequest{Names: names, IPs: ips, KeyType: pki.ECDSAP256, Days: days})
	if err != nil {
		in.t.Fatal(err)
	}
	in.write(layout.ServerCert, srv.CertPEM, 0o644, 0, 0)
	in.write(layout.ServerKey, srv.KeyPEM, 0o600, in.uid, in.gid)
}

func (in *install) write(p string, data []byte, mode os.FileMode, uid, gid int) {
	in.t.Helper()
	hp := in.sys.HostPath(p)
	if err := os.MkdirAll(filepath.Dir(hp), 0o755); err != nil {
		in.t.Fatal(err)
	}
	if err := os.WriteFile(hp, data, mode); err != nil {
		in.t.Fatal(err)
	}
	if err := os.Chmod(hp, mode); err != nil {
		in.t.Fatal(err)
	}
	if err := os.Chown(hp, uid, gid); err != nil {
		in.t.Fatal(err)
	}
}

func (in *install) appendTo(p, text string) {
	in.t.Helper()
	f, err := os.OpenFile(in.sys.HostPath(p), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		in.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		in.t.Fatal(err)
	}
}

// mosquittoHash makes a hash with the real mosquitto_passwd.
func mosquittoHash(t *testing.T, user, password string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(f, nil, 0o600)
	// Throwaway test credentials: -b puts them in argv, which mosqprov never does.
	if out, err := exec.Command("mosquitto_passwd", "-b", f, user, password).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd (apt-get install -y mosquitto): %v: %s", err, out)
	}
	data, _ := os.ReadFile(f)
	_, hash, _ := strings.Cut(strings.TrimSpace(string(data)), ":")
	return hash
}

type fakeHost []net.IP

func (h fakeHost) Hostname() (string, error) { return "pi", nil }
func (h fakeHost) Addrs() ([]net.IP, error)  { return h, nil }
func ips(s ...string) (out fakeHost) {
	for _, v := range s {
		out = append(out, net.ParseIP(v))
	}
	return out
}

// fakeService answers as systemctl and journalctl would.
type fakeService struct {
	active, sub, enabled string
	journal              []string
}

func (f fakeService) Manageable() (bool, string) { return true, "" }
func (f fakeService) Status(context.Context) (systemd.Status, error) {
	return systemd.Status{Unit: "mosquitto", ActiveState: f.active, SubState: f.sub, Enabled: f.enabled, Journal: f.journal}, nil
}

func (in *install) run(mod func(c *Checker)) Report {
	in.t.Helper()
	c := &Checker{Sys: in.sys, Spec: in.spec, SpecPath: "broker.yaml", Host: ips("192.0.2.10"),
		Service: fakeService{active: "active", sub: "running", enabled: "enabled"}}
	if mod != nil {
		mod(c)
	}
	return c.Run(context.Background())
}

func find(r Report, id string) (Finding, bool) {
	for _, f := range r.Findings {
		if f.ID == id {
			return f, true
		}
	}
	return Finding{}, false
}

func wantFinding(t *testing.T, r Report, id string, sev Severity, problem string) Finding {
	t.Helper()
	f, ok := find(r, id)
	if !ok || f.Severity != sev || !strings.Contains(f.Problem, problem) {
		t.Fatalf("want %s %s containing %q; got %+v\nall: %s", sev, id, problem, f, dump(r))
	}
	if f.Why == "" || f.Fix == "" {
		t.Fatalf("%s lacks why or fix: %+v", id, f)
	}
	return f
}

func dump(r Report) string {
	var b strings.Builder
	for _, f := range r.Findings {
		fmt.Fprintf(&b, "\n  %s %s %s: %s", f.Severity, f.ID, f.Subject, f.Problem)
	}
	return b.String()
}

func TestHealthyInstall(t *testing.T) {
	in := newInstall(t)
	if _, err := state.Record(in.sys, []string{layout.DropIn, layout.PasswordFile, layout.ACLFile, layout.ServerCert}, ""); err != nil {
		t.Fatal(err)
	}
	r := in.run(nil)
	for _, f := range r.Findings {
		// The WebSocket listener on every interface is what was asked for.
		if f.Severity != Info {
			t.Fatalf("unexpected finding on a healthy install:%s", dump(r))
		}
	}
	if got := r.Facts[0]; got.Name != "mosquitto" || got.Value != "2.0.11-1.2+deb12u1" {
		t.Fatalf("facts %+v", r.Facts)
	}
}

func TestFindings(t *testing.T) {
	for _, tc := range []struct {
		name    string
		break_  func(in *install, c *Checker) // changes files, or the Checker
		id      string
		sev     Severity
		problem string
		fix     string // the fix must contain it, when given
	}{
		{"world-readable server key", func(in *install, _ *Checker) {
			os.Chmod(in.sys.HostPath(layout.ServerKey), 0o644)
		}, IDSecretExposed, Error, "server key is readable by every user", ""},
		{"CA key given to the broker (the article's chown -R)", func(in *install, _ *Checker) {
			os.Chown(in.sys.HostPath(layout.CAKey), in.uid, in.gid)
		}, IDCAKeyReadable, Error, "readable by the broker's user mosquitto", ""},
		{"a CA key next to the broker's certificates, world-readable", func(in *install, _ *Checker) {
			in.write(layout.BrokerCertDir+"/ca.key", []byte("x"), 0o644, 0, 0)
		}, IDCAKeyReadable, Error, "readable by the broker's user", ""},
		{"password file only root can read", func(in *install, _ *Checker) {
			os.Chown(in.sys.HostPath(layout.PasswordFile), 0, 0)
		}, IDSecretUnreadable, Error, "password file is not readable by the broker's user mosquitto (owner root:root, mode 0600)", ""},
		{"a conf.d file only root can read (the broker stops its reload there)", func(in *install, _ *Checker) {
			in.write("/etc/mosquitto/conf.d/local.conf", []byte("# this machine's own\n"), 0o600, 0, 0)
		}, IDConfUnreadable, Error, "configuration file /etc/mosquitto/conf.d/local.conf is not readable by its user mosquitto (owner root:root, mode 0600)", "sudo chgrp mosquitto /etc/mosquitto/conf.d/local.conf && sudo chmod 640 /etc/mosquitto/conf.d/local.conf"},
		{"ACL file root:mosquitto 0640", func(in *install, _ *Checker) {
			os.Chown(in.sys.HostPath(layout.ACLFile), 0, in.gid)
			os.Chmod(in.sys.HostPath(layout.ACLFile), 0o640)
		}, IDSecretOwner, Warning, "ACL file is not owned by mosquitto", ""},
		{"password file replaced by a symlink (issue 11)", func(in *install, _ *Checker) {
			host := in.sys.HostPath(layout.PasswordFile)
			os.Rename(host, host+".real")
			os.Symlink("passwd.real", host)
		}, IDSymlink, Error, "/etc/mosquitto/passwd is a symlink to passwd.real, not a file", "cp --remove-destination"},
		{"server key replaced by a symlink", func(in *install, _ *Checker) {
			host := in.sys.HostPath(layout.ServerKey)
			os.Remove(host)
			os.Symlink("/etc/ssl/private/other.key", host)
		}, IDSymlink, Error, "/etc/mosquitto/certs/server.key is a symlink to /etc/ssl/private/other.key", ""},
		{"crypt(3) line", func(in *install, _ *Checker) {
			in.appendTo(layout.PasswordFile, "bob:"+cryptHash(in.t)+"\n")
		}, IDPasswdLine, Error, `line 2 (user "bob")`, ""},
		{"plaintext line", func(in *install, _ *Checker) {
			in.appendTo(layout.PasswordFile, "carol:hunter2\n")
		}, IDPasswdLine, Error, `user "carol"`, ""},
		{"duplicate user", func(in *install, _ *Checker) {
			in.appendTo(layout.PasswordFile, "alice:"+mosquittoHash(in.t, "alice", "other")+"\n")
		}, IDPasswdLine, Warning, "appears again on line 2", "user add alice"},
		{"duplicate of a user broker.yaml holds", func(in *install, _ *Checker) {
			in.spec.Users = []spec.User{{Name: "alice", PasswordEnv: "ALICE_PW"}}
			in.appendTo(layout.PasswordFile, "alice:"+mosquittoHash(in.t, "alice", "other")+"\n")
		}, IDPasswdLine, Warning, "appears again on line 2", "sudo mosqprov apply   (rewrites the user's line from broker.yaml)"},
		{"expired certificate", func(in *install, _ *Checker) {
			in.serverCert(time.Now().AddDate(0, 0, -30), 10, []string{"pi.home.arpa", "localhost"}, []string{"127.0.0.1", "192.0.2.10"})
		}, IDCertExpired, Error, "expired on", ""},
		{"certificate expiring", func(in *install, _ *Checker) {
			in.serverCert(time.Now(), 12, []string{"pi.home.arpa", "localhost"}, []string{"127.0.0.1", "192.0.2.10"})
		}, IDCertExpiring, Warning, "expires in 11 days", ""},
		{"a spec name missing from the certificate", func(in *install, _ *Checker) {
			in.spec.Names = []string{"mqtt.home.arpa"}
		}, IDCertName, Error, "mqtt.home.arpa in broker.yaml but not in the server certificate", ""},
		{"the host got a new address", func(_ *install, c *Checker) {
			c.Host = ips("192.0.2.10", "192.0.2.77")
		}, IDCertAddress, Warning, "192.0.2.77 is not in the server certificate", "add 192.0.2.77 to ips: in /etc/mosqprov/broker.yaml"},
		{"the host got a new address, no broker.yaml", func(in *install, c *Checker) {
			c.Spec = nil
			c.Host = ips("192.0.2.10", "192.0.2.77", "2001:db8::77")
		}, IDCertAddress, Warning, "address 192.0.2.77 is not", "sudo mosqprov cert server --name pi.home.arpa --name localhost --ip 127.0.0.1 --ip 192.0.2.10 --ip 192.0.2.77"},
		{"certificate without SANs (the article's)", func(in *install, _ *Checker) {
			out, err := exec.Command("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", filepath.Join(in.t.TempDir(), "k"),
				"-subj", "/CN=raspberrypi.local", "-days", "365", "-out", in.sys.HostPath(layout.ServerCert), "-addext", "basicConstraints=CA:FALSE").CombinedOutput()
			if err != nil {
				in.t.Fatalf("openssl: %v %s", err, out)
			}
		}, IDCertNoSAN, Error, `only CN "raspberrypi.local"`, "sudo mosqprov apply"},
		{"certificate from another CA", func(in *install, _ *Checker) {
			other, _ := pki.NewCA(rand.Reader, time.Now(), pki.CARequest{CommonName: "other", KeyType: pki.ECDSAP256})
			in.ca = &pki.CA{Cert: other.Cert, Key: other.Key}
			in.serverCert(time.Now(), 100, []string{"pi.home.arpa", "localhost"}, []string{"127.0.0.1", "192.0.2.10"})
		}, IDCertUntrusted, Error, "does not verify against /etc/mosquitto/certs/ca.crt", ""},
		{"plain MQTT on every interface (the article's)", func(in *install, _ *Checker) {
			in.appendTo(layout.MosquittoConf, "listener 1884 0.0.0.0\n")
		}, IDPlainListener, Warning, "plain MQTT listener on port 1884 is reachable on every interface", "sudoedit /etc/mosquitto/mosquitto.conf   (line 7: `listener 1884 127.0.0.1`"},
		{"plain MQTT on every interface with anonymous access", func(in *install, _ *Checker) {
			in.appendTo(layout.DropIn, "listener 1884\nallow_anonymous true\n")
		}, IDPlainListener, Error, "port 1884", ""},
		{"plain WebSockets on loopback with 2.0.11", func(in *install, _ *Checker) {
			in.appendTo(layout.DropIn, "listener 8080 127.0.0.1\nprotocol websockets\n")
		}, IDPlainListener, Warning, "mosquitto 2.0.11-1.2+deb12u1 ignores the bind address", "in broker.yaml replace the ws listener with {type: wss}"},
		{"WebSockets over TLS bound to an address", func(in *install, _ *Checker) {
			in.appendTo(layout.DropIn, "listener 9444 192.0.2.10\nprotocol websockets\ncertfile /etc/mosquitto/certs/server.crt\n")
		}, IDWebSocketBind, Warning, "bound to 192.0.2.10", `tcp dport 9444 ip daddr != 192.0.2.10 drop; iifname != "lo" tcp dport 9444 meta nfproto ipv6 drop; }; }`},
		{"the article's listener left in mosquitto.conf", func(in *install, _ *Checker) {
			in.appendTo(layout.MosquittoConf, "listener 8883\ncertfile /etc/mosquitto/certs/server.crt\n")
		}, IDListenerClash, Error, "port 8883 is declared again here; it is already at /etc/mosquitto/mosquitto.conf:7",
			"sudoedit /etc/mosquitto/mosquitto.conf   (remove the listener at line 7)"},
		{"a file edited by hand since the last apply", func(in *install, _ *Checker) {
			if _, err := state.Record(in.sys, []string{layout.DropIn, layout.ACLFile}, ""); err != nil {
				in.t.Fatal(err)
			}
			in.appendTo(layout.ACLFile, "topic read #\n")
		}, IDDrift, Warning, "changed by hand since the last apply", ""},
		{"package not installed", func(in *install, _ *Checker) {
			in.runner.On("dpkg-query", system.Output{Stdout: []byte("mosquitto\tconfig-files\t2.0.11-1.2+deb12u1\n")}, nil)
		}, IDPackageMissing, Error, "not installed", ""},
		{"service failed", func(_ *install, c *Checker) {
			c.Service = fakeService{active: "failed", sub: "failed", enabled: "enabled", journal: []string{
				"Nov 26 06:00:01 pi mosquitto[812]: 1764136801: Opening ipv4 listen socket on port 8883.",
				"Nov 26 06:00:01 pi mosquitto[812]: 1764136801: Error: Address already in use",
				"Nov 26 06:00:01 pi systemd[1]: mosquitto.service: Main process exited, code=exited, status=1/FAILURE",
			}}
		}, IDServiceInactive, Error, "last journal error: 1764136801: Error: Address already in use", ""},
		{"service disabled", func(_ *install, c *Checker) {
			c.Service = fakeService{active: "active", sub: "running", enabled: "disabled"}
		}, IDServiceDisabled, Warning, "not enabled (disabled)", ""},
		{"service failing in a restart loop", func(_ *install, c *Checker) {
			c.Service = fakeService{active: "activating", sub: "auto-restart", enabled: "enabled"}
		}, IDServiceInactive, Error, "failing; systemd keeps restarting it", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := newInstall(t)
			r := in.run(func(c *Checker) { tc.break_(in, c) })
			if f := wantFinding(t, r, tc.id, tc.sev, tc.problem); !strings.Contains(f.Fix, tc.fix) {
				t.Fatalf("fix %q, want it to contain %q", f.Fix, tc.fix)
			}
			if tc.id == IDSymlink {
				// A link is named as a link, not by the link's own mode.
				for _, f := range r.Findings {
					if strings.Contains(f.Problem, "0777") {
						t.Errorf("a symlink reported by its mode: %+v", f)
					}
				}
			}
		})
	}
}

func cryptHash(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("openssl", "passwd", "-6", "-salt", "abcdefgh", "secret").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

func TestWebSocketBindOnlyOnAffectedVersions(t *testing.T) {
	for _, tc := range []struct {
		version string
		want    bool
	}{{"2.0.11-1.2+deb12u1", true}, {"1.6.9-1", true}, {"2.0.12-1", false}, {"2.0.21-1", false}, {"2.1.2-1", false}} {
		in := newInstall(t)
		in.runner.On("dpkg-query", system.Output{Stdout: []byte("mosquitto\tinstalled\t" + tc.version + "\n")}, nil)
		in.appendTo(layout.DropIn, "listener 8080 127.0.0.1\nprotocol websockets\n")
		_, got := find(in.run(nil), IDPlainListener)
		if got != tc.want {
			t.Errorf("%s: plain-listener for ws on 127.0.0.1 = %v, want %v", tc.version, got, tc.want)
		}
	}
}
