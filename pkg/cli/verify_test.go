package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mosqprov/mosqprov/internal/brokertest"
	"github.com/mosqprov/mosqprov/pkg/pki"
	"github.com/mosqprov/mosqprov/pkg/system"
)

// vdBroker is a real mosquitto serving certificates made here (generated
// test fixtures), with the spec that describes it written under a temp root.
type vdBroker struct {
	root, dir          string
	plain, mqtts, wss  int
	caPEM, otherCAPEM  []byte
	user, password     string
	spec               string
	serverCert, srvKey []byte
}

// startVDBroker starts the broker; certDays < 0 issues an expired certificate.
func startVDBroker(t *testing.T, certDays int) *vdBroker {
	t.Helper()
	brokertest.Require(t)
	b := &vdBroker{root: t.TempDir(), dir: brokertest.Dir(t), user: "alice", password: "pw-" + fmt.Sprint(time.Now().UnixNano())}
	now := time.Now()
	ca, err := pki.NewCA(rand.Reader, now, pki.CARequest{CommonName: "verify test CA", KeyType: pki.ECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.NewCA(rand.Reader, now, pki.CARequest{CommonName: "other CA", KeyType: pki.ECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	b.caPEM, b.otherCAPEM = ca.CertPEM, other.CertPEM
	issueAt, days := now, certDays
	if certDays < 0 {
		issueAt, days = now.AddDate(0, 0, certDays-10), 10
	}
	srv, err := pki.IssueServer(rand.Reader, issueAt, &pki.CA{Cert: ca.Cert, Key: ca.Key},
		pki.ServerRequest{Names: []string{"localhost"}, IPs: []string{"127.0.0.1"}, KeyType: pki.ECDSAP256, Days: days})
	if err != nil {
		t.Fatal(err)
	}
	b.serverCert, b.srvKey = srv.CertPEM, srv.KeyPEM
	write := func(path string, data []byte, mode os.FileMode) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, mode); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(b.dir, "server.crt"), srv.CertPEM, 0o644)
	write(filepath.Join(b.dir, "server.key"), srv.KeyPEM, 0o644)
	pw := filepath.Join(b.dir, "passwd")
	write(pw, nil, 0o644)
	// Throwaway test credentials: -b puts them in argv, which mosqprov never does.
	if out, err := exec.Command("mosquitto_passwd", "-b", pw, b.user, b.password).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v: %s", err, out)
	}
	os.Chmod(pw, 0o644)
	// The user is limited to home/#, as setup's ACL question does: verify
	// must find a test topic the broker lets it use.
	write(filepath.Join(b.dir, "acl"), []byte("user alice\ntopic readwrite home/#\n"), 0o644)
	write(filepath.Join(b.root, "etc/mosqprov/ca/ca.crt"), ca.CertPEM, 0o644)

	b.plain, b.mqtts, b.wss = brokertest.FreePort(t), brokertest.FreePort(t), brokertest.FreePort(t)
	conf := fmt.Sprintf(`per_listener_settings false
allow_anonymous false
password_file %[1]s/passwd
acl_file %[1]s/acl
listener %[2]d 127.0.0.1
listener %[3]d 127.0.0.1
certfile %[1]s/server.crt
keyfile %[1]s/server.key
listener %[4]d 127.0.0.1
protocol websockets
certfile %[1]s/server.crt
keyfile %[1]s/server.key
`, b.dir, b.plain, b.mqtts, b.wss)
	brokertest.Start(t, b.dir, conf, b.plain, b.mqtts, b.wss)

	b.spec = fmt.Sprintf(`hostname: localhost
ips: [127.0.0.1]
listeners:
  - {type: mqtt, port: %d, bind: 127.0.0.1}
  - {type: mqtts, port: %d, bind: 127.0.0.1}
  - {type: wss, port: %d, bind: 127.0.0.1}
acl:
  - {user: alice, readwrite: ["home/#"]}
`, b.plain, b.mqtts, b.wss)
	write(filepath.Join(b.root, "etc/mosqprov/broker.yaml"), []byte(b.spec), 0o644)
	return b
}

// vdRun runs one mosqprov command line on a temp root, the way main does,
// with stdin as given and no terminal.
func vdRun(t *testing.T, root, stdin string, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var out, errOut bytes.Buffer
	app := NewApp(&IOStreams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut})
	app.NewSystem = func(g Globals) system.System {
		return system.NewReal(g.Root, system.WithRunner(&system.Recorder{}))
	}
	code = Run(context.Background(), app, append([]string{"--root", root}, args...))
	return code, out.String(), errOut.String()
}

func TestVerifyAgainstRealBroker(t *testing.T) {
	b := startVDBroker(t, 100)

	t.Run("spec listeners pass, with a round trip", func(t *testing.T) {
		code, out, errOut := vdRun(t, b.root, b.password+"\n", nil, "verify", "--user", "alice", "--password-stdin")
		if code != 0 {
			t.Fatalf("exit %d\n%s%s", code, out, errOut)
		}
		t.Logf("output:\n%s", out)
		for _, want := range []string{
			fmt.Sprintf("ok   mqtt:%d  mqtt://127.0.0.1:%d  anonymous refused, round trip ok", b.plain, b.plain),
			fmt.Sprintf("ok   mqtts:%d mqtts://127.0.0.1:%d  TLS 1.3, chain ok, 2 names ok, 99 days left, anonymous refused, round trip ok", b.mqtts, b.mqtts),
			fmt.Sprintf("wss://127.0.0.1:%d/mqtt", b.wss),
			"3 listeners checked, all passed",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out+errOut, b.password) {
			t.Fatal("the password was printed")
		}
	})

	t.Run("json", func(t *testing.T) {
		code, out, _ := vdRun(t, b.root, "", map[string]string{PasswordEnv: b.password}, "verify", "--user", "alice", "-o", "json")
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, out)
		}
		var rep struct {
			Result verifyResult `json:"result"`
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if !rep.Result.OK || len(rep.Result.Listeners) != 3 || *rep.Result.Listeners[1].DaysLeft != 99 {
			t.Fatalf("%+v", rep.Result)
		}
	})

	t.Run("a test topic the ACL denies", func(t *testing.T) {
		code, out, _ := vdRun(t, b.root, b.password+"\n", nil, "verify", "--user", "alice", "--password-stdin", "--topic", "mosqprov/verify", "--timeout", "1s")
		if code != ExitError || strings.Count(out, "FAIL") != 3 || !strings.Contains(out, `did not come back within 1s: an ACL may deny user "alice"`) {
			t.Fatalf("exit %d\n%s", code, out)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		code, out, _ := vdRun(t, b.root, "nope\n", nil, "verify", "--user", "alice", "--password-stdin")
		if code != ExitError || strings.Count(out, "FAIL") != 3 || !strings.Contains(out, `auth: user "alice" was refused`) {
			t.Fatalf("exit %d\n%s", code, out)
		}
	})

	t.Run("a name in the spec missing from the certificate", func(t *testing.T) {
		spec := strings.Replace(b.spec, "ips: [127.0.0.1]", "names: [raspberrypi.local]\nips: [127.0.0.1, 192.0.2.10]", 1)
		file := filepath.Join(t.TempDir(), "broker.yaml")
		os.WriteFile(file, []byte(spec), 0o644)
		code, out, _ := vdRun(t, b.root, "", nil, "verify", "-f", file)
		if code != ExitError {
			t.Fatalf("exit %d\n%s", code, out)
		}
		t.Logf("output:\n%s", out)
		if !strings.Contains(out, fmt.Sprintf("FAIL mqtts:%d mqtts://127.0.0.1:%d  name:raspberrypi.local: raspberrypi.local is not in the certificate (it has localhost, 127.0.0.1)", b.mqtts, b.mqtts)) ||
			!strings.Contains(out, "fail name:192.0.2.10") || !strings.Contains(out, "1 failed") && !strings.Contains(out, "2 failed") {
			t.Fatalf("%s", out)
		}
		if !strings.Contains(out, fmt.Sprintf("ok   mqtt:%d", b.plain)) {
			t.Fatalf("the plain listener should pass:\n%s", out)
		}
	})

	t.Run("wrong CA, from a laptop with --host and --listener", func(t *testing.T) {
		ca := filepath.Join(t.TempDir(), "ca.crt")
		os.WriteFile(ca, b.otherCAPEM, 0o644)
		code, out, _ := vdRun(t, t.TempDir(), "", nil, "verify", "--host", "localhost", "--ca", ca, "--listener", fmt.Sprintf("mqtts:%d", b.mqtts))
		if code != ExitError || !strings.Contains(out, `chain: not signed by CA "other CA"`) {
			t.Fatalf("exit %d\n%s", code, out)
		}
		os.WriteFile(ca, b.caPEM, 0o644)
		code, out, _ = vdRun(t, t.TempDir(), "", nil, "verify", "--host", "localhost", "--ca", ca, "--listener", fmt.Sprintf("wss:%d", b.wss))
		if code != 0 || !strings.Contains(out, fmt.Sprintf("ok   wss:%d wss://localhost:%d/mqtt", b.wss, b.wss)) {
			t.Fatalf("exit %d\n%s", code, out)
		}
	})

	t.Run("a listener down", func(t *testing.T) {
		port := brokertest.FreePort(t)
		code, out, _ := vdRun(t, b.root, "", nil, "verify", "--listener", fmt.Sprintf("mqtt:%d", port), "--listener", fmt.Sprintf("mqtt:%d", b.plain))
		if code != ExitError || !strings.Contains(out, fmt.Sprintf("FAIL mqtt:%d mqtt://127.0.0.1:%d  connect: nothing listens on 127.0.0.1:%d (connection refused)", port, port, port)) ||
			!strings.Contains(out, "2 listeners checked, 1 failed") {
			t.Fatalf("exit %d\n%s", code, out)
		}
	})
}

func TestVerifyExpiredCertificate(t *testing.T) {
	b := startVDBroker(t, -5)
	code, out, _ := vdRun(t, b.root, "", nil, "verify")
	if code != ExitError || !strings.Contains(out, fmt.Sprintf("FAIL mqtts:%d mqtts://127.0.0.1:%d  chain: the certificate expired on", b.mqtts, b.mqtts)) ||
		!strings.Contains(out, "fail expiry: expired on") {
		t.Fatalf("exit %d\n%s", code, out)
	}
}

func TestVerifyBadInput(t *testing.T) {
	root := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"verify"}, "does not exist"},
		{[]string{"verify", "--listener", "http:80"}, `--listener: "http" is not mqtt, mqtts, ws or wss`},
		{[]string{"verify", "--listener", "mqtt:99999"}, "--listener: port"},
		{[]string{"verify", "--listener", "mqtt", "--topic", "a/#"}, "--topic"},
		{[]string{"verify", "--listener", "mqtt", "--password-stdin"}, "needs --user"},
		{[]string{"verify", "--listener", "mqtt", "--cert", "x"}, "--cert and --key go together"},
		{[]string{"verify", "--listener", "mqtt", "--user", "a"}, "no password given"},
	} {
		code, _, errOut := vdRun(t, root, "", nil, tc.args...)
		if code != ExitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want 3 and %q", tc.args, code, errOut, tc.want)
		}
	}
}
