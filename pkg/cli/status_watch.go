package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/mosqprov/mosqprov/pkg/safe"
	"github.com/mosqprov/mosqprov/pkg/status"
)

// Terminal controls (ECMA-48 and xterm's private modes, which every
// terminal an SSH session lands in understands).
const (
	altScreenOn  = "\033[?1049h" // the alternate screen: the shell's lines stay as they were
	altScreenOff = "\033[?1049l"
	cursorHide   = "\033[?25l"
	cursorShow   = "\033[?25h"
	cursorHome   = "\033[H"
	eraseLine    = "\033[K" // to the end of the line
	eraseBelow   = "\033[J" // to the end of the screen
)

// watchStatus shows a look every o.Interval on the alternate screen, as
// top and watch do, redrawn in place: each line is overwritten and erased to
// its end, never the whole screen cleared (terminals such as tmux and VTE
// push a cleared screen into the scrollback, so a clear per refresh would
// scroll). Lines are cut to the terminal's width and the frame to its
// height, read again on every draw and on SIGWINCH (a resize redraws at
// once). q or Ctrl-C stops it; the terminal is given back as it was (main
// screen, cursor shown, input echoed again) and the last look is printed
// there.
func watchStatus(ctx context.Context, o *statusOptions, look func(context.Context) (*status.Report, error)) error {
	out := o.IO.Out.(*os.File)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	if in, ok := o.IO.In.(*os.File); ok && term.IsTerminal(int(in.Fd())) {
		restoreInput, err := keysWithoutEnter(int(in.Fd()))
		if err == nil {
			defer restoreInput()
			go func() {
				b := make([]byte, 1)
				for {
					if n, err := in.Read(b); err != nil || n == 1 && (b[0] == 'q' || b[0] == 'Q') {
						cancel()
						return
					}
				}
			}()
		}
	}
	fmt.Fprint(out, altScreenOn+cursorHide)
	var last *status.Report
	defer func() {
		fmt.Fprint(out, cursorShow+altScreenOff)
		if last != nil {
			w := safe.NewWriter(out)
			printBrokerStatus(w, last)
			w.Flush()
		}
	}()

	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	defer signal.Stop(winch)

	var frame []string
	draw := func() {
		width, height, err := term.GetSize(int(out.Fd()))
		if err != nil {
			width, height = 80, 24
		}
		fmt.Fprint(out, drawFrame(frame, width, height))
	}
	for {
		r, err := look(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var text bytes.Buffer
		if err != nil {
			fmt.Fprintf(&text, "%s  (every %s, q or Ctrl-C to stop)\n%v\n", time.Now().Format("15:04:05"), o.Interval, err)
		} else {
			last = r
			fmt.Fprintf(&text, "%s  (every %s, q or Ctrl-C to stop)\n", time.Now().Format("15:04:05"), o.Interval)
			printBrokerStatus(&text, r)
		}
		frame = strings.Split(strings.TrimRight(text.String(), "\n"), "\n")
		draw()
		next := time.After(o.Interval)
	wait:
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-winch:
				draw()
			case <-next:
				break wait
			}
		}
	}
}

// drawFrame is the terminal output that shows lines from the top left of
// a width x height screen: each line escaped (names and log lines come from
// outside), cut to width-1 columns (a character in the last column leaves
// the cursor waiting to wrap, and some terminals then erase it), erased to
// its end, at most height lines with no newline after the last (one would
// scroll the screen), and the rest of the screen erased.
func drawFrame(lines []string, width, height int) string {
	width, height = max(width, 10), max(height, 2)
	if len(lines) > height {
		more := len(lines) - height + 1
		lines = append(lines[:height-1:height-1], fmt.Sprintf("… %d more lines", more))
	}
	var b strings.Builder
	b.WriteString(cursorHome)
	for i, l := range lines {
		if i > 0 {
			b.WriteString("\r\n")
		}
		b.WriteString(cut(safe.Escape(l), width)) // width-1 columns at most
		b.WriteString(eraseLine)
	}
	b.WriteString(eraseBelow)
	return b.String()
}

// keysWithoutEnter makes the terminal hand over each key as it is typed,
// without echoing it (so q works alone), while Ctrl-C still interrupts
// (ISIG stays on, and output processing too, unlike term.MakeRaw). It
// returns what puts the terminal back.
func keysWithoutEnter(fd int) (func(), error) {
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	t := *old
	t.Lflag &^= unix.ICANON | unix.ECHO
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &t); err != nil {
		return nil, err
	}
	return func() { unix.IoctlSetTermios(fd, unix.TCSETS, old) }, nil
}
