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
	os.Chmod(pw, 0o644)
	acl := "user alice\ntopic readwrite home/#\ntopic read $SYS/broker/connection/#\n"
	os.WriteFile(filepath.Join(dir, "acl"), []byte(acl), 0o644)
	brokertest.Start(t, dir, fmt.Sprintf("allow_anonymous false\npassword_file %s\nacl_file %s/acl\nlistener %d 127.0.0.1\n%s", pw, dir, localPort, bridges), localPort)
	spec := fmt.Sprintf(`listeners:
  - {type: mqtt, port: %d, bind: 127.0.0.1}
acl:
  - {user: alice, readwrite: ["home/#"], read: ["$SYS/broker/connection/#"]}
`, localPort)
	os.MkdirAll(filepath.Join(root, "etc/mosqprov"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/mosqprov/broker.yaml"), []byte(spec), 0o644)

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

	// Without --user the state can't be read: said, not failed.
	code, out, errOut = vdRun(t, root, "", nil, "verify")
	if code != 0 || !strings.Contains(out, "ok   bridge cloud state not checked: needs --user") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}

	// The remote goes away: the broker publishes 0 and verify fails.
	remote.Stop()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline) && code != ExitError; time.Sleep(500 * time.Millisecond) {
		code, out, errOut = vdRun(t, root, password+"\n", nil, "verify", "--user", "alice", "--password-stdin")
	}
	if code != ExitError || !strings.Contains(out, "FAIL bridge cloud state: not connected") || !strings.Contains(out, "1 bridge: 0 connected, 1 failed") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
}
