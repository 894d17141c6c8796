package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mosqprov/mosqprov/pkg/doctor"
	"github.com/mosqprov/mosqprov/pkg/errs"
	"github.com/mosqprov/mosqprov/pkg/passwd"
	"github.com/mosqprov/mosqprov/pkg/spec"
	"github.com/mosqprov/mosqprov/pkg/system"
	"github.com/mosqprov/mosqprov/pkg/wizard"
)

// setupAnswers is a Prompter that takes every default except the answers given
// by question substring; interrupt makes one question return Ctrl-C.
type setupAnswers struct {
	text map[string]string
	yes  map[string]bool
	// fullPlan answers p (show the full plan) once before the last answer.
	fullPlan  bool
	interrupt string
	asked     []string
}

func (p *setupAnswers) ask(m string) error {
	p.asked = append(p.asked, m)
	if p.interrupt != "" && strings.Contains(m, p.interrupt) {
		return errs.ErrInterrupted
	}
	return nil
}

func (p *setupAnswers) Input(m, _, def string, validate func(string) error) (string, error) {
	if err := p.ask(m); err != nil {
		return "", err
	}
	for k, v := range p.text {
		if strings.Contains(m, k) {
			return v, validate(v)
		}
	}
	// setup's last question: "Write ... and apply? [y/N, p: full plan]".
	for k, v := range p.yes {
		if strings.Contains(m, k) {
			if p.fullPlan {
				p.fullPlan = false
				return "p", validate("p")
			}
			if v {
				return "y", nil
			}
			return "n", nil
		}
	}
	return def, nil
}

func (p *setupAnswers) Password(m, _ string) (string, error) {
	return "s3cret-from-the-wizard", p.ask(m)
}

func (p *setupAnswers) Confirm(m, _ string, def bool) (bool, error) {
	if err := p.ask(m); err != nil {
		return false, err
	}
	for k, v := range p.yes {
		if strings.Contains(m, k) {
			if strings.Contains(m, "Add") {
				delete(p.yes, k) // add one user, then stop
			}
			return v, nil
		}
	}
	return def && !strings.Contains(m, "Add"), nil
}

func (p *setupAnswers) Select(m, _ string, _ []wizard.Option, def string) (string, error) {
	return def, p.ask(m)
}

func (p *setupAnswers) MultiSelect(m, _ string, _ []wizard.Option, defs []string, _ func([]string) error) ([]string, error) {
	return defs, p.ask(m)
}

func (p *setupAnswers) Say(string, ...any) {}

type setupHost struct{}

func (setupHost) Hostname() (string, error) { return "testpi", nil }
func (setupHost) Addrs() ([]net.IP, error)  { return []net.IP{net.ParseIP("192.0.2.20")}, nil }

func runSetupWith(t *testing.T, root string, p wizard.Prompter) (string, error) {
	t.Helper()
	var out bytes.Buffer
	app := NewApp(&IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &out})
	app.Globals.Root = root
	app.NewSystem = func(g Globals) system.System {
		return system.NewReal(g.Root, system.WithRunner(&system.Recorder{}))
	}
	if err := app.init("setup"); err != nil {
		t.Fatal(err)
	}
	err := runSetup(context.Background(), &setupOptions{App: app, Prompter: p, Host: setupHost{}})
	return out.String(), err
}

func setupTree(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && p != root {
			files = append(files, strings.TrimPrefix(p, root))
		}
		return nil
	})
	return files
}

func TestSetupNoOrCtrlCChangesNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    *setupAnswers
	}{
		{"no at the end", &setupAnswers{yes: map[string]bool{"Add a user": true, "Write": false}}},
		{"Ctrl-C at the host name", &setupAnswers{interrupt: "Host name"}},
		{"Ctrl-C at the password", &setupAnswers{yes: map[string]bool{"Add a user": true}, text: map[string]string{"User name": "blinds"}, interrupt: "Password"}},
		{"Ctrl-C at the final question", &setupAnswers{yes: map[string]bool{"Add a user": true}, text: map[string]string{"User name": "blinds"}, interrupt: "Write"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if tc.p.text == nil {
				tc.p.text = map[string]string{"User name": "blinds"}
			}
			out, err := runSetupWith(t, root, tc.p)
			if !errors.Is(err, errs.ErrInterrupted) || exitCode(err) != ExitInterrupted {
				t.Fatalf("err %v\n%s", err, out)
			}
			if files := setupTree(t, root); len(files) != 0 {
				t.Fatalf("files written: %q", files)
			}
		})
	}
}

func TestSetupYesWritesSpecAndApplies(t *testing.T) {
	root := t.TempDir()
	p := &setupAnswers{yes: map[string]bool{"Add a user": true, "Write": true}, text: map[string]string{"User name": "blinds"}, fullPlan: true}
	out, err := runSetupWith(t, root, p)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"/etc/mosqprov/broker.yaml (password hashes shortened here):\n\n# broker.yaml", "hostname: testpi.local",
		"- 192.0.2.20", "hash: $7$1000$…\n", "+ password file: would create /etc/mosquitto/passwd", "Plan: ", "+ spec: created /etc/mosqprov/broker.yaml",
		"Apply complete", "Next:\n  sudo mosqprov verify --user blinds"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	t.Logf("first run:\n%s", out)
	data, err := os.ReadFile(filepath.Join(root, "etc/mosqprov/broker.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data)+out, "s3cret-from-the-wizard") {
		t.Fatal("the password is in broker.yaml or the output")
	}
	s, err := spec.Parse("broker.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	if h, err := passwd.ParseHash(s.Users[0].Hash); err != nil || !h.Verify("s3cret-from-the-wizard") {
		t.Fatalf("user %+v: %v", s.Users[0], err)
	}
	if strings.Contains(out, s.Users[0].Hash) {
		t.Fatal("the whole hash was shown; the screen shows it shortened")
	}
	fi, _ := os.Stat(filepath.Join(root, "etc/mosqprov/broker.yaml"))
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("broker.yaml mode %v", fi.Mode())
	}
	pw, err := os.ReadFile(filepath.Join(root, "etc/mosquitto/passwd"))
	if err != nil || !strings.HasPrefix(string(pw), "blinds:"+s.Users[0].Hash) {
		t.Fatalf("password file %q: %v", pw, err)
	}

	// Again, keeping every answer: the wizard starts from broker.yaml and
	// the plan is empty.
	p = &setupAnswers{yes: map[string]bool{"Write": true}}
	out, err = runSetupWith(t, root, p)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "Nothing to do: broker.yaml and the broker already match these answers.") || !strings.Contains(out, "Starting from "+filepath.Join(root, "etc/mosqprov/broker.yaml")) {
		t.Fatalf("second run:\n%s", out)
	}
	if asked := fmt.Sprint(p.asked); !strings.Contains(asked, "Add another user?") || strings.Contains(asked, "Write") {
		t.Fatalf("the second run did not start from broker.yaml, or offered to write nothing: %q", p.asked)
	}
	if fi2, _ := os.Stat(filepath.Join(root, "etc/mosqprov/broker.yaml")); !fi2.ModTime().Equal(fi.ModTime()) {
		t.Fatal("broker.yaml was rewritten by a run that changed nothing")
	}

	// A changed answer shows the plan, and the spec is rewritten on yes.
	p = &setupAnswers{yes: map[string]bool{"Write": true}, text: map[string]string{"Other IP addresses": "192.0.2.44"}}
	out, err = runSetupWith(t, root, p)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"  server certificate: ~ server key, ~ server certificate\n", "/etc/mosqprov/broker.yaml will be replaced (comments in it are not kept)", "~ spec: updated /etc/mosqprov/broker.yaml", "Apply complete"} {
		if !strings.Contains(out, want) {
			t.Errorf("third run lacks %q:\n%s", want, out)
		}
	}

	// doctor sees what apply recorded, and a hand edit since.
	drift := func() []string {
		_, out, _ := vdRun(t, root, "", nil, "doctor", "-o", "json")
		var rep struct {
			Result doctor.Report `json:"result"`
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		var paths []string
		for _, f := range rep.Result.Findings {
			if f.ID == doctor.IDDrift {
				paths = append(paths, f.Subject)
			}
		}
		return paths
	}
	if d := drift(); len(d) != 0 {
		t.Fatalf("drift right after setup: %q", d)
	}
	conf := filepath.Join(root, "etc/mosquitto/conf.d/mosqprov.conf")
	data, _ = os.ReadFile(conf)
	os.WriteFile(conf, append(data, "max_connections 10\n"...), 0o644)
	if d := drift(); len(d) != 1 || d[0] != "/etc/mosquitto/conf.d/mosqprov.conf" {
		t.Fatalf("drift after a hand edit: %q", d)
	}
}

func TestSetupDryRun(t *testing.T) {
	root := t.TempDir()
	var out bytes.Buffer
	app := NewApp(&IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &out})
	app.Globals.Root, app.Globals.DryRun = root, true
	app.NewSystem = func(g Globals) system.System {
		return system.NewDryRun(system.NewReal(g.Root, system.WithRunner(&system.Recorder{})))
	}
	if err := app.init("setup"); err != nil {
		t.Fatal(err)
	}
	p := &setupAnswers{yes: map[string]bool{"Add a user": true}, text: map[string]string{"User name": "blinds"}}
	if err := runSetup(context.Background(), &setupOptions{App: app, Prompter: p, Host: setupHost{}}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "Plan: ") || !strings.HasSuffix(out.String(), "Dry run: nothing was written.\n") {
		t.Fatalf("%s", out.String())
	}
	if strings.Contains(fmt.Sprint(p.asked), "Write") {
		t.Fatal("a dry run asked to write")
	}
	if files := setupTree(t, root); len(files) != 0 {
		t.Fatalf("dry run wrote %q", files)
	}
}

func TestSetupWithoutTerminal(t *testing.T) {
	code, _, errOut := vdRun(t, t.TempDir(), "", nil, "setup")
	if code != ExitUsage || !strings.Contains(errOut, "not a terminal") || !strings.Contains(errOut, "mosqprov apply -f broker.yaml --yes") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

// After setup the next steps name what clients use: each listener's URL,
// the CA file, the ESP32 caveat, and a mosquitto_sub line for the user
// this run added (not the first user of broker.yaml).
func TestSetupNextStepsNameTheNewUser(t *testing.T) {
	root := t.TempDir()
	if out, err := runSetupWith(t, root, &setupAnswers{yes: map[string]bool{"Add a user": true, "Write": true}, text: map[string]string{"User name": "blinds"}}); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	out, err := runSetupWith(t, root, &setupAnswers{yes: map[string]bool{"Add another user": true, "Write": true}, text: map[string]string{"User name": "alice"}})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	next := out[strings.Index(out, "Apply complete"):]
	for _, want := range []string{
		"Clients connect to:\n  mqtt://127.0.0.1:1883   (this machine only)\n  mqtts://testpi.local:8883\n",
		"Their CA certificate: /etc/mosquitto/certs/ca.crt\n",
		"ESP32: Arduino-ESP32 2.x (mbedTLS 2.28) matches names only",
		"devices to testpi.local, not to an IP address; mbedTLS 3.x",
		"Try alice (type its password, then Enter; Ctrl-C stops):\n  read -rs PW; mosquitto_sub -h testpi.local -p 8883 --cafile /etc/mosquitto/certs/ca.crt -u alice -P \"$PW\" -t '#' -v\n",
		"sudo mosqprov verify --user alice ",
	} {
		if !strings.Contains(next, want) {
			t.Errorf("next steps lack %q:\n%s", want, next)
		}
	}
	if strings.Contains(next, "blinds") {
		t.Errorf("next steps name the old user:\n%s", next)
	}
}

// The mosquitto_sub line reads a topic the user may read, and plain-only
// brokers get a line without TLS.
func TestNextStepsTopicAndPlainListener(t *testing.T) {
	s := &spec.Spec{Hostname: "pi.local", Listeners: []spec.Listener{{Type: spec.MQTT, Port: 1883}},
		ACL: []spec.ACLRule{{User: "bot", Read: []string{"home/#"}}, {Pattern: true, ReadWrite: []string{"devices/%u/#"}}}}
	var b bytes.Buffer
	printNextSteps(&b, s, "cam")
	for _, want := range []string{"  mqtt://pi.local:1883\n", "mosquitto_sub -h pi.local -p 1883 -u cam -P \"$PW\" -t 'devices/cam/#' -v"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("lacks %q:\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), "CA certificate") || strings.Contains(b.String(), "--cafile") {
		t.Errorf("a broker without TLS gets CA advice:\n%s", b.String())
	}
}
