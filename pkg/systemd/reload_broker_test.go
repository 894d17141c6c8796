package systemd

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mosqprov/mosqprov/internal/brokertest"
	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// brokerUnit answers systemctl for a host whose mosquitto unit is the
// test's real broker, as Debian's unit does: reload is SIGHUP
// (ExecReload=/bin/kill -HUP $MAINPID), restart runs the broker again on
// the same files, and a broker that ended is inactive (exit 0) or failed.
type brokerUnit struct {
	t, top    *testing.T
	dir, conf string
	m         brokertest.Mosquitto
	mu        sync.Mutex
	b         *brokertest.Broker
	ports     []int
	calls     []string
	// ended is whether the broker a restart replaced had ended on its own,
	// and how.
	ended  bool
	endErr error
	// lastLog is the replaced broker's log.
	lastLog string
}

func (u *brokerUnit) Run(_ context.Context, cmd system.Cmd) (system.Output, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	line := cmd.String()
	u.calls = append(u.calls, line)
	switch line {
	case "systemctl is-active mosquitto":
		if ended, err := u.b.Exited(); ended {
			if err != nil {
				return system.Output{Stdout: []byte("failed\n"), ExitCode: 3}, nil
			}
			return system.Output{Stdout: []byte("inactive\n"), ExitCode: 3}, nil
		}
		return system.Output{Stdout: []byte("active\n")}, nil
	case "systemctl reload mosquitto":
		return system.Output{}, u.b.Reload()
	case "systemctl restart mosquitto":
		u.ended, u.endErr = u.b.Exited()
		// A broker that logged its end is given a moment to be gone.
		for i := 0; i < 40 && !u.ended && strings.Contains(u.b.ReadLog(), " terminating"); i++ {
			time.Sleep(25 * time.Millisecond)
			u.ended, u.endErr = u.b.Exited()
		}
		if !u.ended {
			if err := u.b.Shutdown(); err != nil {
				return system.Output{}, err
			}
		}
		// The next broker's log starts empty, so that Reload waits for its
		// own "running" line (its signal handlers).
		u.lastLog = u.b.ReadLog()
		if err := os.Truncate(u.b.Log, 0); err != nil {
			return system.Output{}, err
		}
		b, err := u.m.StartErr(u.dir, u.conf, u.ports...)
		if err != nil {
			return system.Output{}, err
		}
		u.top.Cleanup(b.Stop) // the subtest that restarts it is not its owner
		u.b = b
		return system.Output{}, nil
	case "systemctl show -p User --value mosquitto":
		// 2.0's unit (no User=): a restart runs the broker as root, as
		// this one's does.
		return system.Output{Stdout: []byte("\n")}, nil
	case "systemctl reset-failed mosquitto":
		return system.Output{}, nil
	}
	if cmd.Name == "journalctl" {
		return system.Output{}, nil
	}
	u.t.Errorf("unexpected command %s", line)
	return system.Output{}, fmt.Errorf("unexpected command %s", line)
}

// TestReloadRefusedRealBroker is what each real broker (2.0.11, 2.0.21,
// 2.1.2) does on a reload it can't take, and what Settle makes of it: a
// conf.d file the mosquitto user can't read, an unknown directive, a
// password file or an ACL file it can't read, a mutual-TLS listener's CRL
// that isn't one. 2.0 runs on with the old files (or, for the password
// file, refusing every login); 2.1.2 runs on after a configuration error
// but exits on the password file, the ACL file (status 13) and the CRL
// (status 8). Each is a failure with the broker's words, the files put back and
// the broker up on them; a clean reload is a success.
func TestReloadRefusedRealBroker(t *testing.T) {
	brokertest.RequireBrokerUser(t)
	brokertest.Each(t, testReloadRefusedRealBroker)
}

func testReloadRefusedRealBroker(t *testing.T, m brokertest.Mosquitto) {
	dir := brokertest.Dir(t)
	confd := filepath.Join(dir, "conf.d")
	if err := os.Mkdir(confd, 0o755); err != nil {
		t.Fatal(err)
	}
	sys := system.NewReal("/")
	mine := system.Attr{Mode: 0o600, User: "mosquitto", Group: "mosquitto"}
	write := func(sys system.System, path, content string, attr system.Attr) {
		t.Helper()
		if _, err := sys.WriteFile(path, []byte(content), attr); err != nil {
			t.Fatal(err)
		}
	}
	// alice:s3cret and bob:s3cret, PBKDF2-SHA512 lines from mosquitto_passwd (test fixtures).
	alice := "alice:$7$101$/RETahMn8iLZFAWB$lLA65Issc+Tus5dOSfTp2G4KbiEJ6MG7RwIxFv2fRXaDFglSObQ+jFE1mc4FO9AdVz2rZBcErST27q4yVx4rYQ==\n"
	bob := strings.Replace(alice, "alice:", "bob:", 1)
	pw, acl, crl := filepath.Join(dir, "passwd"), filepath.Join(dir, "acl"), filepath.Join(dir, "crl.pem")
	write(sys, pw, alice, mine)
	write(sys, acl, "pattern readwrite t/#\n", mine)
	ca, cert, key, crlPEM := testPKI(t)
	write(sys, filepath.Join(dir, "ca.crt"), ca, system.Attr{Mode: 0o644})
	write(sys, filepath.Join(dir, "server.crt"), cert, system.Attr{Mode: 0o644})
	write(sys, filepath.Join(dir, "server.key"), key, mine)
	write(sys, crl, crlPEM, system.Attr{Mode: 0o644})
	port, tport := brokertest.FreePort(t), brokertest.FreePort(t)
	// crlfile on a mutual-TLS listener, the only place mosqprov writes one.
	write(sys, filepath.Join(confd, "mosqprov.conf"), fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous false\npassword_file %s\nacl_file %s\n"+
		"listener %d 127.0.0.1\ncafile %[5]s/ca.crt\ncertfile %[5]s/server.crt\nkeyfile %[5]s/server.key\nrequire_certificate true\ncrlfile %[6]s\n",
		port, pw, acl, tport, dir, crl), system.Attr{Mode: 0o644})
	unit := &brokerUnit{t: t, top: t, m: m, dir: dir, conf: "include_dir " + confd + "\n", ports: []int{port, tport}}
	unit.b = m.Start(t, dir, unit.conf, port, tport)
	login := func(user string) error {
		return brokertest.Client{Port: port, User: user, Password: "s3cret"}.Publish("t/reload", "x")
	}

	for _, c := range []struct {
		name string
		// change is what this run writes (through sys, so a rollback puts it back).
		change func(sys system.System)
		// want are the broker's words in the error, per version; none for
		// a reload the broker takes.
		want   func(m brokertest.Mosquitto) []string
		exits  func(m brokertest.Mosquitto) bool
		lineup string // a user who logs in after
	}{
		{"a new user", func(sys system.System) { write(sys, pw, alice+bob, mine) }, nil, nil, "bob"},
		{"a conf.d file only root reads", func(sys system.System) {
			write(sys, filepath.Join(confd, "local.conf"), "# this machine's own\n", system.Attr{Mode: 0o600, User: "root", Group: "root"})
		}, func(m brokertest.Mosquitto) []string {
			f := filepath.Join(confd, "local.conf")
			if m.AtLeast(2, 1) {
				f = "'" + f + "'"
			}
			return []string{"Error: Unable to open config file " + f + ".", "Error found at " + unit.b.Conf + ":1."}
		}, nil, "alice"},
		{"an unknown directive", func(sys system.System) {
			write(sys, filepath.Join(confd, "local.conf"), "no_such_directive 3\n", system.Attr{Mode: 0o644})
		}, func(m brokertest.Mosquitto) []string {
			f := filepath.Join(confd, "local.conf") + ":1"
			if m.AtLeast(2, 1) {
				return []string{"Error: Unknown configuration variable 'no_such_directive'.", "Error found at '" + f + "'.", "Error found at " + unit.b.Conf + ":1."}
			}
			return []string{`Error: Unknown configuration variable "no_such_directive".`, "Error found at " + f + ".", "Error found at " + unit.b.Conf + ":1."}
		}, nil, "alice"},
		{"a password file only root reads", func(sys system.System) {
			write(sys, pw, alice+bob, system.Attr{Mode: 0o600, User: "root", Group: "root"})
		}, func(m brokertest.Mosquitto) []string {
			if m.AtLeast(2, 1) {
				return []string{`password-file: Error: Unable to open pwfile "` + pw + `".`, "mosquitto version " + m.Version + " terminating"}
			}
			return []string{`Error: Unable to open pwfile "` + pw + `".`, `Error opening password file "` + pw + `".`}
		}, func(m brokertest.Mosquitto) bool { return m.AtLeast(2, 1) }, "alice"},
		{"an ACL file only root reads", func(sys system.System) {
			write(sys, acl, "pattern readwrite t/#\npattern read u/#\n", system.Attr{Mode: 0o600, User: "root", Group: "root"})
		}, func(m brokertest.Mosquitto) []string {
			w := []string{`Error: Unable to open acl_file "` + acl + `".`, `Error opening acl file "` + acl + `".`}
			if m.AtLeast(2, 1) {
				w = append(w, "mosquitto version "+m.Version+" terminating")
			}
			return w
		}, func(m brokertest.Mosquitto) bool { return m.AtLeast(2, 1) }, "alice"},
		{"a CRL that isn't one", func(sys system.System) {
			write(sys, crl, "not a CRL\n", system.Attr{Mode: 0o644})
		}, func(m brokertest.Mosquitto) []string {
			w := []string{`Error: Unable to load certificate revocation file "` + crl + `". Check crlfile.`, "Error when reloading certificate '" + dir + "/server.crt' or key '" + dir + "/server.key'."}
			if m.AtLeast(2, 1) {
				w = append(w, "mosquitto version "+m.Version+" terminating")
			}
			return w
		}, func(m brokertest.Mosquitto) bool { return m.AtLeast(2, 1) }, "alice"},
	} {
		t.Run(c.name, func(t *testing.T) {
			unit.t = t
			run := system.NewReal("/", system.WithRunner(unit))
			s := New(run)
			s.Booted = func() bool { return true }
			s.Listeners = func(context.Context) ([]Listener, error) {
				return []Listener{{Port: port, Bind: "127.0.0.1"}, {Port: tport, Bind: "127.0.0.1"}}, nil
			}
			s.LogFiles = func() []string { return []string{unit.b.Log} }
			s.BrokerLog = nil
			s.UpTimeout, s.Poll = 20*time.Second, 50*time.Millisecond
			c.change(run)
			before := unit.b
			unit.ended, unit.endErr = false, nil
			var log string
			defer func() {
				if t.Failed() {
					t.Logf("the broker's log:\n%s", log)
				}
			}()
			ch, err := s.Settle(context.Background(), system.NeedReload)
			if log = unit.lastLog; unit.b == before {
				log = before.ReadLog()
			}
			if c.want == nil {
				if err != nil {
					t.Fatalf("a reload the broker takes failed: %v", err)
				}
				if ch.Action != system.Reload || unit.b != before {
					t.Fatalf("not one reload: %+v, %q", ch, unit.calls)
				}
			} else {
				if err == nil {
					t.Fatalf("the reload succeeded: %q", unit.calls)
				}
				want, sentinel := c.want(m), errReloadRefused
				exits := c.exits != nil && c.exits(m)
				if exits {
					sentinel = errReloadExited
				}
				// rollback keeps the cause's words, not the cause.
				if !strings.Contains(err.Error(), sentinel.Error()+": ") || !errors.Is(err, errs.ErrRolledBack) || strings.Contains(err.Error(), "\n") {
					t.Errorf("got %v\nwant one line, %v, rolled back", err, sentinel)
				}
				for _, w := range want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("the error lacks the broker's %q:\n%v", w, err)
					}
				}
				if unit.ended != exits {
					t.Errorf("mosquitto %s ended on the reload: %v (%v), want %v", m, unit.ended, unit.endErr, exits)
				}
				t.Logf("mosquitto %s ended on the reload: %v (exit: %v); the error: %v", m, unit.ended, unit.endErr, err)
				if unit.b == before {
					t.Errorf("no restart on the old files: %q", unit.calls)
				}
			}
			if err := login(c.lineup); err != nil {
				t.Errorf("%s after the reload: %v\n%s", c.lineup, err, unit.b.ReadLog())
			}
		})
	}
}

// testPKI is a CA, a server certificate for 127.0.0.1 and its key, and an
// empty CRL, in PEM (generated test fixtures).
func testPKI(t *testing.T) (ca, cert, key, crl string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "reload test CA"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	crlDER, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: now.Add(-time.Hour), NextUpdate: now.Add(24 * time.Hour)}, caCert, caKey)
	if err != nil {
		t.Fatal(err)
	}
	p := func(typ string, der []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	}
	return p("CERTIFICATE", caDER), p("CERTIFICATE", srvDER), p("EC PRIVATE KEY", keyDER), p("X509 CRL", crlDER)
}
