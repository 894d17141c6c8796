package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A slow step turns a frame with what it does and the seconds spent, and
// its end erases the line; a step faster than the delay shows nothing.
func TestSpin(t *testing.T) {
	var b bytes.Buffer
	stop := spin(&b, "CA: making its key", 0, 5*time.Millisecond)
	time.Sleep(40 * time.Millisecond)
	stop()
	out := b.String()
	if !strings.HasPrefix(out, "\r\033[K⠋ CA: making its key… 0s\r\033[K⠙ ") || !strings.HasSuffix(out, "s\r\033[K") {
		t.Errorf("spinner wrote %q", out)
	}
	b.Reset()
	spin(&b, "fast", time.Hour, time.Millisecond)()
	if b.Len() != 0 {
		t.Errorf("a fast step wrote %q", b.String())
	}
}

// Only a terminal gets the spinner: not a pipe or file, not -o json.
func TestStepProgressOnlyOnATerminal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, tc := range []struct {
		errOut any
		output string
	}{{&bytes.Buffer{}, "text"}, {f, "text"}, {f, "json"}} {
		a := NewApp(&IOStreams{ErrOut: tc.errOut.(interface{ Write([]byte) (int, error) })})
		a.Globals.Output = tc.output
		if a.stepProgress() != nil {
			t.Errorf("%T, %s: a spinner without a terminal", tc.errOut, tc.output)
		}
	}
}

// In a real terminal (tmux), a slow apply shows which step is busy while
// it runs (RSA-4096 keys: seconds), and the line is gone when it is done.
func TestApplyShowsSlowStepsInRealTerminal(t *testing.T) {
	requireTmux(t)
	bin := setupBinary(t)
	root := t.TempDir()
	spec := filepath.Join(t.TempDir(), "broker.yaml")
	os.WriteFile(spec, []byte("hostname: pi.home.arpa\ntls: {key_type: rsa-4096}\nlisteners: [{type: mqtts}]\nusers:\n  - {name: blinds, hash: \"$7$101$74G1pCqSt4EPbk0k$l5MijUNV9xjqd00TZnXHrKfdQLEzw0r1/XtNYNjAtCSyFhoAf7c0oIpZunEjhWIbesnOMGnfc7atQzv+bWZ7qA==\"}\n"), 0o644)
	s := startRecordedTmux(t, fmt.Sprintf("%s --root %s apply -f %s --yes", bin, root, spec))
	s.sawWhileRunning(t, "making its key (RSA takes seconds on a Pi)…", "Apply complete")

	// The single-step command that makes a key says so too.
	s = startRecordedTmux(t, fmt.Sprintf("%s --root %s cert ca --force --key-type rsa-4096", bin, t.TempDir()))
	s.sawWhileRunning(t, "CA: making its key (RSA takes seconds on a Pi)…", "+ CA key: created")
}

// startRecordedTmux runs command in tmux with every byte it writes to the
// terminal recorded (pipe-pane, attached before the command starts) and
// the spinner's delay at 0: an RSA key made in less time than a screen
// capture takes is still seen, on a fast machine as on a slow one.
func startRecordedTmux(t *testing.T, command string) *tmuxSession {
	t.Helper()
	dir := t.TempDir()
	goFile, stream := filepath.Join(dir, "go"), filepath.Join(dir, "stream")
	s := startTmux(t, fmt.Sprintf("while [ ! -e %s ]; do sleep 0.02; done; MOSQPROV_PROGRESS_DELAY=0s %s", goFile, command))
	s.run("pipe-pane", "-t", "w", "-o", "cat >> "+stream)
	s.stream = stream
	if err := os.WriteFile(goFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// sawWhileRunning polls the screen until the command ends and checks that
// busy was on it meanwhile and is gone at the end, where want is.
func (s *tmuxSession) sawWhileRunning(t *testing.T, busy, want string) {
	t.Helper()
	saw := false
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		scr := s.visible()
		if strings.Contains(scr, busy) {
			saw = true
		}
		if strings.Contains(scr, "EXIT=") {
			break
		}
		time.Sleep(30 * time.Millisecond)
	}
	scr := s.waitFor("EXIT=")
	if s.stream != "" {
		// The recording holds the spinner's frames, each erased by the next
		// (\r\033[K), so a frame on it was on the screen while the step ran.
		// tmux hands the bytes to the recorder as it draws them: wait for
		// the recording to reach the end too.
		var raw []byte
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			raw, _ = os.ReadFile(s.stream)
			if bytes.Contains(raw, []byte("EXIT=")) {
				break
			}
		}
		saw = saw || strings.Contains(string(raw), busy)
	}
	if !strings.Contains(scr, "EXIT=0") || !strings.Contains(scr, want) {
		t.Fatalf("the command failed:\n%s", scr)
	}
	if !saw {
		t.Errorf("%q was never shown while the keys were made:\n%s", busy, scr)
	}
	if strings.Contains(scr, busy) {
		t.Errorf("the progress line stayed on the screen:\n%s", scr)
	}
}
