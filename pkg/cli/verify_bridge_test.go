package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mosqprov/mosqprov/internal/brokertest"
	"github.com/mosqprov/mosqprov/pkg/bridge"
	"github.com/mosqprov/mosqprov/pkg/status"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// verify reports each bridge of the broker on this machine: its state from
// $SYS and, with --user, a message through it to the real remote broker.
func TestVerifyBridges(t *testing.T) {
	brokertest.Require(t)
	root, dir := t.TempDir(), brokertest.Dir(t)
	remotePort, localPort := brokertest.FreePort(t), brokertest.FreePort(t)
	remote := brokertest.Start(t, brokertest.Dir(t), fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\n", remotePort), remotePort)

	sys := system.NewReal(root, system.WithRunner(&system.Recorder{}))
	b := bridge.Bridge{Name: "cloud", Addresses: []string{fmt.Sprintf("127.0.0.1:%d", remotePort)},
		Topics: []bridge.Topic{{Pattern: "home/#", Direction: bridge.Out, QoS: 1, RemotePrefix: "pi1/"}}, ClientID: "cloud.test", Source: bridge.SourceCLI}
	if _, err := bridge.Converge(sys, []bridge.Bridge{b}); err != nil {
		t.Fatal(err)
	}
	bridges, err := os.ReadFile(sys.HostPath(bridge.File))
	if err != nil {
		t.Fatal(err)
	}
	pw, password := filepath.Join(dir, "passwd"), "pw-bridge-verify"
	os.WriteFile(pw, nil, 0o644)
	// Throwaway test credentials: -b puts them in argv, which mosqprov never does.
	if out, err := exec.Command("mosquitto_passwd", "-b", pw, "alice", password).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v: %s", err, out)
	}
	// The status identity, as apply makes it: a random password in the
	// root-only secret file, its user, and its rules (topic deny #, topic
	// read $SYS/#).
	secret := "5a7e" + strings.Repeat("0f", 30)
	if out, err := exec.Command("mosquitto_passwd", "-b", pw, status.User, secret).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v: %s", err, out)
	}
	os.MkdirAll(filepath.Join(root, "etc/mosqprov"), 0o755)
	if err := os.WriteFile(filepath.Join(root, status.SecretFile), []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(pw, 0o644)
	acl := "user alice\ntopic readwrite home/#\ntopic read $SYS/broker/connection/#\nuser " + status.User + "\ntopic deny #\ntopic read $SYS/#\n"
	os.WriteFile(filepath.Join(dir, "acl"), []byte(acl), 0o644)
	brokertest.Start(t, dir, fmt.Sprintf("allow_anonymous false\npassword_file %s\nacl_file %s/acl\nlistener %d 127.0.0.1\n%s", pw, dir, localPort, bridges), localPort)
	spec := fmt.Sprintf(`listeners:
  - {type: mqtt, port: %d, bind: 127.0.0.1}
acl:
  - {user: alice, readwrite: ["home/#"], read: ["$SYS/broker/connection/#"]}
`, localPort)
	writeSpec := func(statusReader bool) {
		t.Helper()
		text := spec
		if statusReader {
			text += "status_reader: true\n"
		}
		if err := os.WriteFile(filepath.Join(root, "etc/mosqprov/broker.yaml"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeSpec(false)

	// The bridge needs a moment to connect.
	var out, errOut string
	code := -1
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline) && code != 0; time.Sleep(500 * time.Millisecond) {
		code, out, errOut = vdRun(t, root, password+"\n", nil, "verify", "--user", "alice", "--password-stdin")
	}
	if code != 0 || !strings.Contains(out, "ok   bridge cloud connected, message through it ok\n") || !strings.Contains(out, "1 bridge: 1 connected, 0 failed") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if strings.Contains(out+errOut, password) {
		t.Fatal("the password was printed")
	}

	// Without --user nor the status identity the state can't be read:
	// said, with the two ways to get it, not failed.
	code, out, errOut = vdRun(t, root, "", nil, "verify")
	if code != 0 || !strings.Contains(out, "ok   bridge cloud state not checked: needs a login: pass --user NAME, or set status_reader: true in broker.yaml and apply (verify then reads it as mosqprov-status)\n") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}

	// With status_reader, verify reads the state as the status identity
	// (which may only read $SYS: nothing is sent through the bridge).
	writeSpec(true)
	code, out, errOut = vdRun(t, root, "", nil, "verify", "-v")
	if code != 0 || !strings.Contains(out, "ok   bridge cloud connected, through the bridge not checked: needs --user NAME\n") ||
		!strings.Contains(out, "read as "+status.User) || !strings.Contains(out, "1 bridge: 1 connected, 0 failed") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if strings.Contains(out+errOut, secret) {
		t.Fatal("the status identity's password was printed")
	}
	// doctor reads the states the same way.
	_, out, errOut = vdRun(t, root, "", nil, "doctor")
	if !strings.Contains(out, "cloud connected (read as the status identity)") || strings.Contains(out, "bridge-down") {
		t.Fatalf("doctor with the bridge up:\n%s%s", out, errOut)
	}
	// Its secret unreadable (not root, or apply never ran): not checked,
	// with why and the other way.
	os.Rename(filepath.Join(root, status.SecretFile), filepath.Join(root, status.SecretFile+".away"))
	code, out, errOut = vdRun(t, root, "", nil, "verify")
	if code != 0 || !strings.Contains(out, "ok   bridge cloud state not checked: no status identity (/etc/mosqprov/status.secret): ") || !strings.Contains(out, "; or pass --user NAME\n") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	os.Rename(filepath.Join(root, status.SecretFile+".away"), filepath.Join(root, status.SecretFile))
	writeSpec(false)

	// The remote goes away: the broker publishes 0 and verify fails.
	remote.Stop()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline) && code != ExitError; time.Sleep(500 * time.Millisecond) {
		code, out, errOut = vdRun(t, root, password+"\n", nil, "verify", "--user", "alice", "--password-stdin")
	}
	if code != ExitError || !strings.Contains(out, "FAIL bridge cloud state: not connected") || !strings.Contains(out, "1 bridge: 0 connected, 1 failed") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	// The status identity sees it down too.
	writeSpec(true)
	code, out, errOut = vdRun(t, root, "", nil, "verify")
	if code != ExitError || !strings.Contains(out, "FAIL bridge cloud state: not connected") || !strings.Contains(out, "1 bridge: 0 connected, 1 failed") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	_, out, errOut = vdRun(t, root, "", nil, "doctor")
	if !strings.Contains(out, "cloud not connected (read as the status identity)") || !strings.Contains(out, "the broker says the bridge is not connected ($SYS/broker/connection/cloud.test/state is 0)") {
		t.Fatalf("doctor with the bridge down:\n%s%s", out, errOut)
	}
	t.Logf("doctor:\n%s", out)
}
