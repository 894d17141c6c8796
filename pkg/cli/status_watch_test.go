package cli

import (
	"strings"
	"testing"
)

// drawFrame: a log line that carries terminal controls is printed escaped,
// long lines are cut to width-1 columns, a frame taller than the terminal
// ends with a note of what is not shown, and no newline follows the last
// line (it would scroll the screen).
func TestDrawFrame(t *testing.T) {
	lines := []string{"12:00:00  header", "log            1: Warning: client \x1b]0;owned\a x", strings.Repeat("y", 50), "4", "5"}
	got := drawFrame(lines, 20, 4)
	want := cursorHome + "12:00:00  header" + eraseLine + "\r\n" +
		"log            1: …" + eraseLine + "\r\n" +
		strings.Repeat("y", 18) + "…" + eraseLine + "\r\n" +
		"… 2 more lines" + eraseLine + eraseBelow
	if got != want {
		t.Fatalf("drawFrame:\n got %q\nwant %q", got, want)
	}
	got = drawFrame([]string{"log \x1b]0;owned\a"}, 80, 24)
	if strings.Contains(got, "\x1b]") || !strings.Contains(got, `\x1b]0;owned\x07`) {
		t.Fatalf("a control character reached the terminal: %q", got)
	}
}
