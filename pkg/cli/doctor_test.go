package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mosqprov/mosqprov/pkg/doctor"
	"github.com/mosqprov/mosqprov/pkg/spec"
	"github.com/mosqprov/mosqprov/pkg/system"
	"github.com/mosqprov/mosqprov/pkg/systemd"
)

func TestDoctorCommand(t *testing.T) {
	root := t.TempDir()
	key := filepath.Join(root, "etc/mosquitto/certs/server.key")
	os.MkdirAll(filepath.Dir(key), 0o755)
	os.WriteFile(key, []byte("generated test fixture, not a key\n"), 0o644)

	code, out, _ := vdRun(t, root, "", nil, "doctor")
	if code != ExitError {
		t.Fatalf("exit %d, want 1\n%s", code, out)
	}
	for _, want := range []string{
		"error   package-missing  mosquitto\n  the mosquitto package is not installed\n  why: there is no broker to run\n  fix: sudo mosqprov install\n",
		"error   secret-exposed  /etc/mosquitto/certs/server.key\n  the server key is readable by every user on this machine",
		"fix: sudo chown mosquitto:mosquitto /etc/mosquitto/certs/server.key && sudo chmod 600 /etc/mosquitto/certs/server.key",
		"info    spec-missing",
		"info    service-unchecked",
		"2 errors, 0 warnings",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	code, out, _ = vdRun(t, root, "", nil, "doctor", "-o", "json")
	var rep struct {
		Command string        `json:"command"`
		Result  doctor.Report `json:"result"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != ExitError || rep.Command != "doctor" {
		t.Fatalf("exit %d, %v\n%s", code, err, out)
	}
	if rep.Result.Count(doctor.Error) != 2 || rep.Result.Findings[0].Fix == "" {
		t.Fatalf("%+v", rep.Result)
	}

	// A broken spec is a finding too, not the end of the checks.
	bad := filepath.Join(root, "bad.yaml")
	os.WriteFile(bad, []byte("hostname: pi\nlisteners: 3\n"), 0o644)
	code, out, _ = vdRun(t, root, "", nil, "doctor", "-f", bad)
	if code != ExitError || !strings.Contains(out, "error   spec-invalid  "+bad+"\n  "+bad+":2:") || !strings.Contains(out, "package-missing") {
		t.Fatalf("exit %d\n%s", code, out)
	}
}

// doctorService is a broker unit that failed and is disabled, so doctor
// gives its service fixes too.
type doctorService struct{}

func (doctorService) Manageable() (bool, string) { return true, "" }
func (doctorService) Status(context.Context) (systemd.Status, error) {
	return systemd.Status{Unit: "mosquitto", ActiveState: "failed", SubState: "failed", Enabled: "disabled",
		Journal: []string{"Nov 26 06:00:01 pi mosquitto[812]: Error: Address already in use"}}, nil
}

type doctorHost struct{}

func (doctorHost) Hostname() (string, error) { return "testpi", nil }
func (doctorHost) Addrs() ([]net.IP, error) {
	return []net.IP{net.ParseIP("192.0.2.20"), net.ParseIP("192.0.2.99")}, nil
}

// mosqprovCommand finds the mosqprov command lines in a fix: each runs to
// the end of its shell command ("&&"), its quote or its comment ("   (").
var mosqprovCommand = regexp.MustCompile("\\bmosqprov ([^&`(),]+)")

// TestDoctorFixCommandsExist breaks an installation setup made in every
// way doctor tells a mosqprov command for, with and without broker.yaml,
// and parses each command with the real command tree: the command and
// every flag it names must exist, and its arguments must be accepted.
func TestDoctorFixCommandsExist(t *testing.T) {
	root := t.TempDir()
	p := &setupAnswers{yes: map[string]bool{"Add a user": true, "Write": true}, text: map[string]string{"User name": "blinds"}}
	if out, err := runSetupWith(t, root, p); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	host := func(p string) string { return filepath.Join(root, p) }
	// The article's certificate: self-signed, no SAN, about to expire.
	if out, err := exec.Command("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", host("etc/mosquitto/certs/server.key"),
		"-subj", "/CN=testpi.local", "-days", "2", "-out", host("etc/mosquitto/certs/server.crt")).CombinedOutput(); err != nil {
		t.Fatalf("openssl: %v %s", err, out)
	}
	pw := host("etc/mosquitto/passwd")
	data, _ := os.ReadFile(pw)
	crypt, err := exec.Command("openssl", "passwd", "-6", "-salt", "abcdefgh", "secret").Output()
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, "eve:"+strings.TrimSpace(string(crypt))+"\ncarol:hunter2\n"+strings.SplitN(string(data), "\n", 2)[0]+"\n"...)
	os.WriteFile(pw, data, 0o600)
	os.WriteFile(host("etc/mosquitto/mosquitto.conf"), []byte("persistence true\npersistence_location /var/lib/mosquitto/\ninclude_dir /etc/mosquitto/conf.d\n"), 0o644)
	// A database a power cut zero-filled.
	os.MkdirAll(host("var/lib/mosquitto"), 0o755)
	os.WriteFile(host("var/lib/mosquitto/mosquitto.db"), make([]byte, 512), 0o600)
	os.WriteFile(host("etc/mosquitto/conf.d/local.conf"), []byte("listener 1883\nlistener 8883\nlistener 8080 127.0.0.1\nprotocol websockets\n"), 0o644)

	run := func(withSpec bool) []string {
		sys := system.NewReal(root, system.WithRunner(&system.Recorder{}))
		c := &doctor.Checker{Sys: sys, Service: doctorService{}, Host: doctorHost{}, SpecPath: "broker.yaml"}
		if withSpec {
			s, err := spec.Load(sys, host("etc/mosqprov/broker.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			c.Spec = s
		}
		var fixes []string
		for _, f := range c.Run(context.Background()).Findings {
			fixes = append(fixes, f.ID+": "+f.Fix)
		}
		return fixes
	}
	fixes := append(run(true), run(false)...)
	os.Remove(host("etc/mosquitto/certs/server.crt"))
	fixes = append(fixes, run(false)...)

	seen := map[string]bool{}
	for _, fix := range fixes {
		for _, m := range mosqprovCommand.FindAllStringSubmatch(fix, -1) {
			var args []string
			for _, w := range strings.Fields(m[1]) {
				args = append(args, strings.Trim(w, "'"))
			}
			seen[args[0]+" "+args[min(1, len(args)-1)]] = true
			if err := parseCommandLine(args); err != nil {
				t.Errorf("%s\n  `mosqprov %s`: %v", fix, strings.Join(args, " "), err)
			}
		}
	}
	// The fixes this installation must have produced: a finding that lost
	// its command fails here rather than passing unchecked.
	for _, want := range []string{"install install", "apply apply", "setup setup", "plan plan", "user add", "cert ca", "cert server",
		"cert renew", "service start", "service enable"} {
		if !seen[want] {
			t.Errorf("no fix used `mosqprov %s`; fixes:\n%s", want, strings.Join(fixes, "\n"))
		}
	}
}

func TestParseCommandLineRejects(t *testing.T) {
	for _, args := range [][]string{{"cert", "reissue"}, {"user", "add", "--nope", "x"}, {"user", "add"}, {"cert"}, {"fix"}} {
		if err := parseCommandLine(args); err == nil {
			t.Errorf("mosqprov %s: accepted", strings.Join(args, " "))
		}
	}
	if err := parseCommandLine([]string{"cert", "server", "--name", "pi.local", "--ip", "192.0.2.1"}); err != nil {
		t.Errorf("a real command was refused: %v", err)
	}
}

// parseCommandLine resolves args as cobra would run them, without running.
func parseCommandLine(args []string) error {
	root := NewRootCmd(NewApp(&IOStreams{In: strings.NewReader(""), Out: io.Discard, ErrOut: io.Discard}))
	cmd, rest, err := root.Find(args)
	if err != nil {
		return err
	}
	// A group (`cert`) runs only to print its help: it fixes nothing.
	if !cmd.Runnable() || cmd.HasSubCommands() {
		return fmt.Errorf("%q is not a command that does something", cmd.CommandPath())
	}
	if err := cmd.ParseFlags(rest); err != nil {
		return err
	}
	return cmd.ValidateArgs(cmd.Flags().Args())
}
