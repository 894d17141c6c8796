package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mosqprov/mosqprov/internal/brokertest"
	"github.com/mosqprov/mosqprov/pkg/layout"
	"github.com/mosqprov/mosqprov/pkg/status"
)

// TestStatusWatchInRealTerminal runs the real binary's `status --watch` in
// a real terminal (tmux, 80x24) against a real broker that mosqprov
// provisioned (status_reader: true): the screen refreshes in place (the
// uptime changes, the frame stays at the top, nothing goes to the
// scrollback), every line fits the width, a resize to a smaller terminal
// redraws to fit, q and Ctrl-C each stop it with the terminal given back
// (main screen, cursor shown, the terminal's modes as before), and the
// status identity's password never shows.
func TestStatusWatchInRealTerminal(t *testing.T) {
	requireTmux(t)
	brokertest.Require(t)
	bin := setupBinary(t)
	root, port := brokertest.Root(t), brokertest.FreePort(t)
	spec := fmt.Sprintf(`listeners:
  - {type: mqtt, port: %d, bind: 127.0.0.1}
status_reader: true
acl:
  - {pattern: true, readwrite: ["%%u/#"]}
broker: {sys_interval: 1}
package: {install: false}
service: {enable: false}
`, port)
	os.MkdirAll(filepath.Join(root, "etc/mosqprov"), 0o755)
	if err := os.WriteFile(filepath.Join(root, layout.Spec), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "--root", root, "apply", "--yes").CombinedOutput(); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	secretData, err := os.ReadFile(filepath.Join(root, status.SecretFile))
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.TrimSpace(string(secretData))
	conf, err := os.ReadFile(filepath.Join(root, layout.DropIn))
	if err != nil {
		t.Fatal(err)
	}
	brokertest.Start(t, root, brokertest.Rooted(root, string(conf)), port)

	// The shell records the terminal's modes before and after, so the test
	// can tell they were given back (echo, line editing).
	modes := t.TempDir()
	command := func(interval string) string {
		os.Remove(filepath.Join(modes, "after"))
		return fmt.Sprintf("stty -g > %s/before; %s --root %s status --watch --interval %s --wait 300ms; echo EXIT=$?; stty -g > %s/after",
			modes, bin, root, interval, modes)
	}
	uptime := regexp.MustCompile(`(?m)^broker         mosquitto [0-9.]+, up (\S+)`)
	header := regexp.MustCompile(`^\d\d:\d\d:\d\d  \(every (500ms|1m0s), q or Ctrl-C to stop\)\n`)
	noSecret := func(s *tmuxSession) {
		t.Helper()
		if scr := s.screen(); strings.Contains(scr, secret) || strings.Contains(scr, secret[:16]) {
			t.Fatalf("the status identity's password is on the screen:\n%s", scr)
		}
	}
	fits := func(scr string, width int) {
		t.Helper()
		for _, l := range strings.Split(scr, "\n") {
			if n := utf8.RuneCountInString(l); n >= width {
				t.Errorf("a line of %d characters on a %d-column terminal: %q", n, width, l)
			}
		}
	}
	stopped := func(s *tmuxSession) string {
		t.Helper()
		scr := s.waitFor("EXIT=")
		if !strings.Contains(scr, "EXIT=0") {
			t.Errorf("exit status:\n%s", scr)
		}
		if f := s.run("display", "-p", "-t", "w", "#{alternate_on} #{cursor_flag}"); f != "0 1\n" {
			t.Errorf("after exit: alternate screen and cursor flags %q, want the main screen with the cursor shown (0 1)", f)
		}
		var before, after []byte
		for deadline := time.Now().Add(5 * time.Second); len(after) == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			before, _ = os.ReadFile(filepath.Join(modes, "before"))
			after, _ = os.ReadFile(filepath.Join(modes, "after"))
		}
		if len(before) == 0 || string(before) != string(after) {
			t.Errorf("terminal modes before %q, after %q", before, after)
		}
		noSecret(s)
		return scr
	}

	s := startTmux(t, command("500ms"))
	first := s.waitFor("subscriptions  ")
	if f := s.run("display", "-p", "-t", "w", "#{alternate_on} #{cursor_flag}"); f != "1 0\n" {
		t.Errorf("while watching: alternate screen and cursor flags %q, want 1 0", f)
	}
	m := uptime.FindStringSubmatch(s.visible())
	if m == nil {
		t.Fatalf("no uptime on the screen:\n%s", first)
	}
	// The uptime moves on (sys_interval 1) and is redrawn where it was.
	var scr string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		scr = s.visible()
		if n := uptime.FindStringSubmatch(scr); n != nil && n[1] != m[1] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the uptime stayed %s for 10 s:\n%s", m[1], scr)
		}
	}
	if !header.MatchString(scr) || !strings.Contains(scr, "\nbroker         mosquitto ") {
		t.Errorf("the frame is not at the top of the screen:\n%s", scr)
	}
	if h := s.run("display", "-p", "-t", "w", "#{history_size}"); h != "0\n" {
		t.Errorf("%s lines went to the scrollback: the screen scrolled\n%s", strings.TrimSpace(h), s.screen())
	}
	if strings.Count(s.screen(), "subscriptions  ") != 1 {
		t.Errorf("more than one frame on the screen:\n%s", s.screen())
	}
	fits(scr, 80)
	t.Logf("80x24:\n%s", scr)

	// q stops it: the main screen is back with the shell's lines and the
	// last look printed below them.
	s.run("send-keys", "-t", "w", "q")
	scr = stopped(s)
	if !strings.Contains(scr, "broker         mosquitto ") || strings.Contains(scr, "q or Ctrl-C to stop") {
		t.Errorf("after q the main screen should hold the last look, not the watch's frame:\n%s", scr)
	}

	// A smaller terminal: redrawn to its width and height at once (on
	// SIGWINCH: the next refresh is a minute away).
	s = startTmux(t, command("1m"))
	s.waitFor("subscriptions  ")
	s.run("resize-window", "-t", "w", "-x", "44", "-y", "8")
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		scr = s.visible()
		if strings.Contains(scr, "more lines") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not redrawn for 44x8 within 5 s:\n%s", scr)
		}
	}
	t.Logf("44x8:\n%s", scr)
	if lines := strings.Split(strings.TrimRight(scr, "\n"), "\n"); len(lines) != 8 || !strings.HasPrefix(lines[1], "broker ") || lines[7] != "… 4 more lines" {
		t.Errorf("44x8: %d lines, want the frame's first 7 and a note of the 4 more:\n%s", len(lines), scr)
	}
	fits(scr, 44)
	if h := s.run("display", "-p", "-t", "w", "#{history_size}"); h != "0\n" {
		t.Errorf("after the resize %s lines went to the scrollback", strings.TrimSpace(h))
	}

	// Ctrl-C stops it the same way.
	s.run("send-keys", "-t", "w", "C-c")
	stopped(s)
}
