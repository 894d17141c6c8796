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
)

// tmuxSession runs the real mosqprov binary in a real terminal (tmux), so
// the wizard is driven the way a person drives it: keys in, screen out.
type tmuxSession struct {
	t      *testing.T
	socket string
	stream string // the terminal's bytes, recorded by startRecordedTmux
}

func requireTmux(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("tmux is missing in CI: .ci/run installs it (apt-get install -y tmux)")
		}
		t.Skip("SKIPPED: tmux is not installed, so the wizard's real-terminal test did not run. apt-get install -y tmux")
	}
}

// setupBinary builds mosqprov once per test binary run.
var setupBuilt string

func setupBinary(t *testing.T) string {
	t.Helper()
	if setupBuilt != "" {
		return setupBuilt
	}
	dir, err := os.MkdirTemp("", "mosqprov-bin-")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "mosqprov")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/mosqprov").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	setupBuilt = bin
	return bin
}

func startTmux(t *testing.T, command string) *tmuxSession {
	t.Helper()
	s := &tmuxSession{t: t, socket: fmt.Sprintf("mosqprov-test-%d-%d", os.Getpid(), time.Now().UnixNano())}
	// A private server (-L): the test never touches anyone else's tmux.
	// 80x24: the SSH screen on a Pi the wizard's screens must fit in.
	s.run("new-session", "-d", "-s", "w", "-x", "80", "-y", "24", command+"; echo EXIT=$?; sleep 300")
	t.Cleanup(func() { exec.Command("tmux", "-L", s.socket, "kill-server").Run() })
	return s
}

func (s *tmuxSession) run(args ...string) string {
	s.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", s.socket}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("tmux %v: %v: %s", args, err, out)
	}
	return string(out)
}

func (s *tmuxSession) screen() string {
	return s.run("capture-pane", "-p", "-t", "w", "-S", "-500")
}

// visible is what the terminal shows now: its 24 lines, no scrollback.
func (s *tmuxSession) visible() string {
	return s.run("capture-pane", "-p", "-t", "w")
}

// waitFor waits until the screen shows text, and returns the screen.
func (s *tmuxSession) waitFor(text string) string {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		scr := s.screen()
		if strings.Contains(scr, text) {
			return scr
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("the screen never showed %q:\n%s", text, scr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitForCount waits until the screen and its scrollback show text n times.
func (s *tmuxSession) waitForCount(text string, n int) {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(s.screen(), text) < n {
		if time.Now().After(deadline) {
			s.t.Fatalf("the screen never showed %q %d times:\n%s", text, n, s.screen())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// answer waits for a question, then types keys.
func (s *tmuxSession) answer(question string, keys ...string) {
	s.t.Helper()
	s.waitFor(question)
	time.Sleep(150 * time.Millisecond) // let the prompter switch the terminal to raw mode
	for _, k := range keys {
		s.run("send-keys", "-t", "w", k)
	}
}

// setupImageRoot is a --root that looks like a Debian image with mosquitto
// installed (dpkg's database says so), readable by the broker's user.
func setupImageRoot(t *testing.T) string {
	root := brokertest.Dir(t)
	dpkg := filepath.Join(root, "var/lib/dpkg")
	os.MkdirAll(filepath.Join(dpkg, "info"), 0o755)
	os.MkdirAll(filepath.Join(dpkg, "updates"), 0o755)
	var status strings.Builder
	for _, p := range []string{"mosquitto", "mosquitto-clients"} {
		fmt.Fprintf(&status, "Package: %s\nStatus: install ok installed\nVersion: 2.0.11-1.2+deb12u1\nArchitecture: amd64\nMaintainer: test fixture\nDescription: test fixture\n\n", p)
	}
	os.WriteFile(filepath.Join(dpkg, "status"), []byte(status.String()), 0o644)
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/hostname"), []byte("tmuxpi\n"), 0o644)
	return root
}

func TestSetupInRealTerminal(t *testing.T) {
	requireTmux(t)
	brokertest.Require(t)
	bin := setupBinary(t)
	root := setupImageRoot(t)
	const password = "typed-in-tmux-42"

	// The full plan goes through less when there is one (q comes back to
	// the question), else straight to the terminal.
	pager, quit := "cat", []string{}
	if _, err := exec.LookPath("less"); err == nil {
		pager, quit = "less -R", []string{"q"}
	}
	s := startTmux(t, "PAGER='"+pager+"' "+bin+" --root "+root+" setup")
	// The first screen says what setup does, that nothing changes before
	// the last answer, and how to leave, above the first question.
	s.waitFor("Host name clients use")
	first := s.visible()
	for _, want := range []string{"Setup asks for names, addresses, listeners and users, then shows its plan.",
		"Nothing changes before you answer y at the end; Ctrl-C quits at any time.\n? Host name clients use"} {
		if !strings.Contains(first, want) {
			t.Errorf("first screen lacks %q:\n%s", want, first)
		}
	}
	s.answer("Host name clients use", "Enter")
	s.answer("Other names for the broker", "Enter")
	s.answer("IP addresses clients may connect to", "Enter")
	s.answer("Other IP addresses", "Enter")
	scr := s.waitFor("Listeners")
	for _, note := range []string{"MQTT over TLS: encrypted and verified", "plain MQTT, on 127.0.0.1 only"} {
		if !strings.Contains(strings.ReplaceAll(scr, "\n", ""), note) {
			t.Errorf("listener notes missing %q:\n%s", note, scr)
		}
	}
	s.answer("Listeners", "Enter")
	s.answer("Key type", "Enter")
	s.answer("Add a user?", "y", "Enter")
	s.answer("User name", "blinds", "Enter")
	s.answer("Password for blinds", password, "Enter")
	s.answer("Password for blinds (again)", password, "Enter")
	s.answer("Add another user?", "n", "Enter")
	s.answer("Limit each user to its own topics", "Enter")
	// The confirmation fits the 24 lines: the plan by step, its summary
	// line and the question are all on the screen at once.
	s.waitFor("Write /etc/mosqprov/broker.yaml and apply?")
	scr = s.visible()
	for _, want := range []string{"The plan (answer p to see broker.yaml and every change in full):", "  passwords: + password file (blinds added)",
		"Plan: 12 to create, 0 to change, 0 to remove", "? Write /etc/mosqprov/broker.yaml and apply? [y/N, p: full plan]"} {
		if !strings.Contains(scr, want) {
			t.Errorf("the confirmation screen lacks %q:\n%s", want, scr)
		}
	}
	// p shows broker.yaml and every diff; then the same question again.
	s.answer("Write /etc/mosqprov/broker.yaml and apply?", "p", "Enter")
	s.waitFor("hostname: tmuxpi.local")
	if len(quit) > 0 {
		s.run("send-keys", "-t", "w", "Space") // less: the next page
	}
	scr = s.waitFor("- name: blinds")
	if !strings.Contains(scr, "hash: $7$1000$") {
		t.Errorf("the full plan lacks the shortened hash:\n%s", scr)
	}
	for _, k := range quit {
		s.run("send-keys", "-t", "w", k)
	}
	s.waitForCount("Write /etc/mosqprov/broker.yaml and apply?", 2)
	s.answer("Write /etc/mosqprov/broker.yaml and apply?", "y", "Enter")
	scr = s.waitFor("EXIT=")
	if !strings.Contains(scr, "EXIT=0") || !strings.Contains(scr, "Apply complete") {
		t.Fatalf("setup failed:\n%s", scr)
	}
	if strings.Contains(scr, password) {
		t.Fatalf("the password was echoed:\n%s", scr)
	}
	yaml, err := os.ReadFile(filepath.Join(root, "etc/mosqprov/broker.yaml"))
	if err != nil || strings.Contains(string(yaml), password) {
		t.Fatalf("broker.yaml: %v\n%s", err, yaml)
	}

	// The password typed into the terminal logs in to the real broker,
	// which reads the password file setup wrote.
	port := brokertest.FreePort(t)
	brokertest.Start(t, brokertest.Dir(t), fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous false\npassword_file %s\n",
		port, filepath.Join(root, "etc/mosquitto/passwd")), port)
	if err := (brokertest.Client{Port: port, User: "blinds", Password: password}).Publish("home/blinds/test", "up"); err != nil {
		t.Fatalf("the wizard's user can't log in: %v", err)
	}
	if err := (brokertest.Client{Port: port, User: "blinds", Password: "wrong"}).Publish("home/blinds/test", "up"); err == nil {
		t.Fatal("a wrong password logged in")
	}
}

func TestSetupCtrlCInRealTerminal(t *testing.T) {
	requireTmux(t)
	bin := setupBinary(t)
	root := setupImageRoot(t)
	before := setupTree(t, root)

	s := startTmux(t, bin+" --root "+root+" setup")
	s.answer("Host name clients use", "Enter")
	s.answer("Other names for the broker", "Enter")
	s.answer("IP addresses clients may connect to", "Enter")
	s.answer("Other IP addresses", "Enter")
	s.answer("Listeners", "Enter")
	s.answer("Key type", "Enter")
	s.answer("Add a user?", "y", "Enter")
	s.answer("User name", "blinds", "Enter")
	s.answer("Password for blinds", "half-typed", "C-c")
	scr := s.waitFor("EXIT=")
	if !strings.Contains(scr, "EXIT=130") || !strings.Contains(scr, "mosqprov: cancelled; nothing was changed") {
		t.Fatalf("Ctrl-C:\n%s", scr)
	}
	if after := setupTree(t, root); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Fatalf("files changed after Ctrl-C:\nbefore %q\nafter  %q", before, after)
	}
}
