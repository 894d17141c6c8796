package doctor

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mosqprov/mosqprov/internal/brokertest"
	"github.com/mosqprov/mosqprov/pkg/layout"
)

// These tests show that what doctor calls an error is one for the real
// broker: the same files, handed to mosquitto 2.0, fail the same way.

// brokerConf is the install's configuration with its paths made real, for
// the broker started here (which reads host paths, not --root ones).
func (in *install) brokerConf(extra string) string {
	main, _ := os.ReadFile(in.sys.HostPath(layout.MosquittoConf))
	drop, _ := os.ReadFile(in.sys.HostPath(layout.DropIn))
	var keep []string
	for _, l := range strings.Split(string(main)+string(drop)+extra, "\n") {
		// The Debian lines that need /run and /var/log are not the point here.
		if strings.HasPrefix(l, "pid_file") || strings.HasPrefix(l, "persistence") || strings.HasPrefix(l, "log_dest") || strings.HasPrefix(l, "include_dir") {
			continue
		}
		keep = append(keep, l)
	}
	return strings.ReplaceAll(strings.Join(keep, "\n"), " /etc/", " "+in.root+"/etc/")
}

func (in *install) plainOnly(port int) {
	in.write(layout.DropIn, []byte(fmt.Sprintf("per_listener_settings false\nallow_anonymous false\npassword_file /etc/mosquitto/passwd\nlistener %d 127.0.0.1\n", port)), 0o644, 0, 0)
	for _, d := range []string{"/etc", "/etc/mosquitto"} {
		os.Chmod(in.sys.HostPath(d), 0o755)
	}
}

func TestCryptLineAgainstRealBroker(t *testing.T) {
	brokertest.Require(t)
	in := newInstallAt(t, brokertest.Dir(t))
	port := brokertest.FreePort(t)
	in.plainOnly(port)
	in.appendTo(layout.PasswordFile, "bob:"+cryptHash(t)+"\n")
	brokertest.Start(t, in.root, in.brokerConf(""), port)

	if err := (brokertest.Client{Port: port, User: "alice", Password: "pw-alice"}).Publish("t", "m"); err != nil {
		t.Fatalf("alice, a mosquitto_passwd line, should log in: %v", err)
	}
	err := (brokertest.Client{Port: port, User: "bob", Password: "secret"}).Publish("t", "m")
	if err == nil {
		t.Fatal("the broker accepted a crypt(3) line: doctor's passwd-line error would be wrong")
	}
	r := in.run(nil)
	f := wantFinding(t, r, IDPasswdLine, Error, `line 2 (user "bob")`)
	// bob is not in broker.yaml, so user add (not apply) rewrites him.
	if !strings.Contains(f.Problem, "crypt(3)") || f.Fix != "sudo mosqprov user add bob   (asks for a new password, stores a hash the broker accepts)" {
		t.Fatalf("%+v", f)
	}
	if n := len(r.Findings); r.Count(Error) != 1 {
		t.Fatalf("%d findings, want only bob's line as an error:%s", n, dump(r))
	}
}

func TestUnreadablePasswordFileStopsRealBroker(t *testing.T) {
	brokertest.Require(t)
	in := newInstallAt(t, brokertest.Dir(t))
	port := brokertest.FreePort(t)
	in.plainOnly(port)
	os.Chown(in.sys.HostPath(layout.PasswordFile), 0, 0)
	b, err := brokertest.StartErr(in.root, in.brokerConf(""), port)
	if err == nil {
		b.Stop()
		t.Fatal("the broker started with a password file it can't read")
	}
	wantFinding(t, in.run(nil), IDSecretUnreadable, Error, "password file is not readable")
}

func TestListenerClashStopsRealBroker(t *testing.T) {
	brokertest.Require(t)
	in := newInstallAt(t, brokertest.Dir(t))
	port := brokertest.FreePort(t)
	in.plainOnly(port)
	in.appendTo(layout.MosquittoConf, fmt.Sprintf("listener %d\n", port))
	// Run the broker to its end rather than wait for its port: it opens the
	// first listener before it fails on the second, so the port accepts a
	// connection for a moment even though the broker is exiting. A broker
	// that did start runs until the context ends it.
	conf := filepath.Join(in.root, "clash.conf")
	if err := os.WriteFile(conf, []byte(in.brokerConf("")+"\nlog_dest stderr\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "mosquitto", "-c", conf).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("the broker started with the same port twice:\n%s", out)
	}
	if err == nil || !strings.Contains(string(out), "Address already in use") {
		t.Fatalf("broker failed otherwise: %v\n%s", err, out)
	}
	wantFinding(t, in.run(nil), IDListenerClash, Error, fmt.Sprintf("port %d is declared again here", port))
}
