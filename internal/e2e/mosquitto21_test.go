package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mosqprov/mosqprov/internal/brokertest"
	"github.com/mosqprov/mosqprov/internal/nspawn"
	"github.com/mosqprov/mosqprov/pkg/layout"
)

// TestFilesWithMosquitto21 runs the files mosqprov writes under Debian
// sid's mosquitto 2.1 (sid's systemd doesn't boot on this host, so sid is a
// chroot, see nspawn.SidRecipe): `mosqprov --root SID apply` writes the
// configuration, the password file, the ACL and the certificates into the
// tree; sid's broker starts with Debian's mosquitto.conf (which includes
// mosqprov's drop-in); real clients log in with TLS and a password, a wrong
// password is refused, and the broker's log has no error, warning or
// deprecation notice for anything mosqprov wrote.
func TestFilesWithMosquitto21(t *testing.T) {
	nspawn.Require(t)
	brokertest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	image, err := nspawn.Image(ctx, nspawn.DefaultCacheDir, nspawn.SidRecipe(), t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	bin, err := nspawn.BuildMosqprov(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	root := nspawn.Unpack(t, image)
	chroot := func(name string, args ...string) (string, error) {
		out, err := nspawn.Chroot(ctx, root, name, args...).CombinedOutput()
		return string(out), err
	}
	version, err := chroot("dpkg-query", "-W", "-f", "${Version}", "mosquitto")
	if err != nil || !strings.HasPrefix(version, "2.1") {
		t.Fatalf("sid's mosquitto is %q (%v), want 2.1", version, err)
	}
	t.Logf("sid: mosquitto %s", version)

	// The chroot shares the host's network: loopback high ports.
	mqttPort, tlsPort := brokertest.FreePort(t), brokertest.FreePort(t)
	spec := fmt.Sprintf(`hostname: sid.test
ips: [127.0.0.1]
listeners:
  - {type: mqtt, port: %d, bind: 127.0.0.1}
  - {type: mqtts, port: %d, bind: 127.0.0.1}
users:
  - {name: blinds, password_env: BLINDS_PASSWORD}
  - {name: reader, password_env: READER_PASSWORD}
acl:
  - {user: blinds, readwrite: ["home/#"]}
  - {user: reader, read: ["home/#"]}
`, mqttPort, tlsPort)
	if err := os.MkdirAll(filepath.Join(root, layout.StateDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, layout.Spec), []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	// Throwaway test credentials.
	const blindsPW, readerPW = "blinds-on-sid", "reader-on-sid"
	apply := exec.CommandContext(ctx, bin, "--root", root, "apply", "--yes")
	apply.Env = append(os.Environ(), "BLINDS_PASSWORD="+blindsPW, "READER_PASSWORD="+readerPW)
	if out, err := apply.CombinedOutput(); err != nil {
		t.Fatalf("mosqprov --root %s apply: %v\n%s", root, err, out)
	}
	for _, f := range []string{layout.DropIn, layout.PasswordFile, layout.ACLFile, layout.ServerCert, layout.ServerKey, layout.BrokerCACert} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Fatalf("apply did not write %s: %v", f, err)
		}
	}

	// Debian's unit makes /run/mosquitto (the pid file's folder) for the
	// broker's user; a chroot has no systemd to do it.
	if out, err := chroot("install", "-d", "-o", "mosquitto", "-g", "mosquitto", "/run/mosquitto"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	logPath := filepath.Join(root, "/var/log/mosquitto/mosquitto.log")
	os.Remove(logPath)
	broker := nspawn.Chroot(ctx, root, "mosquitto", "-c", layout.MosquittoConf)
	var console bytes.Buffer
	broker.Stdout, broker.Stderr = &console, &console
	if err := broker.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = broker.Wait(); close(exited) }()
	stop := func() {
		broker.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			broker.Process.Kill()
			<-exited
		}
	}
	t.Cleanup(stop)
	// The plain port only: a bare TCP connection to the TLS one would log
	// an OpenSSL "unexpected eof". The broker opens every listener before
	// it accepts on any.
	if err := waitPort(ctx, mqttPort, exited, &waitErr); err != nil {
		log, _ := os.ReadFile(logPath)
		t.Fatalf("sid's broker does not listen on %d: %v\nconsole:\n%s\nlog:\n%s", mqttPort, err, console.String(), log)
	}

	ca := filepath.Join(root, layout.BrokerCACert)
	tls := func(user, pw string) brokertest.Client {
		return brokertest.Client{Port: tlsPort, User: user, Password: pw, Extra: []string{"--cafile", ca}}
	}
	// The host's clients (2.0) and sid's own (2.1), with TLS and a password.
	if ok, err := brokertest.Roundtrip(tls("reader", readerPW), tls("blinds", blindsPW), "home/blinds/state", "open"); err != nil || !ok {
		t.Fatalf("TLS round trip with passwords on sid's broker: delivered=%v, %v", ok, err)
	}
	if out, err := chroot("mosquitto_pub", "-h", "127.0.0.1", "-p", fmt.Sprint(tlsPort), "--cafile", layout.BrokerCACert,
		"-u", "blinds", "-P", blindsPW, "-t", "home/blinds/state", "-m", "closed", "-q", "1"); err != nil {
		t.Fatalf("sid's mosquitto_pub over TLS: %v\n%s", err, out)
	}
	if err := tls("blinds", "wrong-password").Publish("home/blinds/state", "x"); err == nil {
		t.Fatal("sid's broker accepted a wrong password")
	}
	// The ACL holds: reader can't write.
	if ok, err := brokertest.Roundtrip(tls("blinds", blindsPW), tls("reader", readerPW), "home/blinds/state", "by-reader"); err != nil || ok {
		t.Fatalf("reader's publish was delivered (%v, %v): the ACL is not applied", ok, err)
	}
	stop()

	log, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sid's broker log:\n%s", log)
	if !bytes.Contains(log, []byte("mosquitto version 2.1")) {
		t.Fatalf("the log is not a 2.1 broker's:\n%s", log)
	}
	bad := regexp.MustCompile(`(?i)error|warning|deprecat`)
	for _, line := range strings.Split(string(log)+console.String(), "\n") {
		// A client with the wrong password is refused: that is the test,
		// not a problem with the files.
		if bad.MatchString(line) && !strings.Contains(line, "not authorised") && !strings.Contains(line, "bad user name or password") {
			t.Errorf("sid's broker says: %s", line)
		}
	}
}

// waitPort waits until 127.0.0.1:port accepts a connection, or the broker
// exits (exited closed, with *waitErr).
func waitPort(ctx context.Context, port int, exited <-chan struct{}, waitErr *error) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("the broker exited: %v", *waitErr)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
